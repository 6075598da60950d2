import type { MoeLlmConfig } from "../config";
import type { RoutingPrecision } from "../../onnx/bf16";
import { GraphBuilder } from "../../onnx/builder";
import { Ops } from "../../onnx/ops";
import type { Routing } from "./routers";
import { NEG } from "./tensors";

/**
 * Uni-MoE's routing (grin-routing.ts, the reference: Top-P k, GRIN sparsemixer, null and shared experts, ban / force /
 * top_p interventions, padding) as the fused decoder's compact block: the same chosen sets, masks and k, weights within
 * float rounding, in ~40 nodes per layer instead of ~105. Used by the fused graph for fp32 routing without token drop
 * (bf16 routing and token drop keep the reference block: `compactGrinFits`).
 *
 * What makes it small:
 * - Everything that does not depend on the layer's hidden state is computed ONCE per forward for all L layers
 *   (`compactGrinRows`, outside the layers) from the [L,E] intervention inputs and top_p: the additive ban penalty, a
 *   per-column sort key offset (forced first, banned last), and the weights of one Gemm that turns the Top-P flags into
 *   the token's own k (and the trace's reported k). Global Splits hand each layer its rows, so a layer pays no node
 *   for them.
 * - One TopK over the dynamic columns; everything else happens in that sorted space and is scattered back once.
 *   Sorted position s holds the column of rank s (ties: lower column, as ONNX TopK and the reference).
 *   · Top-P: p = softmax(z) gathered in sorted order (the reference's sorted p, bit for bit), cumsum, flags cum < P; k = 1 + Σ flags. A Gemm with weights [1,…,1,−D] gives kOwn directly: 0 when the cumsum
 *     never reaches P (k = D + 1, no dynamic expert), else k; its second column gives the trace's correction to k.
 *     Fixed top-k (P = 0) and P ≥ 1 are the same Gemm with zero weights and the right constant.
 *   · The chosen set: key_s = s − D·forced + 4D·banned; chosen ⟺ key < kOwn (forced columns have negative keys,
 *     banned columns never qualify, so the cap at the allowed columns is implicit). This is the reference's
 *     forced ∪ (own top-kOwn).
 *   · sparsemixer: the reference's repeated argmax visits the chosen columns in key order; column s's multiplier is
 *     the softmax, over the columns t not taken before it (key_t ≥ key_s) and not masked by GRIN's near-tie rule
 *     ((v_s − v_t) / max(|v_s|, |v_t|) > 2·jitter), evaluated at s: one [N,D,D] pairwise block, ReduceLogSumExp,
 *     exp(v_s − lse_s).
 *   · Global weights: the logits with the unchosen dynamic columns set to −3e30 are scattered into z (banned shared
 *     columns already −3e30): their softmax is the reference's g; the mask is where they are finite.
 * Node counts and speed: docs/benchmarks.md (npm run bench -- llm).
 */

/** A stand-in for −inf below NEG: exp(NEG2 − lse) is 0 even when lse is about NEG. */
const NEG2 = -3e30;

/** Whether the compact block computes this config's routing (else the reference block grinRouting is used). */
export function compactGrinFits(c: MoeLlmConfig, precision: RoutingPrecision): boolean {
  if (precision !== "fp32" || c.token_drop) return false;
  return c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num >= 1;
}

/** One layer's rows, built once per forward by compactGrinRows. */
export interface CompactGrinRows {
  /** float [1,E]: the router_bias intervention row (the router Gemm's C) */
  bias: string;
  /** float [1,E]: where banned NEG (dynamic columns) or NEG2 (shared columns), 0 elsewhere */
  pen: string;
  /** float [D]: D·forced − 4D·banned (key_s = s − fKey[column at s]) */
  fKey: string;
  /** float [D,K], [1,K]: Top-P flags → kOwn (column 0) and the reported k's correction (column 1, trace only) */
  kW: string;
  kC: string;
}

/**
 * The rows of every layer from the graph inputs router_bias, ban_mask, force_mask [L,E] and top_p [1] (the P in force,
 * exactly), once per forward (call it outside the layers' scope). Returns P [1] and each layer's rows.
 */
