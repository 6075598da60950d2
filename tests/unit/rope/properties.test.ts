import { describe, expect, it } from "vitest";
import { computePositionIds, ROPE_MODES, type Layout, type PositionIds } from "@/engine/rope/positions";

// Seeded random layouts: invariants for every mode, and the uni-moe ids against an independent plain-loop
// reference (STYLE.md 12). Ids are integers, so the comparison is exact; the max difference is printed.

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** secondsPerFrame as an exact fraction p/q, so the reference can round with integers. */
const SPF: [number, number][] = [
  [1, 4],
  [1, 2],
  [3, 4],
  [7, 10],
  [1, 1],
  [3, 2],
  [2, 1],
  [3, 1],
];

function randomLayout(rand: () => number): { layout: Layout; spf: ([number, number] | undefined)[] } {
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const n = int(1, 8);
  const layout: Layout = [];
  const spf: ([number, number] | undefined)[] = [];
  for (let k = 0; k < n; k++) {
    const u = rand();
    if (u < 0.4) {
      layout.push({ kind: "text", tokens: int(1, 6) });
      spf.push(undefined);
    } else if (u < 0.6) {
      layout.push({ kind: "image", rows: int(1, 3), cols: int(1, 3), pool: int(1, 4) });
      spf.push(undefined);
    } else if (u < 0.8) {
      const f = SPF[int(0, SPF.length - 1)]!;
      layout.push({ kind: "video", frames: int(1, 10), rows: 1, cols: 1, pool: int(1, 3), secondsPerFrame: f[0] / f[1] });
      spf.push(f);
    } else {
      layout.push({ kind: "audio", chunks: int(1, 2) });
      spf.push(undefined);
    }
  }
  return { layout, spf };
}

/** round(num / den), halves to even, in integers. */
function divRoundHalfEven(num: number, den: number): number {
  const q = Math.floor(num / den);
  const twiceRem = 2 * (num - q * den);
  if (twiceRem < den) return q;
  if (twiceRem > den) return q + 1;
  return q % 2 === 0 ? q : q + 1;
}

/** The paper rule written the slow, obvious way: every span starts at 1 + the max of everything before it. */
function referenceUniMoe(layout: Layout, spf: ([number, number] | undefined)[]): [number[], number[], number[]] {
  const T: number[] = [];
  const H: number[] = [];
  const W: number[] = [];
  const next = () => (T.length === 0 ? 0 : Math.max(...T, ...H, ...W) + 1);
  layout.forEach((seg, k) => {
    const st = next();
    if (seg.kind === "text") {
      for (let n = 0; n < seg.tokens; n++) T.push(st + n), H.push(st + n), W.push(st + n);
    } else if (seg.kind === "image") {
      for (let r = 0; r < seg.rows; r++)
        for (let c = 0; c < seg.cols; c++)
          for (let i = 0; i < seg.pool; i++)
            for (let j = 0; j < seg.pool; j++) T.push(st), H.push(st + r * seg.pool + i), W.push(st + c * seg.pool + j);
    } else if (seg.kind === "video") {
      const [p, q] = spf[k]!;
      for (let f = 0; f < seg.frames; f++) {
        const dt = divRoundHalfEven(2 * f * p, q); // f * (p/q) s * 2 ids/s
        for (let i = 0; i < seg.pool; i++) for (let j = 0; j < seg.pool; j++) T.push(st + dt), H.push(st + i), W.push(st + j);
      }
    } else {
      for (let s = 0; s < seg.chunks * 10; s++) for (let n = 0; n < 20; n++) T.push(st + 6 * s), H.push(st + 6 * s), W.push(st + 6 * s);
    }
  });
  return [T, H, W];
}

function tokenCount(layout: Layout) {
  return layout.reduce((n, s) => n + (s.kind === "text" ? s.tokens : s.kind === "image" ? s.rows * s.cols * s.pool ** 2 : s.kind === "video" ? s.frames * s.pool ** 2 : s.chunks * 200), 0);
}

