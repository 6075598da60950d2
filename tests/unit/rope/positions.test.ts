import { describe, expect, it } from "vitest";
import { computePositionIds, LayoutError, parseLayout, roundHalfEven, ROPE_MODES, type LayoutInput } from "@/engine/rope/positions";

// Every expectation below is written out by hand from PAPER.md §3, not computed with the code under test.

const range = (from: number, n: number) => Array.from({ length: n }, (_, k) => from + k);
const rep = (v: number, n: number) => Array(n).fill(v) as number[];
const ids = (layout: LayoutInput, mode?: (typeof ROPE_MODES)[number]) => {
  const r = computePositionIds(layout, mode);
  return { t: r.t, h: r.h, w: r.w, r };
};

describe("text only", () => {
  it("t = h = w = 0..n-1 in every mode", () => {
    for (const mode of ROPE_MODES) {
      const { t, h, w } = ids([{ kind: "text", tokens: 5 }], mode);
      expect({ mode, t, h, w }).toEqual({ mode, t: [0, 1, 2, 3, 4], h: [0, 1, 2, 3, 4], w: [0, 1, 2, 3, 4] });
    }
  });

  it("consecutive text segments continue the running index", () => {
    expect(ids([{ kind: "text", tokens: 2 }, { kind: "text", tokens: 3 }]).t).toEqual([0, 1, 2, 3, 4]);
  });
});

describe("uni-moe: image with several tiles", () => {
  // 2 rows x 3 cols of tiles, pool s = 2 (4 tokens a tile), after 2 text tokens: st = 2.
  const layout: LayoutInput = [{ kind: "text", tokens: 2 }, { kind: "image", rows: 2, cols: 3, pool: 2 }, { kind: "text", tokens: 2 }];

  it("enumerates tile by tile, raster inside a tile: t = st, h = st + r*s + i, w = st + c*s + j", () => {
    const { t, h, w, r } = ids(layout);
    expect(t).toEqual([0, 1, ...rep(2, 24), 8, 9]);
    // tiles (0,0) (0,1) (0,2) (1,0) (1,1) (1,2); inside a tile (i,j) = (0,0) (0,1) (1,0) (1,1)
    expect(h.slice(2, 26)).toEqual([2, 2, 3, 3, 2, 2, 3, 3, 2, 2, 3, 3, 4, 4, 5, 5, 4, 4, 5, 5, 4, 4, 5, 5]);
    expect(w.slice(2, 26)).toEqual([2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7]);
    // text resumes at the span's max (w = 7) + 1
    expect(h.slice(26)).toEqual([8, 9]);
    expect(w.slice(26)).toEqual([8, 9]);
    expect(r.tokens[2 + 4 * 4 + 3]).toEqual({ modality: "image", segment: 1, index: 19, tileRow: 1, tileCol: 1, i: 1, j: 1 });
    expect(r.spans.map((s) => [s.kind, s.start, s.max, s.tokens])).toEqual([
      ["text", 0, 1, 2],
      ["image", 2, 7, 24],
      ["text", 8, 9, 2],
    ]);
  });

  it("qwen2-vl: h/w raster over the whole 4 x 6 grid by sequence index", () => {
    const { t, h, w } = ids(layout, "qwen2-vl");
    expect(t).toEqual([0, 1, ...rep(2, 24), 8, 9]);
    expect(h.slice(2, 26)).toEqual([...rep(2, 6), ...rep(3, 6), ...rep(4, 6), ...rep(5, 6)]);
    expect(w.slice(2, 26)).toEqual([2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7]);
    expect(t.slice(26)).toEqual([8, 9]);
  });

  it("qwen2-vl and uni-moe agree on a single tile", () => {
    const one: LayoutInput = [{ kind: "text", tokens: 1 }, { kind: "image", rows: 1, cols: 1, pool: 3 }];
    const a = ids(one);
    const b = ids(one, "qwen2-vl");
    expect([a.t, a.h, a.w]).toEqual([b.t, b.h, b.w]);
    expect(a.h.slice(1)).toEqual([1, 1, 1, 2, 2, 2, 3, 3, 3]);
    expect(a.w.slice(1)).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3]);
  });
});