export function compactGrinRows(o: Ops, c: MoeLlmConfig, routerBias: string, ban: string, force: string, topP: string, trace: boolean): { P: string; rows: CompactGrinRows[] } {
  const g = o.g;
  const L = c.num_hidden_layers, D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num, E = D + c.mlp_fixed_expert_num;
  const K = trace ? 2 : 1;
  const banned = o.cast(o.greater(ban, g.scalar(0.5)), "float"); // [L,E]
  // banned dynamic columns NEG, banned shared columns NEG2 (= an unchosen dynamic column's value in the global softmax,
  // so a token with no active column gets the reference's uniform softmax)
  const pen = o.mul(banned, g.const(Array.from({ length: E }, (_, j) => (j < D ? NEG : NEG2)), [1, E])); // [L,E]
  const banD = E === D ? banned : o.slice(banned, [0], [D], [1]); // [L,D]
  const forceD = E === D ? force : o.slice(force, [0], [D], [1]);
  const forced = o.mul(o.cast(o.greater(forceD, g.scalar(0.5)), "float"), o.sub(g.scalar(1), banD)); // [L,D]
  const fKey = o.sub(o.mul(forced, g.scalar(D)), o.mul(banD, g.scalar(4 * D))); // [L,D]
  // modes (grin-routing.ts step 1, fp32: the only precision of this block): P = top_p exactly; P >= 1 → every allowed
  // column; P <= 0 → the fixed top-k T. a, b, m ∈ {0,1}: Top-P counting, P >= 1, fixed k.
  const P = topP; // [1]
  const b = o.cast(o.greaterOrEqual(P, g.scalar(1)), "float"); // [1]
  const pPos = o.cast(o.greater(P, g.scalar(0)), "float");
  const a = o.mul(pPos, o.sub(g.scalar(1), b));
  const m = o.sub(g.scalar(1), pPos);
  const T = Math.trunc(c.mlp_dynamic_top_k);
  // kOwn = a·(1 + Σ_{s<D-1} flag_s − D·flag_{D-1}) + b·D + m·(T <= D ? T : 0)
  const w0 = o.mul(a, g.const(Array.from({ length: L * D }, (_, q) => (q % D === D - 1 ? -D : 1)), [L, D, 1])); // [L,D,1]
  const c0 = o.add(o.add(a, o.mul(b, g.scalar(D))), o.mul(m, g.scalar(T <= D ? T : 0))); // [1]
  let kW = w0, kC = o.expand(o.reshape(c0, g.ints([1, 1])), g.ints([L, 1])); // [L,1]
  if (trace) {
    // reported k = chosen count + u; u = (D + 1 − F)·flag_{D-1} (Top-P never reached P) or T − F (fixed T > D), when
    // some dynamic column is allowed (the reference reports the model's k when the token has no dynamic expert of its own)
    const nAllowedPos = o.cast(o.less(o.reduceSum(banD, [1]), g.scalar(D - 0.5)), "float"); // [L,1]
    const F = o.reduceSum(forced, [1]); // [L,1]
    const last = g.const(Array.from({ length: D }, (_, s) => (s === D - 1 ? 1 : 0)), [1, D]);
    const w1 = o.unsqueeze(o.mul(o.mul(a, o.mul(o.sub(g.scalar(D + 1), F), nAllowedPos)), last), [2]); // [L,D,1]
    const c1 = o.mul(o.mul(m, g.scalar(T > D ? 1 : 0)), o.mul(o.sub(g.scalar(T), F), nAllowedPos)); // [L,1]
    kW = o.concat([w0, w1], 2);
    kC = o.concat([kC, c1], 1);
  }
  const perLayer = (t: string, dims: number[]) => (L === 1 ? [o.reshape(t, g.ints(dims))] : o.split(o.reshape(t, g.ints([L * dims[0]!, ...dims.slice(1)])), Array(L).fill(dims[0]!), 0));
  const biasRows = L === 1 ? [routerBias] : o.split(routerBias, Array(L).fill(1), 0);
  const penRows = L === 1 ? [pen] : o.split(pen, Array(L).fill(1), 0);
  const fKeys = perLayer(fKey, [D]);
  const kWs = perLayer(kW, [D, K]);
  const kCs = L === 1 ? [kC] : o.split(kC, Array(L).fill(1), 0);
  return { P, rows: Array.from({ length: L }, (_, i) => ({ bias: biasRows[i]!, pen: penRows[i]!, fKey: fKeys[i]!, kW: kWs[i]!, kC: kCs[i]! })) };
}

