import { describe, expect, it } from "vitest";
import { dropCounts, droppedExperts } from "../../../engine/routing/drops";
import { handTrace } from "./fixtures";

describe("capacity drops of a trace", () => {
  it("counts dropped assignments and tokens per layer and expert, over a token set; null when nothing records drops", () => {
    const t = handTrace();
    expect(dropCounts(t, [0, 1, 2])).toBeNull();
    // layer 1: token 0 lost R1 and S, token 2 lost R0
    t.layers[1]!.dropped = Uint8Array.from([0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]);
    expect(dropCounts(t, [0, 1, 2])).toEqual([
      { layer: 0, assignments: 0, tokens: 0, perExpert: [0, 0, 0, 0] },
      { layer: 1, assignments: 3, tokens: 2, perExpert: [1, 1, 0, 1] },
    ]);
    expect(dropCounts(t, [2])![1]).toEqual({ layer: 1, assignments: 1, tokens: 1, perExpert: [1, 0, 0, 0] });
    expect(droppedExperts(t, 1, 0)).toEqual(["R1", "S"]);
    expect(droppedExperts(t, 0, 0)).toEqual([]);
  });
});