describe("uni-moe: video", () => {
  it("1 fps: t = st + 2f (2 ids per second), h/w as one tile", () => {
    const { t, h, w } = ids([{ kind: "text", tokens: 3 }, { kind: "video", frames: 8, pool: 2, secondsPerFrame: 1 }, { kind: "text", tokens: 1 }]);
    // st = 3; frame f: t = 3 + 2f; max = 3 + 14 = 17
    expect(t).toEqual([0, 1, 2, ...[3, 5, 7, 9, 11, 13, 15, 17].flatMap((v) => rep(v, 4)), 18]);
    expect(h).toEqual([0, 1, 2, ...Array(8).fill([3, 3, 4, 4]).flat(), 18]);
    expect(w).toEqual([0, 1, 2, ...Array(8).fill([3, 4, 3, 4]).flat(), 18]);
  });

  it("0.5 fps (a frame every 2 s) steps t by 4 — the paper's example", () => {
    const { t, r } = ids([{ kind: "video", frames: 8, pool: 1, secondsPerFrame: 2 }]);
    expect(t).toEqual([0, 4, 8, 12, 16, 20, 24, 28]);
    expect(r.tokens[3]).toMatchObject({ modality: "video", frame: 3, seconds: 6, i: 0, j: 0 });
  });

  it("rounds, never truncates: secondsPerFrame 0.7 → 1.4f rounded", () => {
    // 1.4f = 0, 1.4, 2.8, 4.2, 5.6, 7, 8.4, 9.8 → rounded 0 1 3 4 6 7 8 10 (truncated would be 0 1 2 4 5 7 8 9)
    expect(ids([{ kind: "video", frames: 8, pool: 1, secondsPerFrame: 0.7 }]).t).toEqual([0, 1, 3, 4, 6, 7, 8, 10]);
  });

  it("secondsPerFrame 0.75: halves round to even like torch.round in the released code", () => {
    // 1.5f = 0, 1.5, 3, 4.5, 6, 7.5, 9, 10.5 → 0 2 3 4 6 8 9 10 (truncated: 0 1 3 4 6 7 9 10)
    expect(ids([{ kind: "video", frames: 8, pool: 1, secondsPerFrame: 0.75 }]).t).toEqual([0, 2, 3, 4, 6, 8, 9, 10]);
    expect([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001, 0.1 * 5].map(roundHalfEven)).toEqual([0, 2, 2, 4, 2, 3, 0]);
  });

  it("a short frame list is allowed but warned about (the sampler, not the rope rule, owns 8..N even)", () => {
    const r = computePositionIds([{ kind: "video", frames: 3, pool: 1 }]);
    expect(r.t).toEqual([0, 2, 4]);
    expect(r.warnings.join()).toMatch(/even count of at least 8/);
    expect(computePositionIds([{ kind: "video", frames: 8, pool: 1 }]).warnings).toEqual([]);
    expect(computePositionIds([{ kind: "video", frames: 3, pool: 1 }], "qwen2-vl").warnings).toEqual([]);
  });
});

describe("uni-moe: audio", () => {
  it("3 chunks = 30 segments of 20 tokens; segment k gets st + 6k on all axes", () => {
    const { t, h, w, r } = ids([{ kind: "text", tokens: 1 }, { kind: "audio", chunks: 3 }, { kind: "text", tokens: 1 }]);
    const expected = [0];
    for (let k = 0; k < 30; k++) expected.push(...rep(1 + 6 * k, 20));
    expected.push(1 + 6 * 29 + 1); // 176
    expect(t).toEqual(expected);
    expect(h).toEqual(expected);
    expect(w).toEqual(expected);
    expect(t.at(-1)).toBe(176);
    // token 1 + 2*200 + 3*20 + 5: chunk 2, segment 3 inside it, global k = 23 → id 1 + 138
    expect(r.tokens[1 + 400 + 60 + 5]).toEqual({ modality: "audio", segment: 1, index: 465, chunk: 2, audioSegment: 3, seconds: 69 });
    expect(t[1 + 400 + 60 + 5]).toBe(139);
  });
});

// text, image (1 x 2 tiles, s = 3), text, video (8 frames at 1 fps, s = 2) followed by its audio (1 chunk), text
const all: LayoutInput = [
  { kind: "text", tokens: 4 },
  { kind: "image", rows: 1, cols: 2, pool: 3 },
  { kind: "text", tokens: 2 },
  { kind: "video", frames: 8, pool: 2, secondsPerFrame: 1 },
  { kind: "audio", chunks: 1 },
  { kind: "text", tokens: 3 },
];

