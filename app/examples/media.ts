import sharp from "sharp";
import type { Storage } from "@/engine/node";
import { storeUpload } from "@/engine/uploads";
import { encodeWav16 } from "@/models/io/wav-write";

/** A 768×384 picture (two tiles wide): sky, sea, a sun and a boat, drawn from SVG (nothing downloaded). */
async function samplePng(): Promise<Uint8Array> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="768" height="384">
    <defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#1e3a8a"/><stop offset="1" stop-color="#f59e0b"/></linearGradient></defs>
    <rect width="768" height="240" fill="url(#sky)"/><rect y="240" width="768" height="144" fill="#0e7490"/>
    <circle cx="560" cy="200" r="56" fill="#fde047"/>
    <path d="M180 300 L330 300 L300 330 L210 330 Z" fill="#7c2d12"/><path d="M255 300 L255 200 L320 290 Z" fill="#f8fafc"/>
  </svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** Six seconds of 16 kHz audio: a rising chirp, then a two-tone chord (so both audio segments differ). */
function sampleWav(): Uint8Array {
  const rate = 16_000;
  const x = new Float32Array(rate * 6);
  for (let i = 0; i < x.length; i++) {
    const t = i / rate;
    x[i] = t < 3 ? 0.4 * Math.sin(2 * Math.PI * (220 * t + 110 * t * t)) : 0.25 * (Math.sin(2 * Math.PI * 330 * t) + Math.sin(2 * Math.PI * 495 * t));
  }
  return encodeWav16(x, { sampleRate: rate });
}

/** Stores the sample media (content-addressed, so repeated calls reuse the same files) and returns their ids. */
export async function storeSampleMedia(storage: Storage): Promise<{ image: string; audio: string }> {
  const image = await storeUpload(storage, await samplePng(), { filename: "sample-seaside.png", expectedKind: "image" });
  const audio = await storeUpload(storage, sampleWav(), { filename: "sample-chirp.wav", expectedKind: "audio" });
  return { image: image.id, audio: audio.id };
}
