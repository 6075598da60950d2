import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { DEFAULT_GRIDS, fitInside, parseGrids, preprocessImage, selectGrid, tilesFromRgb } from "@/models/encoders/image-preprocess";

/** A solid or split-colour PNG made with sharp. */
async function png(width: number, height: number, fill: (x: number, y: number) => [number, number, number]): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const [r, g, b] = fill(x, y);
      raw.set([r, g, b], (y * width + x) * 3);
    }
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

const norm = (byte: number) => (byte / 255 - 0.5) / 0.5;

/** Mean of channel c over a tile's central region (away from resampling edges). */
function centreMean(tile: Float32Array, c: number, size = 384, margin = 32): number {
  let s = 0;
  let n = 0;
  for (let y = margin; y < size - margin; y++)
    for (let x = margin; x < size - margin; x++) {
      s += tile[c * size * size + y * size + x]!;
      n++;
    }
  return s / n;
}

describe("grid selection (maximise effective resolution, then minimise waste)", () => {
  it("matches hand-computed choices", () => {
    // 384×384 fits 1×1 exactly; bigger grids give no extra effective pixels but waste more.
    expect(selectGrid(384, 384)).toMatchObject({ rows: 1, cols: 1 });
    // A wide 768×384 image fits 1 row × 2 cols exactly.
    expect(selectGrid(768, 384)).toMatchObject({ rows: 1, cols: 2, wasted: 0 });
    expect(selectGrid(384, 768)).toMatchObject({ rows: 2, cols: 1, wasted: 0 });
    // Very wide: 3000×900. 1×3 canvas 1152×384: scale .384 → 1152×345 = 397440;
    // 2×2 canvas 768×768: scale .256 → 768×230 = 176640. So 1×3.
    expect(selectGrid(3000, 900)).toMatchObject({ rows: 1, cols: 3, effective: 1152 * 345 });
    // Large square photo: 2×2 has 589824 effective pixels, more than any other.
    expect(selectGrid(2000, 2000)).toMatchObject({ rows: 2, cols: 2, effective: 768 * 768 });
    // Small image: every grid holds all its 200×100 pixels; least waste is 1×1.
    expect(selectGrid(200, 100)).toMatchObject({ rows: 1, cols: 1, effective: 20000 });
  });

  it("parses grid lists", () => {
    expect(parseGrids("1x1, 1x2, 2x1, 2x2, 1x3, 3x1")).toEqual(DEFAULT_GRIDS.map((g) => [...g]));
    expect(parseGrids("[[1,1],[2,3]]")).toEqual([[1, 1], [2, 3]]);
    expect(parseGrids("2×2 1x1")).toEqual([[2, 2], [1, 1]]);
    expect(() => parseGrids("")).toThrow(/empty/);
    expect(() => parseGrids("2x")).toThrow(/rows x cols/);
    expect(() => parseGrids("0x1")).toThrow(/positive/);
    expect(() => parseGrids("7x7")).toThrow(/at most/);
  });

  it("fits inside the canvas keeping the aspect ratio", () => {
    expect(fitInside(1000, 500, 768, 768)).toEqual({ width: 768, height: 384 });
    expect(fitInside(300, 900, 384, 768)).toEqual({ width: 256, height: 768 });
  });
});