describe("all four modalities together", () => {
  it("uni-moe: each span starts at max so far + 1, text resumes after the span's max, video before audio", () => {
    const { t, h, w, r } = ids(all);
    expect(t.length).toBe(4 + 18 + 2 + 32 + 200 + 3);
    expect(r.spans.map((s) => [s.kind, s.start, s.max])).toEqual([
      ["text", 0, 3],
      ["image", 4, 9], // w = 4 + 1*3 + 2
      ["text", 10, 11],
      ["video", 12, 26], // t = 12 + 2*7
      ["audio", 27, 81], // 27 + 6*9
      ["text", 82, 84],
    ]);
    expect(t.slice(0, 4)).toEqual([0, 1, 2, 3]);
    expect(h.slice(4, 22)).toEqual([4, 4, 4, 5, 5, 5, 6, 6, 6, 4, 4, 4, 5, 5, 5, 6, 6, 6]);
    expect(w.slice(4, 22)).toEqual([4, 5, 6, 4, 5, 6, 4, 5, 6, 7, 8, 9, 7, 8, 9, 7, 8, 9]);
    expect(t.slice(22, 24)).toEqual([10, 11]);
    expect(t.slice(24, 28)).toEqual([12, 12, 12, 12]);
    expect(h.slice(24, 28)).toEqual([12, 12, 13, 13]);
    expect(t.slice(52, 56)).toEqual([26, 26, 26, 26]);
    expect(t.slice(56, 76)).toEqual(rep(27, 20));
    expect(t.slice(236, 256)).toEqual(rep(81, 20));
    expect(t.slice(256)).toEqual([82, 83, 84]);
    expect(w.slice(256)).toEqual([82, 83, 84]);
  });

  it("uni-moe-released equals uni-moe when an image or video is present", () => {
    const a = ids(all);
    const b = ids(all, "uni-moe-released");
    expect([b.t, b.h, b.w]).toEqual([a.t, a.h, a.w]);
    expect(b.r.appliedMode).toBe("uni-moe");
  });

  it("1d: 0..n-1 on all three axes", () => {
    const { t, h, w } = ids(all, "1d");
    expect(t).toEqual(range(0, 259));
    expect(h).toEqual(t);
    expect(w).toEqual(t);
  });

  it("qwen2-vl: t = frame index, whole-grid raster, audio as 1D text", () => {
    const { t, h, w, r } = ids(all, "qwen2-vl");
    expect(r.spans.map((s) => [s.kind, s.start, s.max])).toEqual([
      ["text", 0, 3],
      ["image", 4, 9],
      ["text", 10, 11],
      ["video", 12, 19], // t = 12 + 7
      ["audio", 20, 219], // running index
      ["text", 220, 222],
    ]);
    // image grid 3 x 6, raster by index
    expect(h.slice(4, 22)).toEqual([...rep(4, 6), ...rep(5, 6), ...rep(6, 6)]);
    expect(w.slice(4, 22)).toEqual([4, 5, 6, 7, 8, 9, 4, 5, 6, 7, 8, 9, 4, 5, 6, 7, 8, 9]);
    expect(t.slice(24, 56)).toEqual(range(12, 8).flatMap((v) => rep(v, 4)));
    expect(t.slice(56, 256)).toEqual(range(20, 200));
    expect(h.slice(56, 256)).toEqual(range(20, 200));
  });

  it("qwen2.5-omni: video and its audio from one st, 25 ids/s, interleaved in 2-s (50-id) chunks", () => {
    const { t, h, r } = ids(all, "qwen2.5-omni");
    expect(t.length).toBe(259);
    // image: t = st = 4, whole-grid raster (same as qwen2-vl)
    expect(t.slice(4, 22)).toEqual(rep(4, 18));
    expect(h.slice(4, 22)).toEqual([...rep(4, 6), ...rep(5, 6), ...rep(6, 6)]);
    expect(t.slice(22, 24)).toEqual([10, 11]);
    // st = 12. video frame f: t = 12 + 25f → chunk floor(f / 2). audio token m: 12 + floor(3.75 m)
    // chunk 0: frames 0,1 (8 tokens) then audio m = 0..13 (3.75*13 = 48.75 < 50 <= 52.5)
    const audioT = (m: number) => 12 + Math.floor((m * 15) / 4);
    const seq = t.slice(24, 24 + 232);
    expect(seq.slice(0, 8)).toEqual([12, 12, 12, 12, 37, 37, 37, 37]);
    expect(seq.slice(8, 22)).toEqual(range(0, 14).map(audioT));
    expect(seq.slice(8, 22).slice(0, 4)).toEqual([12, 15, 19, 23]);
    // chunk 1: frames 2,3 then audio m = 14..26 (3.75*26 = 97.5 < 100 <= 101.25)
    expect(seq.slice(22, 30)).toEqual([62, 62, 62, 62, 87, 87, 87, 87]);
    expect(seq.slice(30, 43)).toEqual(range(14, 13).map(audioT));
    // chunk 2: frames 4,5; audio 27..39. chunk 3: frames 6,7; audio 40..53. Then audio only.
    expect(seq.slice(43, 51)).toEqual([112, 112, 112, 112, 137, 137, 137, 137]);
    expect(seq.slice(51, 64)).toEqual(range(27, 13).map(audioT));
    expect(seq.slice(64, 72)).toEqual([162, 162, 162, 162, 187, 187, 187, 187]);
    expect(seq.slice(72)).toEqual(range(40, 160).map(audioT));
    expect(r.tokens[24 + 8]).toMatchObject({ modality: "audio", segment: 4, index: 0 });
    expect(r.tokens[24 + 22]).toMatchObject({ modality: "video", segment: 3, frame: 2 });
    // text resumes after the pair's max: audio m = 199 → 12 + 746 = 758
    expect(t.slice(256)).toEqual([759, 760, 761]);
    expect(r.spans.filter((s) => s.kind === "video" || s.kind === "audio").map((s) => [s.kind, s.start, s.max])).toEqual([
      ["video", 12, 187],
      ["audio", 12, 758],
    ]);
  });

  it("qwen2.5-omni: text between video and audio (markers) means no interleaving", () => {
    const { t, r } = ids([{ kind: "video", frames: 2, pool: 1, secondsPerFrame: 2 }, { kind: "text", tokens: 1 }, { kind: "audio", chunks: 1 }], "qwen2.5-omni");
    expect(t.slice(0, 3)).toEqual([0, 50, 51]); // video t = 50f; text 51
    expect(t.slice(3, 6)).toEqual([52, 55, 59]); // audio from st = 52
    expect(r.tokens.map((x) => x.segment).slice(0, 4)).toEqual([0, 0, 1, 2]);
  });
});

