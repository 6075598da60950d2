/**
 * Any-resolution image preprocessing for the SigLIP-style vision encoder (PAPER.md §4):
 * choose a tile grid → bicubic resize onto the grid canvas → split into 384×384 tiles (raster order,
 * no global thumbnail tile) → normalise each tile to CHW float32: x/255, then (x − 0.5)/0.5.
 *
 * Grid choice (LLaVA-NeXT `select_best_resolution`): for every candidate grid of `rows × cols` tiles the
 * canvas is (cols·T) × (rows·T) pixels. The image is scaled to fit inside the canvas keeping its aspect
 * ratio, scale = min(canvasW / w, canvasH / h), giving floor(w·scale) × floor(h·scale) pixels.
 *   effective = min(floor(w·scale) · floor(h·scale), w · h)   (pixels of real detail; no credit for upscaling)
 *   wasted    = canvasW · canvasH − effective
 * The grid with the largest effective resolution wins; ties go to the least wasted area, then to the
 * earlier candidate in the list.
 *
 * Resize: "pad" (default, as LLaVA-NeXT `resize_and_pad_image`) scales the image to fit inside the canvas
 * with its aspect ratio kept and centres it on a black canvas; "stretch" scales it to fill the canvas exactly.
 */
import sharp from "sharp";

export type Grid = readonly [rows: number, cols: number];

/** Candidate grids as [rows, cols]: 1, 2, 3 and 4 tiles in the common shapes. */
export const DEFAULT_GRIDS: readonly Grid[] = [
  [1, 1],
  [1, 2],
  [2, 1],
  [2, 2],
  [1, 3],
  [3, 1],
];
export const DEFAULT_GRIDS_TEXT = "1x1, 1x2, 2x1, 2x2, 1x3, 3x1";
export const TILE_SIZE = 384;
/** SigLIP's normalisation: mean = std = 0.5 per channel (after x/255). */
export const IMAGE_MEAN = [0.5, 0.5, 0.5] as const;
export const IMAGE_STD = [0.5, 0.5, 0.5] as const;
/** Limit on tiles per image (a 6×6 grid at 384 px is already 2304 px wide). */
export const MAX_GRID_TILES = 36;

export type ResizeMode = "pad" | "stretch";

/**
 * Parses a grid list: "rows x cols" items separated by commas or spaces ("1x1, 1x2, 2x1"; "×" works too),
 * or JSON `[[1,1],[1,2]]`. Throws a message meant for the user on anything else.
 */
export function parseGrids(text: string): Grid[] {
  const t = text.trim();
  if (t === "") throw new Error("the grid list is empty: give candidate grids as rows x cols, e.g. 1x1, 1x2, 2x1, 2x2");
  let pairs: unknown[];
  if (t.startsWith("[")) {
    try {
      pairs = JSON.parse(t) as unknown[];
    } catch {
      throw new Error(`the grid list "${t}" is not valid JSON; use e.g. [[1,1],[1,2]] or 1x1, 1x2`);
    }
    if (!Array.isArray(pairs)) throw new Error("the grid list must be an array of [rows, cols] pairs");
  } else {
    pairs = t.split(/[\s,;]+/).filter(Boolean).map((item) => {
      const m = /^(\d+)\s*[x×*]\s*(\d+)$/i.exec(item);
      if (!m) throw new Error(`grid "${item}" is not of the form rows x cols (e.g. 2x1)`);
      return [Number(m[1]), Number(m[2])];
    });
  }
  const grids: Grid[] = [];
  for (const p of pairs) {
    if (!Array.isArray(p) || p.length !== 2 || !p.every((v) => Number.isInteger(v) && v >= 1)) {
      throw new Error(`grid ${JSON.stringify(p)} must be two positive integers [rows, cols]`);
    }
    const [r, c] = p as [number, number];
    if (r * c > MAX_GRID_TILES) throw new Error(`grid ${r}x${c} has ${r * c} tiles; at most ${MAX_GRID_TILES} are allowed`);
    if (!grids.some(([a, b]) => a === r && b === c)) grids.push([r, c]);
  }
  return grids;
}

export interface GridChoice {
  rows: number;
  cols: number;
  effective: number;
  wasted: number;
}

/** The best grid for a w×h image (see the file comment for the rule). */
export function selectGrid(width: number, height: number, grids: readonly Grid[] = DEFAULT_GRIDS, tile = TILE_SIZE): GridChoice {
  if (!(width > 0 && height > 0)) throw new Error(`selectGrid: bad image size ${width}×${height}`);
  if (grids.length === 0) throw new Error("selectGrid: no candidate grids");
  let best: GridChoice | undefined;
  for (const [rows, cols] of grids) {
    const cw = cols * tile;
    const ch = rows * tile;
    const scale = Math.min(cw / width, ch / height);
    const effective = Math.min(Math.floor(width * scale) * Math.floor(height * scale), width * height);
    const wasted = cw * ch - effective;
    if (!best || effective > best.effective || (effective === best.effective && wasted < best.wasted)) best = { rows, cols, effective, wasted };
  }
  return best!;
}

