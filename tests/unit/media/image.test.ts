import { describe, expect, it } from "vitest";
import { ImageError, readImageInfo } from "../../../engine/media/image";
import { sniff, type FileType } from "../../../engine/media/sniff";
import { makeImage } from "../../fixtures/media/make";

const typeOf = (b: Uint8Array): FileType => {
  const r = sniff(b);
  if (!r.ok) throw new Error(r.reason);
  return r;
};

async function imageError(bytes: Uint8Array, opts: { maxPixels?: number; name?: string } = {}): Promise<ImageError> {
  try {
    await readImageInfo(bytes, typeOf(bytes), opts);
  } catch (e) {
    expect(e).toBeInstanceOf(ImageError);
    return e as ImageError;
  }
  throw new Error("expected readImageInfo to throw");
}

describe("readImageInfo", () => {
  it.each(["png", "jpeg", "webp", "gif"] as const)("reads the size of a %s", async (format) => {
    const info = await readImageInfo(await makeImage(format, 64, 48), typeOf(await makeImage(format, 64, 48)));
    expect(info).toMatchObject({ width: 64, height: 48, format, frames: 1 });
    expect(info.channels).toBeGreaterThanOrEqual(3);
  });

  it("a PNG cut in half has a good header but is refused as unreadable", async () => {
    const png = await makeImage("png", 200, 150);
    const e = await imageError(png.subarray(0, Math.floor(png.length / 2)));
    expect(e.code).toBe("corrupt");
    expect(e.message).toMatch(/^the file is not a readable PNG image: .+/);
  });

  it("PNG magic followed by garbage is refused, using the given name", async () => {
    const bytes = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from("this is not image data at all")]);
    const e = await imageError(bytes, { name: "bad.png" });
    expect(e.code).toBe("corrupt");
    expect(e.message).toMatch(/^bad\.png is not a readable PNG image: /);
  });

  it("a truncated JPEG is refused", async () => {
    const jpg = await makeImage("jpeg", 200, 150);
    expect((await imageError(jpg.subarray(0, Math.floor(jpg.length / 2)))).message).toMatch(/not a readable JPEG image/);
  });

  it("refuses images over the pixel limit before decoding", async () => {
    const e = await imageError(await makeImage("png", 200, 150), { maxPixels: 10_000 });
    expect(e.code).toBe("too-large");
    expect(e.message).toMatch(/200×150/);
  });
});

describe("damaged PNG chunks are named (libvips says only 'Unknown error')", () => {
  /** The PNG with one byte of a chunk's CRC (or contents) flipped. */
  async function damaged(chunk: string, where: "crc" | "data"): Promise<Uint8Array> {
    const png = Buffer.from(await makeImage("png", 64, 48));
    let o = 8;
    while (o < png.length) {
      const len = png.readUInt32BE(o);
      if (png.toString("latin1", o + 4, o + 8) === chunk) {
        const at = where === "crc" ? o + 8 + len : o + 8;
        png[at] = png[at]! ^ 0xff;
        return png;
      }
      o += 12 + len;
    }
    throw new Error(`no ${chunk} chunk`);
  }

  it.each(["IHDR", "IDAT", "IEND"])("a bad CRC on %s says which chunk and what is wrong", async (chunk) => {
    const e = await imageError(await damaged(chunk, "crc"), { name: "bad-crc.png" });
    expect(e.code).toBe("corrupt");
    expect(e.message).toBe(`bad-crc.png is not a readable PNG image: its ${chunk} chunk is damaged (its CRC checksum does not match its contents)`);
  });

  it("damaged contents of a critical chunk are caught the same way; a whole PNG still reads", async () => {
    expect((await imageError(await damaged("IHDR", "data"))).message).toMatch(/its IHDR chunk is damaged/);
    expect((await readImageInfo(await makeImage("png", 64, 48), typeOf(await makeImage("png", 64, 48)))).width).toBe(64);
  });
});
