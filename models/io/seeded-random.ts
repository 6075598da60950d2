/**
 * A small deterministic PRNG for seeded weights and seeded test inputs.
 *
 * Generator: xoshiro128** (32-bit state x4), seeded through splitmix32 so that any 32-bit seed
 * (including 0) gives a well-mixed, non-zero state. Normals use Box–Muller (both values are used).
 * The sequence for a given seed is part of the reference models' identity: changing anything here
 * changes every seeded weight, so bump `GENERATOR_VERSION` in models/moe-llm/uni-moe-tiny.ts if you do.
 */

/** One step of splitmix32: returns [output, next state]. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [z >>> 0, next];
}

/** FNV-1a 32-bit hash of a string's UTF-16 code units; used to derive per-name seeds. */
export function hashString32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Mixes a seed with a label (e.g. a parameter name) into a new 32-bit seed. */
export function deriveSeed(seed: number, label: string): number {
  const [a] = splitmix32((seed >>> 0) ^ hashString32(label));
  const [b] = splitmix32(a ^ Math.imul(seed >>> 0, 0x27d4eb2d));
  return b;
}

export class SeededRandom {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`SeededRandom: seed must be a finite number, got ${seed}`);
    let st = Math.trunc(seed) >>> 0;
    const out: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [z, next] = splitmix32(st);
      out.push(z);
      st = next;
    }
    [this.s0, this.s1, this.s2, this.s3] = out as [number, number, number, number];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // xoshiro must not be all-zero
  }

  /** Next uniform 32-bit unsigned integer (xoshiro128**). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`SeededRandom.int: n must be a positive integer, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal N(0, 1) via Box–Muller; the second value of each pair is returned next time. */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    // u1 in (0, 1]: avoids log(0).
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Fills `out` with N(mean, std²) samples and returns it. */
  fillNormal(out: Float32Array, std = 1, mean = 0): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /** Fills `out` with uniform samples in [lo, hi) and returns it. */
  fillUniform(out: Float32Array, lo = 0, hi = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Convenience: a new Float32Array of `n` N(0, std²) samples from `seed`. */
export function seededNormal(seed: number, n: number, std = 1): Float32Array {
  return new SeededRandom(seed).fillNormal(new Float32Array(n), std);
}
