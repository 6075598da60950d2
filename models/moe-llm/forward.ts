import type { Runtime } from "@/engine/runtime/types";
import { expertColumns } from "./config";
import { defaultRoutingPrecision } from "./grin-routing";
import { checkRoutingOverrides } from "./interventions";
import { logitLens, withMoeLlm, type ResolvedModel } from "./moe-llm-model";
import type { RoutingPrecision } from "../onnx/bf16";

/** The largest position id `forward` takes (int32: past it int64 positions would wrap or lose their float value). */
const MAX_POSITION = 2 ** 31 - 1;

/**
 * The `cli forward` result: a contract scripts rely on (issue 4), so it only ever grows. `k` is the model's k as the
 * release reports it (before capacity drops); `mask` and `weights` are the ones applied, after drops. `layers` lists
 * the MoE layers (those with a router) in order; `layer` is each one's decoder index (issue 20: dense layers have no entry).
 * `lens` (with --logit-lens, issue 23): per decoder layer, for every position, the 5 most likely next tokens and their
 * log-probabilities of the residual stream after that layer through the final norm and LM head (models/moe-llm/logit-lens.ts).
 */
export interface ForwardJson {
  logits: number[];
  layers: { layer: number; router_logits: number[][]; k: number[]; mask: number[][]; weights: number[][] }[];
  lens?: { layer: number; top_ids: number[][]; top_logprobs: number[][] }[];
}

export interface PositionsJson {
  t: number[];
  h: number[];
  w: number[];
}

function rows(a: ArrayLike<number>, n: number, e: number, map: (v: number) => number = (v) => v): number[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: e }, (_, j) => map(a[i * e + j]!)));
}

/** One full forward pass (no cache) over `ids`; logits of the last position and every layer's routing. */
export async function forwardJson(
  model: ResolvedModel,
  runtime: Runtime,
  ids: number[],
  opts: { positions?: PositionsJson; dense?: boolean; topP?: number; topK?: number; routingPrecision?: RoutingPrecision; logitLens?: boolean },
): Promise<ForwardJson> {
  const n = ids.length;
  const V = model.config.vocab_size;
  if (n === 0) throw new Error("--ids is empty");
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= V);
  if (bad !== undefined) throw new Error(`token id ${bad} is outside the vocabulary (0..${V - 1})`);
  const p = opts.positions ?? { t: [...ids.keys()], h: [...ids.keys()], w: [...ids.keys()] };
  for (const axis of ["t", "h", "w"] as const) {
    if (!Array.isArray(p[axis]) || p[axis].length !== n || !p[axis].every((v) => Number.isInteger(v) && v >= 0 && v <= MAX_POSITION)) throw new Error(`positions.${axis} must be ${n} integers in 0…${MAX_POSITION}`);
  }
  const E = expertColumns(model.config).length;
  const routingPrecision = opts.routingPrecision ?? defaultRoutingPrecision(model.config);
  const interventions = checkRoutingOverrides(model.config, { topP: opts.topP, topK: opts.topK });
  const graph = { moe: opts.dense ? "dense" : "sparse", trace: true, kvCache: false, routingPrecision, ...(opts.logitLens ? { lens: true } : {}) } as const;
  const result = await withMoeLlm(model, graph, runtime, async ({ runner }) => {
    const out = await runner.forward({ batch: 1, seq: n, ids, positions: [...p.t, ...p.h, ...p.w], interventions });
    const json: ForwardJson = {
      logits: Array.from(out.logits.subarray((n - 1) * V, n * V)),
      layers: out.trace!.map((l) => ({
        layer: l.layer,
        router_logits: rows(l.routerLogits, n, E),
        k: Array.from(l.k, (v) => Number(v)),
        mask: rows(l.mask, n, E, (v) => (v ? 1 : 0)),
        weights: rows(l.weights, n, E),
      })),
    };
    return { json, hidden: out.hidden };
  });
  if (!opts.logitLens) return result.json;
  const lens = await logitLens(model, runtime, result.hidden!, n);
  return {
    ...result.json,
    lens: lens.layers.map((l, layer) => ({ layer, top_ids: rows(l.topIds, n, lens.k), top_logprobs: rows(l.topLogprobs, n, lens.k) })),
  };
}