export interface CompactGrinNames {
  /** graph output names the block's tensors are written to directly (no Identity node); declared by the caller */
  logits: string;
  mask: string;
  weights: string;
}

/**
 * One layer's routing: x [N,H] (normalised hidden states), router [E,H] → the Routing of grinRouting (chosen, mask,
 * weights, k; logits = the router logits after the bias intervention). `valid` bool [N,1] (padding: false) clears a
 * padded token's dynamic columns after the sparsemixer and keeps its reported k, as the reference does.
 * `oneToken` (N = 1, the decode-step graph): the pairwise block's candidate side is the [1,D] row itself, which
 * broadcasts as [1,1,D] (two Unsqueeze nodes fewer).
 * mask, k and chosen are built on first use (a graph without the trace has none of their nodes).
 */
export function compactGrinRouting(o: Ops, c: MoeLlmConfig, x: string, router: string, rows: CompactGrinRows, P: string, opts: { trace: boolean; valid?: string; names?: CompactGrinNames; oneToken?: boolean }): Routing {
  const g = o.g;
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num, SH = c.mlp_fixed_expert_num, E = D + SH;
  const names: Partial<CompactGrinNames> = opts.names ?? {};
  const named = (op: string, inputs: string[], attrs: Record<string, number | number[]>, name: string | undefined) => (name ? g.node(op, inputs, attrs, { outputs: [name] })[0]! : g.op(op, inputs, attrs));
  const z = named("Gemm", [x, router, rows.bias], { transB: 1 }, names.logits); // [N,E] reported router logits
  const zP = o.add(z, rows.pen); // banned columns NEG
  const zD = SH === 0 ? zP : o.slice(zP, [0], [D], [1]); // [N,D]
  const [v, idx] = o.topk(zD, g.ints([D]), 1); // [N,D] sorted logits and their columns
  // Top-P flags → kOwn (and the reported k's correction u)
  // the reference's sorted p: softmax over the columns, then sorted (softmax of the sorted logits would sum in another
  // order, and P = 1 is decided by the last float bit of the sum)
  const flags = o.cast(o.less(o.cumsum(o.gatherElements(o.softmax(zD, 1), idx, 1), 1), P), "float"); // [N,D]
  const ku = g.op("Gemm", [flags, rows.kW, rows.kC]); // [N,K]
  let kOwn = ku, u = "";
  if (opts.trace) [kOwn, u] = o.split(ku, [1, 1], 1) as [string, string];
  const key = o.sub(g.const(Array.from({ length: D }, (_, s) => s), [1, D]), o.gather(rows.fKey, idx)); // [N,D]
  const chosenOwn = o.less(key, kOwn); // [N,D] bool, sorted space
  const chosenS = opts.valid ? o.and(chosenOwn, opts.valid) : chosenOwn;
  const upd = o.where(chosenS, v, g.scalar(NEG2)); // chosen logits, else NEG2
  // sparsemixer: rows s (the column taken), columns t (candidates)
  const candidate = (t: string) => (opts.oneToken ? t : o.unsqueeze(t, [1])); // [N,1,D] (one token: [1,D] broadcasts so)
  const vs = o.unsqueeze(v, [2]), vt = candidate(v); // [N,D,1], [N,1,D]
  const ratio = o.div(o.sub(vs, vt), o.max(o.abs(vs), o.abs(vt))); // 0/0 = NaN is kept, as in the reference
  const notBefore = o.greaterOrEqual(candidate(key), o.unsqueeze(key, [2])); // key_t >= key_s
  const cand = o.where(o.greater(ratio, g.scalar(2 * c.router_jitter_noise)), g.scalar(NEG), o.where(notBefore, vt, g.scalar(NEG))); // [N,D,D]
  const lse = g.op("ReduceLogSumExp", [cand], { axes: [2], keepdims: 0 }); // [N,D]
  const mult = o.exp(o.sub(upd, lse)); // [N,D] multipliers of the chosen columns, 0 elsewhere
  const denom = g.op("Gemm", [mult, g.const(Array(D).fill(1), [D, 1], "float", "routing.sum"), g.const([1e-6], [1])]); // [N,1] Σ + 1e-6 (C of shape [1]: a 0-d C aborts ONNX Runtime 1.30's WebGPU Gemm beyond 8 rows)
  // global weights (SH > 0): softmax over the chosen dynamic and the allowed shared columns of z
  let zg: string | undefined;
  const zgOf = () => (zg ??= o.scatterElements(zP, idx, upd, 1)); // [N,E]
  let weights: string;
  if (SH === 0) weights = named("ScatterElements", [zP, idx, o.div(mult, denom)], { axis: 1 }, names.weights);
  else {
    const gw = o.softmax(zgOf(), 1);
    const gDyn = o.matmul(gw, g.const(Array.from({ length: E }, (_, j) => (j < D ? 1 : 0)), [E, 1], "float", "routing.dynamic")); // [N,1]
    weights = named("ScatterElements", [gw, idx, o.mul(mult, o.div(gDyn, denom))], { axis: 1 }, names.weights);
  }
  let mask: string | undefined, k: string | undefined, chosen: string | undefined;
  const maskOf = () => (mask ??= named("Cast", [o.greater(zgOf(), g.scalar(NEG / 2))], { to: 1 }, names.mask)); // [N,E] 0/1
  /** [N] (1-D: the trace's k_i is int64 [N]): chosen count (before padding clears a token's columns) + u */
  const kOf = () => {
    if (k === undefined) {
      if (!opts.trace) throw new Error("compactGrinRouting: k needs the trace rows (compactGrinRows with trace)");
      if (opts.valid) k = o.add(o.reduceSum(o.cast(chosenOwn, "float"), [1], 0), o.reshape(u, g.ints([-1])));
      else k = o.matmul(o.concat([maskOf(), ku], 1), g.const([...Array.from({ length: E }, (_, j) => (j < D ? 1 : 0)), 0, 1], [E + 2]));
    }
    return k;
  };
  return {
    get chosen() {
      return (chosen ??= o.greater(SH === 0 ? maskOf() : o.slice(maskOf(), [0], [D], [1]), g.scalar(0.5)));
    },
    get mask() {
      return maskOf();
    },
    weights,
    get k() {
      return kOf();
    },
    logits: z,
  };
}