function checkInvariants(layout: Layout, r: PositionIds) {
  const n = tokenCount(layout);
  expect(r.t.length).toBe(n);
  expect(r.h.length).toBe(n);
  expect(r.w.length).toBe(n);
  expect(r.tokens.length).toBe(n);

  // per segment: token count, text ids +1 steps with t = h = w, span max = max over its tokens
  const bySegment = new Map<number, number[]>();
  r.tokens.forEach((tok, k) => {
    const list = bySegment.get(tok.segment) ?? [];
    list.push(k);
    bySegment.set(tok.segment, list);
  });
  layout.forEach((seg, s) => {
    const ks = bySegment.get(s) ?? [];
    const count = tokenCount([seg]);
    expect(ks.length).toBe(count);
    // each segment's tokens appear in its own order (interleaving only mixes two segments)
    expect(ks.map((k) => r.tokens[k]!.index)).toEqual(Array.from({ length: count }, (_, x) => x));
    if (seg.kind === "text") {
      for (let x = 0; x < ks.length; x++) {
        const k = ks[x]!;
        expect(r.tokens[k]!.modality).toBe("text");
        expect(r.h[k]).toBe(r.t[k]);
        expect(r.w[k]).toBe(r.t[k]);
        if (x > 0) expect(r.t[k]! - r.t[ks[x - 1]!]!).toBe(1);
      }
    } else expect(new Set(ks.map((k) => r.tokens[k]!.modality))).toEqual(new Set([seg.kind]));
    const span = r.spans.find((sp) => sp.segment === s)!;
    expect(span.tokens).toBe(count);
    expect(span.max).toBe(Math.max(...ks.flatMap((k) => [r.t[k]!, r.h[k]!, r.w[k]!])));
    expect(Math.min(...ks.flatMap((k) => [r.t[k]!, r.h[k]!, r.w[k]!]))).toBe(span.start);
  });

  // every span starts at the previous max + 1 (qwen2.5-omni: a video's audio track shares the video's start)
  expect(r.spans.map((s) => s.segment)).toEqual(layout.map((_, s) => s));
  let prevMax = -1;
  r.spans.forEach((span, k) => {
    const paired = r.appliedMode === "qwen2.5-omni" && span.kind === "audio" && layout[k - 1]?.kind === "video";
    if (paired) expect(span.start).toBe(r.spans[k - 1]!.start);
    else expect(span.start).toBe(prevMax + 1);
    prevMax = Math.max(prevMax, span.max);
  });
}

describe("seeded random layouts", () => {
  const rand = mulberry32(0x5eed);
  const cases = Array.from({ length: 200 }, () => randomLayout(rand));

  it("uni-moe matches the plain-loop reference exactly", () => {
    let maxDiff = 0;
    let tokens = 0;
    for (const { layout, spf } of cases) {
      const r = computePositionIds(layout, "uni-moe");
      const [T, H, W] = referenceUniMoe(layout, spf);
      expect(r.t.length).toBe(T.length);
      for (let k = 0; k < T.length; k++) maxDiff = Math.max(maxDiff, Math.abs(r.t[k]! - T[k]!), Math.abs(r.h[k]! - H[k]!), Math.abs(r.w[k]! - W[k]!));
      tokens += T.length;
    }
    console.log(`rope uni-moe vs reference: ${cases.length} layouts, ${tokens} tokens, max |diff| = ${maxDiff}`);
    expect(maxDiff).toBe(0);
  });

  it("invariants hold in every mode", () => {
    for (const mode of ROPE_MODES) for (const { layout } of cases) checkInvariants(layout, computePositionIds(layout, mode));
  });

  it("1d is 0..n-1; uni-moe-released is uni-moe with an image or video, else 1d", () => {
    for (const { layout } of cases) {
      const one = computePositionIds(layout, "1d");
      expect(one.t).toEqual(one.t.map((_, k) => k));
      expect(one.h).toEqual(one.t);
      expect(one.w).toEqual(one.t);
      const rel = computePositionIds(layout, "uni-moe-released");
      const vision = layout.some((s) => s.kind === "image" || s.kind === "video");
      const expected = vision ? computePositionIds(layout, "uni-moe") : one;
      expect([rel.t, rel.h, rel.w]).toEqual([expected.t, expected.h, expected.w]);
    }
  });

  it("qwen2.5-omni interleaving keeps each pair's 2-s chunks in order and loses no token", () => {
    const pairs = cases.filter(({ layout }) => layout.some((seg, s) => seg.kind === "video" && layout[s + 1]?.kind === "audio")).length;
    expect(pairs).toBeGreaterThan(5); // the generator does produce video + audio pairs
    for (const { layout } of cases) {
      const r = computePositionIds(layout, "qwen2.5-omni");
      layout.forEach((seg, s) => {
        if (seg.kind !== "video" || layout[s + 1]?.kind !== "audio") return;
        const span = r.spans.find((sp) => sp.segment === s)!;
        const ks = r.tokens.flatMap((tok, k) => (tok.segment === s || tok.segment === s + 1 ? [k] : []));
        // contiguous in the sequence, chunk index (t - st) / 50 never decreases
        expect(ks.at(-1)! - ks[0]! + 1).toBe(ks.length);
        const chunks = ks.map((k) => Math.floor((r.t[k]! - span.start) / 50));
        for (let x = 1; x < chunks.length; x++) expect(chunks[x]!).toBeGreaterThanOrEqual(chunks[x - 1]!);
        // within each segment, layout order is preserved
        for (const seg2 of [s, s + 1]) {
          const idx = ks.filter((k) => r.tokens[k]!.segment === seg2).map((k) => r.tokens[k]!.index);
          expect(idx).toEqual(idx.map((_, x) => x));
        }
      });
    }
  });
});
