/**
 * The seeded DiT as released (RELEASED.md §2.1, §2.5): the released [IMG]/[TASK] states (last 32 fed-back states and
 * the 3 before), the 3-branch guidance on 3 of the 4 latent channels against three single-branch forwards combined in a
 * plain loop, the 59-step sampler through the node, and v1 documents keeping the paper's behaviour.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunContext } from "@/engine/node";
import { SessionPool } from "@/engine/runtime/pool";
import { DiskStorage } from "@/engine/storage";
import { loadWorkflow } from "@/engine/workflow/load";
import { conditioningAsReleased, initialNoise, latentSize } from "@/models/dit/dit";
import { ditReferenceConfig, withDit } from "@/models/dit/dit-tiny";
import { SeededRandom } from "@/models/io/seeded-random";
import { catalogue } from "@/nodes";
import { generateImage, type GenerateImageInfo } from "@/nodes/dit";
import type { LlmOutputValue } from "@/nodes/moe-llm";

let pool: SessionPool;
let dir: string;
beforeAll(async () => {
  pool = new SessionPool({ executionProvider: "cpu", intraOpNumThreads: 2 });
  dir = await mkdtemp(path.join(tmpdir(), "dit-rel-"));
});
afterAll(async () => {
  await pool?.close();
  await rm(dir, { recursive: true, force: true });
});

const c = ditReferenceConfig().dit;
const L = c.llmHidden;
const tail = (n: number, seed: number) => Array.from({ length: n }, () => new SeededRandom(seed++).fillNormal(new Float32Array(L)));

describe("DiT as released", () => {
  it("[IMG]/[TASK] states: the last 32 fed-back states and the 3 before them, whatever their tokens", () => {
    const t = tail(40, 1);
    const got = conditioningAsReleased(c, true, t);
    if ("missing" in got) throw new Error(got.missing);
    expect(Array.from(got.task.subarray(0, L))).toEqual(Array.from(t[5]!));
    expect(Array.from(got.img.subarray(31 * L))).toEqual(Array.from(t[39]!));
    expect(conditioningAsReleased(c, false, t)).toEqual({ missing: "the LLM output has no [IMG0] or [TASK0]" });
    expect("missing" in conditioningAsReleased(c, true, t.slice(0, 30))).toBe(true);
  });

  it("3-branch guidance: channels 0–2 = v2 + 1·(v1 − v2) + 4·(v0 − v1), channel 3 = v0 (branch 2's input image = the noise)", async () => {
    const t = tail(35, 9);
    const cond = conditioningAsReleased(c, true, t) as { img: Float32Array; task: Float32Array };
    const noise = initialNoise(c, 3);
    const x = new SeededRandom(4).fillNormal(new Float32Array(latentSize(c)));
    const n = latentSize(c), K = c.taskTokens;
    await withDit(pool, { withEncoder: false }, async (runner) => {
      const got = await runner.releasedVelocity(x, 0.6, cond, 4, 1.5, noise);
      const one = (img: Float32Array, b: number, src: Float32Array) => {
        const task = new Float32Array(K * L);
        for (let k = 0; k < K; k++) task.set(cond.task.subarray(b * L, (b + 1) * L), k * L);
        return runner.forward({ x, source: src, t: Float32Array.of(0.6), img, task, batch: 1 });
      };
      const zeros = new Float32Array(cond.img.length);
      const [v0, v1, v2] = [await one(cond.img, 0, new Float32Array(n)), await one(zeros, 1, new Float32Array(n)), await one(zeros, 2, noise)];
      const plane = c.latentSize * c.latentSize;
      let d = 0;
      for (let i = 0; i < n; i++) {
        const want = i < 3 * plane ? v2[i]! + 1.5 * (v1[i]! - v2[i]!) + 4 * (v0[i]! - v1[i]!) : v0[i]!;
        d = Math.max(d, Math.abs(got[i]! - want));
      }
      console.log(`released guidance vs three single-branch forwards: max |Δ| ${d.toExponential(2)}`);
      expect(d).toBeLessThanOrEqual(1e-4);
    });
  });

  it("the node: released sampler makes 59 steps and says so; a v1 document keeps the paper sampler", async () => {
    const llm: LlmOutputValue = { kind: "llm-output", model: "uni-moe-tiny/tiny", text: "ok [TASK0][TASK1][TASK2][IMG0]", promptIds: [], ids: [1], stopReason: "max-tokens", specialHidden: [], tailHidden: tail(35, 20), prefillMs: 0, decodeMs: 0 };
    const events: number[] = [];
    const ctx: RunContext = { runId: "r", nodeId: "dit", signal: new AbortController().signal, storage: new DiskStorage(dir), runtime: pool, progress: (f) => events.push(f), log: () => {} };
    const out = (await generateImage.execute({ inputs: { llm }, params: generateImage.params.parse({ conditioning: "llm" }), ctx })) as { info: GenerateImageInfo };
    expect(out.info).toMatchObject({ sampler: "released", llmStates: "released", steps: 59, conditioning: "llm" });
    expect(events.length).toBeGreaterThanOrEqual(59);
    expect(generateImage.summarize!(out)).toContain("released sampler (59 Euler steps");
    const v1 = { schemaVersion: 2, name: "old", description: "", tags: [], nodes: [{ id: "d", type: "generate.image", typeVersion: 1, params: { steps: 8 }, position: { x: 0, y: 0 } }], edges: [] };
    const { workflow } = loadWorkflow(v1, catalogue);
    expect(workflow.nodes[0]).toMatchObject({ typeVersion: 2, params: { steps: 8, sampler: "paper", llmStates: "tokens" } });
  }, 120_000);
});
