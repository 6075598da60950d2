import { createHash, randomFillSync } from "node:crypto";
import http from "node:http";
import { expect, test, type APIRequestContext } from "@playwright/test";
import sharp from "sharp";
import { addNode, newWorkflow } from "./helpers";

// Uploads past 10 MB through the real server (next start): they used to go through Next's proxy body
// clone, which buffers at most 10 MB and cut the rest off. What is stored must be exactly what was sent.

const PORT = Number(process.env.E2E_PORT ?? 3100);
const MB = 1024 * 1024;
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Noise that PNG cannot compress: 2048×2048 RGB, stored without compression (12.6 MB). */
function noisePng(): Promise<Buffer> {
  const pixels = randomFillSync(Buffer.alloc(2048 * 2048 * 3));
  return sharp(pixels, { raw: { width: 2048, height: 2048, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
}

/** A 16-bit mono 16 kHz WAV of random samples, `bytes` long in all. */
function noiseWav(bytes: number): Buffer {
  const data = bytes - 44;
  const wav = randomFillSync(Buffer.alloc(bytes));
  wav.write("RIFF", 0, "latin1");
  wav.writeUInt32LE(bytes - 8, 4);
  wav.write("WAVEfmt ", 8, "latin1");
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22);
  wav.writeUInt32LE(16000, 24);
  wav.writeUInt32LE(32000, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write("data", 36, "latin1");
  wav.writeUInt32LE(data, 40);
  return wav;
}

/** An MP4 container: an ftyp box, then one mdat box of random bytes, `bytes` long in all. */
function noiseMp4(bytes: number): Buffer {
  const mp4 = randomFillSync(Buffer.alloc(bytes));
  mp4.writeUInt32BE(24, 0);
  mp4.write("ftypisom", 4, "latin1");
  mp4.writeUInt32BE(0x200, 12);
  mp4.write("isomiso2", 16, "latin1");
  mp4.writeUInt32BE(bytes - 24, 24);
  mp4.write("mdat", 28, "latin1");
  return mp4;
}

/** Uploads through the HTTP API and checks that the stored file is byte for byte what was sent. */
async function uploadAndCompare(request: APIRequestContext, kind: string, filename: string, bytes: Buffer): Promise<string> {
  const res = await request.post(`/api/upload?kind=${kind}&filename=${filename}`, { data: bytes, headers: { "content-type": "application/octet-stream" }, timeout: 120_000 });
  const body = (await res.json()) as { id?: string; bytes?: number; error?: string };
  expect(res.status(), body.error).toBe(200);
  expect(body.bytes).toBe(bytes.length);
  expect(body.id!.slice(0, 64)).toBe(sha256(bytes));
  const back = await request.get(`/api/files/${body.id}`, { timeout: 120_000 });
  expect(back.status()).toBe(200);
  const stored = await back.body();
  expect(stored.length).toBe(bytes.length);
  expect(sha256(stored)).toBe(sha256(bytes));
  return body.id!;
}

test("a 12 MB PNG chosen in the editor is stored whole and shows on its node", async ({ page }) => {
  test.setTimeout(120_000);
  const png = await noisePng();
  expect(png.length).toBeGreaterThan(12 * MB);
  await newWorkflow(page);
  const image = await addNode(page, "input.image");
  await page.getByTestId(`file-${image}-file`).setInputFiles({ name: "noise.png", mimeType: "image/png", buffer: png });
  const thumb = page.getByTestId(`node-${image}`).locator("img");
  await expect(thumb).toBeVisible({ timeout: 60_000 });
  const id = (await thumb.getAttribute("src"))!.split("/").pop()!;
  expect(id).toBe(`${sha256(png)}.png`);
  await expect.poll(() => thumb.evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(2048);
  const stored = await (await page.request.get(`/api/files/${id}`)).body();
  expect(sha256(stored)).toBe(sha256(png));
});

test("12 MB WAV and MP4 uploads are stored whole, with their content hash", async ({ request }) => {
  test.setTimeout(120_000);
  await uploadAndCompare(request, "audio", "noise.wav", noiseWav(12 * MB + 123));
  await uploadAndCompare(request, "video", "noise.mp4", noiseMp4(12 * MB + 77));
});

test("a 150 MB WAV upload is stored whole (the documented audio limit is 200 MB)", async ({ request }) => {
  test.setTimeout(300_000);
  await uploadAndCompare(request, "audio", "long.wav", noiseWav(150 * MB));
});

test("a streamed upload past the limit (no Content-Length) gets 413, and the server keeps answering", async ({ request }) => {
  test.setTimeout(120_000);
  // 60 MiB as an image (limit 50 MB), sent chunked so nothing announces its size.
  let sent = 0;
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    let answered = false;
    const req = http.request({ host: "127.0.0.1", port: PORT, method: "POST", path: "/api/upload?kind=image&filename=endless.png", headers: { "transfer-encoding": "chunked", "content-type": "application/octet-stream" } }, (res) => {
      answered = true;
      sent = 60; // stop sending
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    // Once answered, the server may close the connection under the rest of the body.
    req.on("error", (err) => !answered && reject(err));
    const chunk = randomFillSync(Buffer.alloc(MB));
    chunk.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const pump = () => {
      while (sent < 60) {
        sent++;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    pump();
  });
  expect(status).toBe(413);
  expect(JSON.parse(body).error).toMatch(/endless\.png is larger than the 50 MB limit/);
  expect((await request.get("/api/health")).ok()).toBe(true);
});

test("a 12 MB tRPC body reaches its procedure whole (reading the workflow out of a PNG)", async ({ request }) => {
  test.setTimeout(120_000);
  const png = await noisePng();
  const res = await request.post("/api/trpc/provenance.fromMedia", { data: { base64: png.toString("base64") }, headers: { "content-type": "application/json" }, timeout: 120_000 });
  // Parsed to the end: the PNG is read and found to carry no workflow (a cut body would not even parse).
  expect(res.status()).toBe(400);
  expect(JSON.stringify(await res.json())).toMatch(/this PNG carries no MoE Studio workflow/);
});
