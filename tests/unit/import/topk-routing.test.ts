import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { zMoeLlmConfig } from "@/models/moe-llm/config";
import type { RoutingConvention } from "@/models/families/conventions";
import { buildRoutingGraph } from "@/models/moe-llm/moe-llm-graph";
import { prng } from "../../reference/random";

/**
 * The top-k conventions with interventions, written from their documented rule (moe-llm-graph.ts topkRouting):
 * ban removes a column from the softmax and the choice; the chosen set is the forced columns first, then by logit;
 * k = top_k (or the top_k override) + forced columns outside the model's own top-k, capped at the allowed columns.
 */
function reference(z: number[], R: number, topK: number, conv: RoutingConvention, gate: boolean, ban: number[], force: number[]) {
  const allowed = z.slice(0, R).map((_, e) => ban[e]! < 0.5);
  const zs = z.slice(0, R);
  const m = Math.max(...zs.filter((_, e) => allowed[e]), -Infinity);
  const ex = zs.map((v, e) => (allowed[e] ? Math.exp(v - m) : 0));
  const s = ex.reduce((a, b) => a + b, 0);
  const p = ex.map((v) => (s > 0 ? v / s : 0));
  const byLogit = [...zs.keys()].filter((e) => allowed[e]).sort((a, b) => zs[b]! - zs[a]! || a - b);
  const own = byLogit.slice(0, topK);
  const forced = byLogit.filter((e) => force[e]! > 0.5);
  const k = Math.min(topK + forced.filter((e) => !own.includes(e)).length, byLogit.length);
  const chosen = [...forced, ...byLogit.filter((e) => !forced.includes(e))].slice(0, k);
  const sum = chosen.reduce((a, e) => a + p[e]!, 0);
  const w = zs.map((_, e) => (chosen.includes(e) ? (conv === "softmax_topk" ? p[e]! : p[e]! / sum) : 0)); // nothing chosen: all 0
  const mask = zs.map((_, e) => (chosen.includes(e) ? 1 : 0));
  if (z.length > R) {
    const on = ban[R]! < 0.5 ? 1 : 0;
    mask.push(on);
    w.push(gate ? on / (1 + Math.exp(-z[R]!)) : on);
  }
  return { mask, w, k };
}

const cases: { conv: RoutingConvention; R: number; topK: number; shared: boolean }[] = [
  { conv: "softmax_topk", R: 8, topK: 4, shared: true },
  { conv: "softmax_topk_renorm", R: 16, topK: 4, shared: false },
  { conv: "softmax_topk", R: 64, topK: 8, shared: false },
  { conv: "topk_softmax", R: 8, topK: 2, shared: false },
];

describe("top-k routing graph with ban / force / top-k override vs the documented rule", () => {
  for (const c of cases)
    it(`${c.conv}, ${c.R} experts, top-${c.topK}${c.shared ? ", gated shared expert" : ""}`, async () => {
      const config = zMoeLlmConfig.parse({
        hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 1, num_key_value_heads: 1, head_dim: 8, vocab_size: 8,
        rope_scaling: { mrope_section: [4, 0, 0] }, mlp_dynamic_expert_num: c.R, mlp_dynamic_null_expert_num: 0,
        mlp_fixed_expert_num: c.shared ? 1 : 0, dynamic_intermediate_size: 4, shared_intermediate_size: 4,
        mlp_dynamic_top_p: 0, mlp_dynamic_top_k: c.topK, routing_convention: c.conv, shared_expert_gate: c.shared,
      });
      const E = c.R + (c.shared ? 1 : 0);
      const session = await ort.InferenceSession.create(buildRoutingGraph(config), { intraOpNumThreads: 1 });
      const rnd = prng(c.R * 31 + c.topK);
      let maxDiff = 0;
      for (let trial = 0; trial < 12; trial++) {
        const N = 9;
        const z = Array.from({ length: N * E }, () => (rnd() * 2 - 1) * 3);
        // trial 0: no intervention; then random bans and forces (force on a banned column is ignored: ban wins)
        const ban = Array.from({ length: E }, (_, e) => (trial === 11 ? (e < c.R ? 1 : 0) : trial > 0 && rnd() < 0.2 ? 1 : 0)); // trial 11: every routed column banned
        const force = Array.from({ length: E }, () => (trial > 0 && rnd() < 0.15 ? 1 : 0));
        // odd trials: a top-k override between 1 and R
        const override = trial % 2 === 1 ? 1 + Math.floor(rnd() * c.R) : 0;
        const out = await session.run({
          router_logits: new ort.Tensor("float32", Float32Array.from(z), [N, E]),
          ban_mask: new ort.Tensor("float32", Float32Array.from(ban), [1, E]),
          force_mask: new ort.Tensor("float32", Float32Array.from(force), [1, E]),
          top_p: new ort.Tensor("float32", new Float32Array([0]), [1]),
          top_k: new ort.Tensor("float32", new Float32Array([override || c.topK]), [1]), // the k in force, as MoeLlmRunner feeds it
        });
        for (let n = 0; n < N; n++) {
          const ref = reference(z.slice(n * E, (n + 1) * E), c.R, override || c.topK, c.conv, c.shared, ban, force);
          expect(Array.from((out.mask!.data as Float32Array).slice(n * E, (n + 1) * E))).toEqual(ref.mask);
          expect(Number((out.k!.data as BigInt64Array)[n])).toBe(ref.k);
          const w = (out.weights!.data as Float32Array).slice(n * E, (n + 1) * E);
          for (let e = 0; e < E; e++) maxDiff = Math.max(maxDiff, Math.abs(w[e]! - ref.w[e]!));
        }
      }
      expect(maxDiff).toBeLessThan(1e-6);
      await session.release();
    });
});