describe("normalisation and tiling", () => {
  it("tilesFromRgb: CHW, (x/255 − 0.5)/0.5, raster tile order", () => {
    const tile = 4;
    const rows = 2;
    const cols = 3;
    const W = cols * tile;
    const rgb = new Uint8Array(rows * tile * W * 3);
    // pixel (x, y): R = tile index*10, G = y, B = x
    for (let y = 0; y < rows * tile; y++)
      for (let x = 0; x < W; x++) {
        const t = Math.floor(y / tile) * cols + Math.floor(x / tile);
        rgb.set([t * 10, y, x], (y * W + x) * 3);
      }
    const tiles = tilesFromRgb(rgb, rows, cols, tile);
    expect(tiles).toHaveLength(6);
    tiles.forEach((t, i) => {
      expect(t).toHaveLength(3 * tile * tile);
      const r = Math.floor(i / cols);
      const c = i % cols;
      for (let y = 0; y < tile; y++)
        for (let x = 0; x < tile; x++) {
          expect(t[y * tile + x]).toBeCloseTo(norm(i * 10), 6);
          expect(t[tile * tile + y * tile + x]).toBeCloseTo(norm(r * tile + y), 6);
          expect(t[2 * tile * tile + y * tile + x]).toBeCloseTo(norm(c * tile + x), 6);
        }
    });
  });

  it("a solid colour image normalises to known values", async () => {
    const bytes = await png(300, 288, () => [255, 0, 51]);
    const p = await preprocessImage(bytes);
    expect([p.rows, p.cols]).toEqual([1, 1]);
    const t = p.tiles[0]!;
    expect(t).toHaveLength(3 * 384 * 384);
    // 300×288 → 1×1 (every grid holds all its pixels; least waste); fit 384×369 (ceil(288·1.28)), centred
    // with black bars top and bottom (7 rows + 8 rows).
    expect(centreMean(t, 0)).toBeCloseTo(1, 5);
    expect(centreMean(t, 1)).toBeCloseTo(-1, 5);
    expect(centreMean(t, 2)).toBeCloseTo(norm(51), 5);
    expect(t[0]).toBeCloseTo(-1, 6); // padding is black
    const stretched = await preprocessImage(bytes, { resize: "stretch" });
    expect(stretched.tiles[0]![0]).toBeCloseTo(1, 5);
  });

  it("a two-colour image's tiles land in the right grid cells", async () => {
    // Left half red, right half blue: 1 row × 2 cols.
    const wide = await preprocessImage(await png(768, 384, (x) => (x < 384 ? [255, 0, 0] : [0, 0, 255])));
    expect([wide.rows, wide.cols, wide.tiles.length]).toEqual([1, 2, 2]);
    expect(centreMean(wide.tiles[0]!, 0)).toBeCloseTo(1, 4);
    expect(centreMean(wide.tiles[0]!, 2)).toBeCloseTo(-1, 4);
    expect(centreMean(wide.tiles[1]!, 0)).toBeCloseTo(-1, 4);
    expect(centreMean(wide.tiles[1]!, 2)).toBeCloseTo(1, 4);
    // Top green, bottom white, twice the tile size: 2 rows × 1 col, downscaled by 2.
    const tall = await preprocessImage(await png(768, 1536, (_x, y) => (y < 768 ? [0, 255, 0] : [255, 255, 255])));
    expect([tall.rows, tall.cols]).toEqual([2, 1]);
    expect(centreMean(tall.tiles[0]!, 1)).toBeCloseTo(1, 4);
    expect(centreMean(tall.tiles[0]!, 0)).toBeCloseTo(-1, 4);
    expect(centreMean(tall.tiles[1]!, 0)).toBeCloseTo(1, 4);
    // 2×2 quadrants.
    const colours: [number, number, number][] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]];
    const quad = await preprocessImage(await png(1000, 1000, (x, y) => colours[(y < 500 ? 0 : 2) + (x < 500 ? 0 : 1)]!));
    expect([quad.rows, quad.cols]).toEqual([2, 2]);
    quad.tiles.forEach((t, i) => {
      for (let c = 0; c < 3; c++) expect(centreMean(t, c)).toBeCloseTo(norm(colours[i]![c]!), 3);
    });
  });

  it("a truncated PNG fails with a clear message", async () => {
    const bytes = await png(400, 400, (x, y) => [(x * 7) & 255, (y * 3) & 255, (x ^ y) & 255]);
    await expect(preprocessImage(bytes.subarray(0, Math.floor(bytes.length / 2)), { name: "photo.png" })).rejects.toThrow(/photo\.png could not be decoded/);
  });
});