describe("uni-moe-released: the released code's quirk", () => {
  it("audio-only prompt → plain 1D ids", () => {
    const layout: LayoutInput = [{ kind: "text", tokens: 3 }, { kind: "audio", chunks: 1 }, { kind: "text", tokens: 2 }];
    const rel = ids(layout, "uni-moe-released");
    expect(rel.t).toEqual(range(0, 205));
    expect(rel.h).toEqual(range(0, 205));
    expect(rel.r.appliedMode).toBe("1d");
    // the paper rule for the same prompt is 3D: audio at 3 + 6k, text after at 58
    const paper = ids(layout);
    expect(paper.t.slice(3, 23)).toEqual(rep(3, 20));
    expect(paper.t.slice(203)).toEqual([58, 59]);
  });

  it("audio with an image → 3D (same as the paper rule)", () => {
    const layout: LayoutInput = [{ kind: "image", rows: 1, cols: 1, pool: 2 }, { kind: "audio", chunks: 1 }];
    const rel = ids(layout, "uni-moe-released");
    expect(rel.t.slice(0, 4)).toEqual([0, 0, 0, 0]);
    expect(rel.w.slice(0, 4)).toEqual([0, 1, 0, 1]);
    expect(rel.t.slice(4, 24)).toEqual(rep(2, 20));
    expect(rel.t.at(-1)).toBe(2 + 54);
    expect(rel.r.appliedMode).toBe("uni-moe");
  });

  it("an image without audio is 3D too (the released condition is 'image or video grid given')", () => {
    const rel = ids([{ kind: "image", rows: 1, cols: 1, pool: 2 }, { kind: "text", tokens: 1 }], "uni-moe-released");
    expect([rel.t, rel.h, rel.w]).toEqual([
      [0, 0, 0, 0, 2],
      [0, 0, 1, 1, 2],
      [0, 1, 0, 1, 2],
    ]);
  });
});

describe("layout validation", () => {
  it("names the segment and field of each problem", () => {
    const bad = [{ kind: "video", frames: 0, rows: 2 }, { kind: "movie" }, 3, { kind: "text", tokens: 1.5 }, { kind: "audio", chunks: 1, extra: true }];
    let err: unknown;
    try {
      parseLayout(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LayoutError);
    const issues = (err as LayoutError).issues;
    expect(issues).toContain("layout[0] (video).frames: frames must be at least 1");
    expect(issues).toContain("layout[0] (video).rows: video frames are single 384² tiles: rows must be 1");
    expect(issues).toContain("layout[0] (video).pool: pool (tokens per tile side, s) is required");
    expect(issues.some((m) => m.startsWith("layout[1] (movie).kind: kind must be one of"))).toBe(true);
    expect(issues).toContain("layout[2]: a segment must be an object");
    expect(issues).toContain("layout[3] (text).tokens: tokens must be a whole number");
    expect(issues.some((m) => m.startsWith("layout[4] (audio)") && /extra/.test(m))).toBe(true);
    expect(() => parseLayout({ segments: [] })).toThrow(/a layout is a JSON array of segments/);
    expect(() => parseLayout([{ kind: "image", rows: 100, cols: 100, pool: 100 }])).toThrow(/at most/);
  });

  it("fills defaults: video rows = cols = 1, secondsPerFrame = 1", () => {
    expect(parseLayout([{ kind: "video", frames: 8, pool: 2 }])).toEqual([{ kind: "video", frames: 8, rows: 1, cols: 1, pool: 2, secondsPerFrame: 1 }]);
  });

  it("an empty layout gives empty ids", () => {
    expect(ids([])).toMatchObject({ t: [], h: [], w: [] });
  });
});