/**
 * The compact block alone, with the interface of moe-llm-graph.ts buildRoutingGraph (fp32): inputs router_logits
 * [N,E], ban_mask / force_mask [1,E], top_p [1]; outputs mask [N,E], weights [N,E], k int64 [N]. The router is an
 * identity Gemm (z · I + 0 = z exactly), so both graphs see the same logits: tests compare the two blocks on crafted
 * logits (exact ties, one-ulp near-ties, zeros) that a whole decoder cannot produce on purpose.
 */
export function buildCompactRoutingGraph(config: MoeLlmConfig): Uint8Array {
  if (!compactGrinFits(config, "fp32")) throw new Error("the compact routing block computes fp32 routing without token drop");
  const c = { ...config, num_hidden_layers: 1 };
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num, E = D + c.mlp_fixed_expert_num;
  const g = new GraphBuilder("uni_moe_routing_compact");
  const o = new Ops(g);
  const z = g.input("router_logits", "float", ["tokens", E]);
  const ban = g.input("ban_mask", "float", [1, E]);
  const force = g.input("force_mask", "float", [1, E]);
  const topP = g.input("top_p", "float", [1]);
  const { P, rows } = compactGrinRows(o, c, g.const(Array(E).fill(0), [1, E]), ban, force, topP, true);
  const eye = g.const(Array.from({ length: E * E }, (_, q) => (Math.floor(q / E) === q % E ? 1 : 0)), [E, E]);
  const r = compactGrinRouting(o, c, z, eye, rows[0]!, P, { trace: true });
  g.output(r.mask, "mask", "float", ["tokens", E]);
  g.output(r.weights, "weights", "float", ["tokens", E]);
  g.output(o.cast(r.k, "int64"), "k", "int64", ["tokens"]);
  return g.toBytes();
}