/**
 * Size of the image inside the canvas in "pad" mode (as LLaVA-NeXT): the limiting side is filled
 * exactly, the other is ceil(side · scale) capped at the canvas.
 */
export function fitInside(width: number, height: number, cw: number, ch: number): { width: number; height: number } {
  const sx = cw / width;
  const sy = ch / height;
  if (sx < sy) return { width: cw, height: Math.min(Math.ceil(height * sx), ch) };
  return { width: Math.min(Math.ceil(width * sy), cw), height: ch };
}

/**
 * Splits an interleaved RGB canvas (canvasW = cols·tile, canvasH = rows·tile, 3 bytes per pixel) into
 * normalised CHW float32 tiles [3, tile, tile], tile by tile in raster order (row-major over the grid).
 */
export function tilesFromRgb(rgb: Uint8Array, rows: number, cols: number, tile = TILE_SIZE): Float32Array[] {
  const cw = cols * tile;
  if (rgb.length !== rows * tile * cw * 3) throw new Error(`tilesFromRgb: ${rgb.length} bytes for a ${rows}×${cols} grid of ${tile}-px tiles`);
  // Lookup table per channel: byte → (b/255 − mean)/std.
  const [l0, l1, l2] = [0, 1, 2].map((c) => Float32Array.from({ length: 256 }, (_, b) => (b / 255 - IMAGE_MEAN[c]!) / IMAGE_STD[c]!)) as [Float32Array, Float32Array, Float32Array];
  const plane = tile * tile;
  const tiles: Float32Array[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const out = new Float32Array(3 * plane);
      const green = out.subarray(plane, 2 * plane), blue = out.subarray(2 * plane);
      for (let y = 0; y < tile; y++) {
        let s = ((r * tile + y) * cw + c * tile) * 3;
        for (let d = y * tile, end = d + tile; d < end; d++, s += 3) {
          out[d] = l0[rgb[s]!]!;
          green[d] = l1[rgb[s + 1]!]!;
          blue[d] = l2[rgb[s + 2]!]!;
        }
      }
      tiles.push(out);
    }
  }
  return tiles;
}

export interface PreprocessOptions {
  grids?: readonly Grid[];
  tileSize?: number;
  resize?: ResizeMode;
  /** How to call the image in error messages. */
  name?: string;
}

export interface PreprocessedImage {
  rows: number;
  cols: number;
  tileSize: number;
  /** Source size. */
  width: number;
  height: number;
  /** Normalised CHW float32 tiles [3, tile, tile], raster order over the grid. */
  tiles: Float32Array[];
}

/** Decodes, resizes (bicubic) and tiles an encoded image (PNG, JPEG, WebP, GIF: first frame). */
export async function preprocessImage(bytes: Uint8Array, opts: PreprocessOptions = {}): Promise<PreprocessedImage> {
  const tile = opts.tileSize ?? TILE_SIZE;
  const name = opts.name ?? "the image";
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (err: unknown): never => {
    const msg = (err instanceof Error ? err.message : String(err)).split("\n").map((l) => l.trim()).filter(Boolean).join("; ");
    throw new Error(`${name} could not be decoded: ${msg || "unknown error"}`);
  };
  let width = 0;
  let height = 0;
  try {
    const meta = await sharp(input, { failOn: "error", animated: false }).metadata();
    width = meta.width ?? 0;
    height = meta.pageHeight ?? meta.height ?? 0;
  } catch (err) {
    fail(err);
  }
  if (!(width > 0 && height > 0)) throw new Error(`${name} could not be decoded: it has no width or height`);
  const { rows, cols } = selectGrid(width, height, opts.grids ?? DEFAULT_GRIDS, tile);
  const cw = cols * tile;
  const ch = rows * tile;
  let rgb: Buffer;
  try {
    let img = sharp(input, { failOn: "error", animated: false, limitInputPixels: false }).rotate().toColourspace("srgb");
    if (opts.resize === "stretch") {
      img = img.resize(cw, ch, { kernel: "cubic", fit: "fill" });
    } else {
      const inner = fitInside(width, height, cw, ch);
      const left = Math.floor((cw - inner.width) / 2);
      const top = Math.floor((ch - inner.height) / 2);
      img = img
        .resize(inner.width, inner.height, { kernel: "cubic", fit: "fill" })
        .extend({ left, top, right: cw - inner.width - left, bottom: ch - inner.height - top, background: { r: 0, g: 0, b: 0, alpha: 1 } });
    }
    const { data, info } = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (info.width !== cw || info.height !== ch) throw new Error(`internal: resized to ${info.width}×${info.height}, expected ${cw}×${ch}`);
    rgb = info.channels === 3 ? data : toRgb(data, info.channels);
  } catch (err) {
    return fail(err);
  }
  return { rows, cols, tileSize: tile, width, height, tiles: tilesFromRgb(rgb, rows, cols, tile) };
}

function toRgb(data: Buffer, channels: number): Buffer {
  const n = data.length / channels;
  const out = Buffer.alloc(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) out[i * 3 + c] = data[i * channels + (channels < 3 ? 0 : c)]!;
  }
  return out;
}
