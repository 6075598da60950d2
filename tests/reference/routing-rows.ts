/**
 * Router-logit rows built on purpose for the routing tests: tokens whose Top-P cumsum lands on (or one bf16 ulp
 * around) the threshold, and tokens whose GRIN near-tie ratio lands on (or around) 2·jitter, for a real-model layout
 * (4 routed + 1 null + 2 shared). All values are bf16 numbers, so fp32 and bf16 routing see the same logits and differ
 * only by their arithmetic.
 */
import type { MoeLlmConfig } from "@/models/moe-llm/config";
import { prng } from "./random";
import { releasedRouting, toBf16 } from "./grin-routing";

/** The bf16 neighbours of a bf16 value x: x + n ulps. */
export function bf16Step(x: number, n: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const sign = x < 0 ? -1 : 1;
  u[0] = (u[0]! + sign * n * 0x10000) >>> 0;
  return f[0]!;
}

const D = 5;

/**
 * Rows whose sorted bf16 cumsum passes P within a few ulps: the top logit (or the top two) swept over consecutive bf16
 * values around the point where p0 (or p0 + p1) crosses P, the other logits random.
 */
export function nearThresholdRows(c: MoeLlmConfig, seed: number, count: number): number[][] {
  const r = prng(seed);
  const P = c.mlp_dynamic_top_p;
  const E = D + c.mlp_fixed_expert_num;
  const rows: number[][] = [];
  while (rows.length < count) {
    const rest = Array.from({ length: D - 1 }, () => toBf16(r() * 2 - 1));
    const pair = r() < 0.5; // p0 + p1 crosses P rather than p0 alone
    const shared = Array.from({ length: E - D }, () => toBf16(r() * 2 - 1));
    // solve p_top ≈ target for the top logit(s) in float64, then walk bf16 steps around it
    const target = pair ? P / 2 : P;
    const others = Math.log(rest.slice(pair ? 1 : 0).reduce((a, v) => a + Math.exp(v), 0));
    const zTop = toBf16(pair ? Math.log(target / (1 - 2 * target)) + others : Math.log(target / (1 - target)) + others);
    for (let s = -6; s <= 6 && rows.length < count; s++) {
      const z0 = bf16Step(zTop, s);
      const dyn = pair ? [z0, bf16Step(z0, -((s + 7) % 3)), ...rest.slice(1)] : [z0, ...rest];
      rows.push([...dyn, ...shared]);
    }
  }
  return rows;
}

/**
 * Rows whose first GRIN step has a runner-up z1 at ratio q = (m − z1) / max(|z1|, |m|) next to 2·jitter: every bf16 m
 * of ±[0.5, 8) with z1 = m − n bf16 ulps (n = 1..8) is classified, and the rows taken are those where fp32 (q <= f32(2·jitter))
 * and bf16 (bf16(q) <= bf16(2·jitter)) decide differently, then those with bf16(q) exactly at 2·jitter or one ulp
 * either side. The other three dynamic logits sit well below, so Top-P picks m and z1 (k = 2).
 */
export function nearTieRows(c: MoeLlmConfig, seed: number, count: number): number[][] {
  const r = prng(seed);
  const thrB = toBf16(2 * c.router_jitter_noise), thrF = Math.fround(2 * c.router_jitter_noise);
  const E = D + c.mlp_fixed_expert_num;
  const disagree: [number, number][] = [];
  const boundary: [number, number][] = [];
  for (const sign of [1, -1])
    for (let m = 0.5; m < 8; m = bf16Step(m, 1))
      for (let n = 1; n <= 8; n++) {
        const zm = sign * m, z1 = bf16Step(zm, -n);
        const q = Math.fround(Math.fround(zm - z1) / Math.max(Math.abs(z1), Math.abs(zm)));
        const qb = toBf16(toBf16(zm - z1) / Math.max(Math.abs(z1), Math.abs(zm)));
        if (!(q > thrF) !== !(qb > thrB)) disagree.push([zm, z1]);
        else if (qb === thrB || qb === bf16Step(thrB, 1) || qb === bf16Step(thrB, -1)) boundary.push([zm, z1]);
      }
  // few bf16 pairs fall in the window (8 disagreements for |m| in [0.5, 8)): each is used several times, with other logits around it
  const pick = (list: [number, number][], k: number) => Array.from({ length: list.length ? k : 0 }, () => list[Math.floor(r() * list.length)]!);
  return [...pick(disagree, Math.ceil(count / 2)), ...pick(boundary, Math.floor(count / 2))].map(([m, z1]) => {
    const dyn = Array.from({ length: D - 2 }, () => toBf16(m - 3 - r() * 3));
    dyn.splice(Math.floor(r() * (D - 1)), 0, m);
    dyn.splice(Math.floor(r() * D), 0, z1);
    return [...dyn, ...Array.from({ length: E - D }, () => toBf16(r() * 2 - 1))];
  });
}

/** How the rows exercise the rules: tokens whose k, or whose routing weights (by > 0.05), differ between fp32 and bf16. */
export function describeRows(c: MoeLlmConfig, rows: number[][]) {
  const f = releasedRouting(c, rows, { precision: "fp32" });
  const b = releasedRouting(c, rows, { precision: "bf16" });
  let kDiffers = 0, weightsDiffer = 0;
  rows.forEach((_, n) => {
    if (f.k[n] !== b.k[n]) kDiffers++;
    // the routing weights (dynamic weights over their sum): the multipliers, before the global softmax scales them
    const rw = (w: number[]) => {
      const s = w.slice(0, D).reduce((a, x) => a + x, 0);
      return w.slice(0, D).map((x) => (s > 0 ? x / s : 0));
    };
    const a = rw(f.weights[n]!), bb = rw(b.weights[n]!);
    if (a.some((w, j) => Math.abs(w - bb[j]!) > 0.05)) weightsDiffer++;
  });
  return { kDiffers, weightsDiffer };
}
