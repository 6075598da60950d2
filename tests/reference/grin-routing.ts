/**
 * Plain-TS reference of Uni-MoE-2.0's routing as the released inference computes it (RELEASED.md §5; grin =
 * modeling_qwen_grin_moe.py), for one forward call of N tokens, in fp32 or in bf16. Written from the release's code
 * (dynamic_expert_selection, sparsemixer in eval mode, the token-drop block, cal_global_weight), with loops; it shares
 * nothing with models/moe-llm/grin-routing.ts or models/onnx/bf16.ts:
 * - bf16 rounding is done on the float32 bit pattern here (round to nearest, ties to even), not with a Cast;
 * - each bf16 op is computed in float64 and rounded (the release computes in float32 and rounds: the same bf16 value
 *   unless the float32 result sits within an ulp of a bf16 tie);
 * - the CUDA cumsum is simulated thread by thread as ATen's tensor_kernel_scan_innermost_dim runs it (one block of
 *   2 × 16 slots), and as a sequential scan for a single row (cub).
 * Interventions (ban/force/top_p override) follow the rules documented in models/moe-llm/grin-routing.ts.
 */
import type { MoeLlmConfig } from "@/models/moe-llm/config";

export type Precision = "fp32" | "bf16";

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** x → float32 → nearest bf16 (ties to even), by bit manipulation. */
export function toBf16(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0]!;
  if ((b & 0x7f800000) === 0x7f800000) return f32buf[0]!; // inf, NaN
  u32buf[0] = (((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return f32buf[0]!;
}

/** The rounding of a tensor op's result at a precision. */
export const roundAt = (p: Precision) => (p === "bf16" ? toBf16 : Math.fround);

export interface ReleasedOptions {
  precision: Precision;
  /** [E] > 0.5 bans / forces. */
  ban?: ArrayLike<number>;
  force?: ArrayLike<number>;
  /** The P in force (absent: the config's); 0 = the fixed top-k. P >= 1 takes every allowed column in fp32, and keeps the cut-off in bf16. */
  topP?: number;
  /** Apply the capacity drop of config.token_drop (default: whenever token_drop is on, as the release does). */
  drop?: boolean;
}

export interface ReleasedRoute {
  /** [N] k as the release reports it (before drops). */
  k: number[];
  /** [N][E] mask and weights after drops. */
  mask: number[][];
  weights: number[][];
  /** [N][E] 1 = selected, then dropped. */
  dropped: number[][];
  /** Logits as the routing saw them (bf16-rounded under bf16). */
  z: number[][];
  capacity?: number;
  /** The token the release raises on ("position" drop left it without a column), if any. */
  refused?: number;
}

function softmax(values: number[], on: boolean[]): number[] {
  let m = -Infinity;
  values.forEach((v, j) => on[j] && (m = Math.max(m, v)));
  const e = values.map((v, j) => (on[j] ? Math.exp(v - m) : 0));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** ATen's CUDA innermost-dim scan of one row in bf16: Sklansky over 32 slots, each add rounded. */
function cudaScanBf16(row: number[]): number[] {
  const threads = 16;
  const buf = new Array<number>(2 * threads).fill(0);
  row.forEach((v, i) => (buf[i] = v));
  buf[0] = toBf16(buf[0]! + 0); // + block_total (0)
  for (let s = 0; s < Math.log2(threads) + 1; s++)
    for (let x = 0; x < threads; x++) {
      const a = Math.floor(x / 2 ** s) * 2 ** (s + 1) + 2 ** s - 1;
      const ti = a + (x % 2 ** s) + 1;
      if (ti < 2 * threads) buf[ti] = toBf16(buf[ti]! + buf[a]!);
    }
  return buf.slice(0, row.length);
}

function cumsum(row: number[], p: Precision, rows: number): number[] {
  if (p === "bf16" && rows > 1) return cudaScanBf16(row);
  const r = roundAt(p);
  const out: number[] = [];
  let c = 0;
  for (const v of row) out.push((c = r(c + v)));
  return out;
}

/** Capacity of a call of n tokens: max(min_capacity, ceil(f32(n / D) · f32(capacity_factor))). */
export function capacityOf(c: MoeLlmConfig, n: number): number {
  const D = c.mlp_dynamic_expert_num + c.mlp_dynamic_null_expert_num;
  return Math.max(c.min_capacity, Math.ceil(Math.fround(Math.fround(n / D) * Math.fround(c.capacity_factor))));
}

/** The released routing of one forward call: rows = [N][E] logits (router_bias added). */
export function releasedRouting(c: MoeLlmConfig, rows: ArrayLike<number>[], o: ReleasedOptions): ReleasedRoute {
  const p = o.precision;
  const r = roundAt(p);
  const N = rows.length;
  const R = c.mlp_dynamic_expert_num, D = R + c.mlp_dynamic_null_expert_num, SH = c.mlp_fixed_expert_num, E = D + SH;
  const ban = o.ban ?? [], force = o.force ?? [];
  const allowed = Array.from({ length: D }, (_, j) => !((ban[j] ?? 0) > 0.5));
  const forced = Array.from({ length: D }, (_, j) => allowed[j]! && (force[j] ?? 0) > 0.5);
  const nAllowed = allowed.filter(Boolean).length;
  const z = rows.map((row) => Array.from({ length: E }, (_, j) => r(row[j]!)));
  const P = o.topP ?? c.mlp_dynamic_top_p;
  const eps = r(1e-6);
  const normalise = (w: number[]) => {
    const den = r(r(w.reduce((a, b) => a + b, 0)) + eps);
    return w.map((x) => r(x / den));
  };

  const k: number[] = [];
  const rw: number[][] = [];
  const maskBefore: number[][] = [];
  for (let n = 0; n < N; n++) {
    const zd = z[n]!.slice(0, D);
    // dynamic_expert_selection
    let kModel: number;
    if (nAllowed === 0) kModel = 0;
    else if (P > 0) {
      if (p === "fp32" && P >= 1) kModel = nAllowed;
      else {
        const probs = softmax(zd, allowed).map(r);
        const sorted = [...probs].sort((a, b) => b - a);
        const cum = cumsum(sorted, p, N);
        const threshold = r(P);
        kModel = cum.filter((v) => !(v >= threshold)).length + 1;
      }
    } else kModel = Math.trunc(c.mlp_dynamic_top_k);
    const byLogit = [...Array(D).keys()].filter((j) => allowed[j]).sort((a, b) => zd[b]! - zd[a]! || a - b);
    const own = kModel <= D ? byLogit.slice(0, Math.min(kModel, nAllowed)) : [];
    const steps = [...byLogit.filter((j) => forced[j]), ...byLogit.filter((j) => !forced[j])];
    const take = Math.min(own.length + forced.filter((f, j) => f && !own.includes(j)).length, nAllowed);
    k.push(kModel <= D ? take : kModel);
    // sparsemixer (eval): `take` rounds of argmax with the near-tie mask
    const taken = new Array<boolean>(D).fill(false);
    const mult = new Array<number>(D).fill(0);
    const threshold = r(2 * c.router_jitter_noise);
    for (let s = 0; s < take; s++) {
      const e = steps[s]!;
      const m = zd[e]!;
      const keep = zd.map((zj, j) => {
        if (!allowed[j] || taken[j]) return false;
        const ratio = r(r(m - zj) / Math.max(Math.abs(zj), Math.abs(m)));
        return !(ratio > threshold);
      });
      mult[e] = r(softmax(zd, keep)[e]!);
      taken[e] = true;
    }
    rw.push(normalise(mult));
    maskBefore.push([...taken.map((t) => (t ? 1 : 0)), ...Array.from({ length: SH }, (_, s) => ((ban[D + s] ?? 0) > 0.5 ? 0 : 1))]);
  }

  // token drop
  const mask = maskBefore.map((m) => [...m]);
  let capacity: number | undefined;
  if (c.token_drop && o.drop !== false) {
    capacity = capacityOf(c, N);
    const policy = (c as Record<string, unknown>).drop_policy ?? "probs";
    if (policy === "probs") {
      const C = Math.min(capacity, N);
      for (let j = 0; j < D; j++) {
        const users = [...Array(N).keys()].filter((n) => maskBefore[n]![j]);
        users.sort((a, b) => z[b]![j]! - z[a]![j]! || a - b);
        for (const n of users.slice(C)) mask[n]![j] = 0;
      }
    } else if (policy === "position") {
      for (let j = 0; j < E; j++) {
        let seen = 0;
        for (let n = 0; n < N; n++) if (maskBefore[n]![j] && seen++ >= capacity) mask[n]![j] = 0;
      }
    } else throw new Error(`Invalid drop_policy: ${String(policy)}`);
    for (let n = 0; n < N; n++) rw[n] = normalise(rw[n]!.map((w, j) => (mask[n]![j] ? w : 0)));
  }

  // cal_global_weight
  let refused: number | undefined;
  const weights = mask.map((m, n) => {
    if (SH === 0) return [...rw[n]!];
    if (!m.some(Boolean)) {
      refused ??= n;
      return new Array<number>(E).fill(NaN);
    }
    const g = softmax(z[n]!, m.map(Boolean)).map(r);
    const gDyn = r(g.slice(0, D).reduce((a, b) => a + b, 0));
    return [...rw[n]!.map((w) => r(w * gDyn)), ...g.slice(D)];
  });
  const dropped = maskBefore.map((m, n) => m.map((v, j) => (v && !mask[n]![j] ? 1 : 0)));
  return { k, mask, weights, dropped, z, capacity, refused };
}
