import { describe, expect, it } from "vitest";
import { activeParameters } from "../../../engine/routing/active";
import { handTrace } from "./fixtures";

describe("active parameters per token from a trace", () => {
  it("fixed + per-expert × routed experts run per token, summed over layers; null when the trace has no counts", () => {
    const t = handTrace();
    expect(activeParameters(t)).toBeNull();
    t.parameters = { total: 1000, fixed: 400, perRoutedExpert: 100 };
    // routed columns R0, R1 — layer 0: t0 {R0}, t1 {R0, R1}, t2 none → 3; layer 1: t0 {R1}, t1 {R1}, t2 {R0, R1} → 4
    const a = activeParameters(t)!;
    expect(a.expected).toBeCloseTo(400 + (100 * 7) / 3, 9);
    expect(a.routedPerLayer).toBeCloseTo(7 / 6, 9);
    expect(a.meanK).toBeCloseTo((1 + 3 + 1 + 2 + 1 + 2) / 6, 9);
    expect(a.total).toBe(1000);
    // over token 2 only: layer 0 none, layer 1 two
    expect(activeParameters(t, [2])!.expected).toBe(600);
  });
});
