import { describe, expect, it } from "vitest";
import { ablationGrid, deltaScale, rankAblations } from "../../../app/inspector/AblationView";
import { klPerLayer, rankShade } from "../../../app/inspector/LensView";
import { MISSING_COLOR, colorOf } from "../../../app/inspector/CanvasChart";
import type { AblationRow, AblationTable } from "../../../engine/batch/ablation";
import type { RoutingTrace } from "../../../engine/trace";

const experts = [
  { name: "E1", role: "routed" as const },
  { name: "E2", role: "routed" as const },
  { name: "Null1", role: "null" as const },
  { name: "Shared1", role: "shared" as const },
];
const row = (id: string, kind: AblationRow["kind"], layer: AblationRow["layer"], expert: string | null, d: number, share: number | null): AblationRow => ({
  id, label: id, kind, layer, expert, status: "finished", workflowFingerprint: "f", records: { ran: 1, cached: 0, failed: 0, total: 1 },
  nll: { "*": { mean: 2 + d, tokens: 10, records: 1 }, math: { mean: 1 + 2 * d, tokens: 5, records: 1 } }, delta: { "*": d, math: 2 * d }, share: { "*": share, math: share },
});
const table = (rows: AblationRow[]): AblationTable => ({
  kind: "expert-ablation", version: 1, spec: "x", status: "finished", datasetFingerprint: "d", tasks: ["*", "math"], experts, numLayers: 3,
  baseline: { workflowFingerprint: "w", records: { ran: 1, cached: 0, failed: 0, total: 1 }, nll: { "*": { mean: 2, tokens: 10, records: 1 } }, tokensPerPass: 10 },
  routing: {}, dynamicExperts: ["E1", "E2", "Null1"], rows,
});

describe("ablation views", () => {
  it("the ΔNLL grid: a row per layer when there are per-layer bans, then 'all layers'; NaN where not run", () => {
    const t = table([row("L1.E2", "ban", 1, "E2", 0.5, 0.4), row("*.E1", "ban", "*", "E1", -0.25, 0.1), row("k=1", "top-k1", null, null, 0.1, null)]);
    const g = ablationGrid(t, "math");
    expect(g.rows).toEqual(["L0", "L1", "L2", "all layers"]);
    expect(g.cols).toEqual(["E1", "E2"]);
    expect(Array.from(g.values, (v) => (Number.isNaN(v) ? null : v))).toEqual([null, null, null, 1, null, null, -0.5, null]);
    expect(g.cells[3]!.id).toBe("L1.E2");
    // one symmetric scale over every task and row
    expect(deltaScale(t)).toMatchObject({ min: -1, max: 1 });
    expect(ablationGrid(table([row("*.E1", "ban", "*", "E1", 0, 0)]), "*").rows).toEqual(["all layers"]);
  });

  it("ranks a task's ablations by ΔNLL (most important first), by routing share, or by name", () => {
    const t = table([row("*.E1", "ban", "*", "E1", 0.1, 0.9), row("*.E2", "ban", "*", "E2", 0.3, 0.2), row("k=1", "top-k1", null, null, -0.2, null)]);
    expect(rankAblations(t, "math").map((r) => r.id)).toEqual(["*.E2", "*.E1", "k=1"]);
    expect(rankAblations(t, "math", "share").map((r) => r.id)).toEqual(["*.E1", "*.E2", "k=1"]);
    expect(rankAblations(t, "*", "id").map((r) => r.id)).toEqual(["*.E1", "*.E2", "k=1"]);
  });

  it("a missing value is drawn in the missing colour; lens shades and mean KL per layer", () => {
    expect(colorOf({ min: -1, max: 1, stops: ["#000000", "#ffffff"] })(NaN)).toBe(MISSING_COLOR);
    expect(rankShade(0)).not.toBe(rankShade(1000));
    const trace = {
      tokens: [{}, {}],
      lens: { k: 1, layers: [0, 1].map((l) => ({ topIds: Int32Array.of(1, 2), topLogprobs: Float32Array.of(-1, -1), finalRank: Int32Array.of(l, 0), kl: Float32Array.of(0.5 - l / 2, 0.25 - l / 4) })) },
    } as unknown as RoutingTrace;
    expect(klPerLayer(trace, 1)).toEqual({ mean: [0.375, 0], token: [0.25, 0] });
  });
});
