import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { crc32, embedWorkflowInPng, ProvenanceError, readWorkflowFromMedia, readWorkflowFromPng, sniffMedia } from "@/engine/provenance";
import { trickyWorkflow } from "./fixtures";

async function realPng(width = 37, height = 21): Promise<Uint8Array> {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 37) % 256;
  return new Uint8Array(await sharp(Buffer.from(rgb), { raw: { width, height, channels: 3 } }).png().toBuffer());
}

/** [type, data offset, length] of every chunk. */
function chunks(png: Uint8Array): [string, number, number][] {
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out: [string, number, number][] = [];
  for (let at = 8; at < png.length; ) {
    const len = v.getUint32(at);
    out.push([String.fromCharCode(...png.subarray(at + 4, at + 8)), at + 8, len]);
    at += 12 + len;
  }
  return out;
}

describe("PNG provenance (iTXt)", () => {
  it("crc32 matches the standard check value", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array())).toBe(0);
  });

  it("round-trips a document through a real sharp PNG; sharp still decodes it, same size and pixels", async () => {
    const png = await realPng();
    const doc = trickyWorkflow();
    const out = embedWorkflowInPng(png, doc);
    expect(readWorkflowFromPng(out)).toEqual(JSON.parse(JSON.stringify(doc)));
    expect(readWorkflowFromPng(out)).toEqual(doc);
    expect(readWorkflowFromMedia(out)).toEqual(doc);
    expect(sniffMedia(out)).toBe("png");

    const meta = await sharp(out, { failOn: "error" }).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["png", 37, 21]);
    const a = await sharp(png).raw().toBuffer();
    const b = await sharp(out, { failOn: "error" }).raw().toBuffer();
    expect(Buffer.compare(a, b)).toBe(0);

    // the chunk sits right before IEND, uncompressed, and the input was not modified
    const types = chunks(out).map((c) => c[0]);
    expect(types.at(-1)).toBe("IEND");
    expect(types.at(-2)).toBe("iTXt");
    const [, at] = chunks(out).at(-2)!;
    expect(new TextDecoder().decode(out.subarray(at, at + 24))).toBe("moe-studio-workflow\0\0\0\0\0");
    expect(readWorkflowFromPng(png)).toBeNull();
  });

  it("embedding again replaces the earlier workflow (one chunk)", async () => {
    const once = embedWorkflowInPng(await realPng(), trickyWorkflow("first"));
    const twice = embedWorkflowInPng(once, trickyWorkflow("second"));
    expect(chunks(twice).filter((c) => c[0] === "iTXt")).toHaveLength(1);
    expect((readWorkflowFromPng(twice) as { name: string }).name).toBe("second");
  });

  it("a PNG without the chunk → null (other text chunks are ignored)", async () => {
    const png = new Uint8Array(await sharp(await realPng()).png().withMetadata().withExif({ IFD0: { Copyright: "me" } }).toBuffer());
    expect(readWorkflowFromPng(png)).toBeNull();
    expect(readWorkflowFromMedia(png)).toBeNull();
  });

  it("a damaged workflow chunk fails its CRC with a clear error", async () => {
    const out = embedWorkflowInPng(await realPng(), trickyWorkflow());
    const [, at, len] = chunks(out).find((c) => c[0] === "iTXt")!;
    const bad = out.slice();
    bad[at + len - 5]! ^= 0x20; // a byte of the JSON
    expect(() => readWorkflowFromPng(bad)).toThrow(ProvenanceError);
    expect(() => readWorkflowFromPng(bad)).toThrow(/corrupt PNG: the CRC of the embedded workflow chunk does not match/);
    const badCrc = out.slice();
    badCrc[at + len]! ^= 1; // the stored CRC itself
    expect(() => readWorkflowFromPng(badCrc)).toThrow(/CRC/);
  });

  it("clear errors for a bad signature, truncation, and bad JSON", async () => {
    const out = embedWorkflowInPng(await realPng(), trickyWorkflow());
    expect(() => readWorkflowFromPng(new Uint8Array([1, 2, 3]))).toThrow(/not a PNG file/);
    expect(() => readWorkflowFromPng(out.subarray(0, out.length - 30))).toThrow(/corrupt PNG: .*(past the end|before its IEND)/);
    expect(() => readWorkflowFromMedia(new TextEncoder().encode("GIF89a........"))).toThrow(/not a PNG or WAV/);
    expect(() => embedWorkflowInPng(new Uint8Array(10), trickyWorkflow())).toThrow(/not a PNG/);

    // a chunk with our keyword, a valid CRC and broken JSON
    const png = await realPng();
    const data = new TextEncoder().encode("moe-studio-workflow\0\0\0\0\0{not json");
    const chunk = new Uint8Array(12 + data.length);
    new DataView(chunk.buffer).setUint32(0, data.length);
    chunk.set(new TextEncoder().encode("iTXt"), 4);
    chunk.set(data, 8);
    new DataView(chunk.buffer).setUint32(8 + data.length, crc32(chunk, 4, 8 + data.length));
    const withBad = new Uint8Array([...png.subarray(0, png.length - 12), ...chunk, ...png.subarray(png.length - 12)]);
    expect(() => readWorkflowFromPng(withBad)).toThrow(/not valid JSON/);
  });
});
