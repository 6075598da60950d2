import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { audioParamTable, buildAudioGraph, melFrames, whisperSinusoids, zAudioConfig, type AudioConfig } from "@/models/encoders/audio-encoder";
import { seedEncoderWeights, tinyAudioConfig } from "@/models/encoders/encoders-tiny";
import { SeededRandom } from "@/models/io/seeded-random";
import { MemoryWeights } from "@/models/io/weights";
import { maxDiff, refAudioChunk } from "./reference";

const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  for (const s of sessions) await s.release();
});

/** Graph vs reference on `chunks` seeded random log-mel inputs in Whisper's range ([-1.5, 1.5]). */
async function compare(c: AudioConfig, seed: number, chunks: number, gain = 1) {
  const weights = seedEncoderWeights("audio", c, seed);
  for (const p of audioParamTable(c)) if (p.kind === "linear" || p.kind === "embed") weights.get(p.name)!.data.forEach((v, i, a) => (a[i] = v * gain));
  const session = await ort.InferenceSession.create(buildAudioGraph(c, new MemoryWeights(weights)), { intraOpNumThreads: 2, logSeverityLevel: 3 });
  sessions.push(session);
  const F = melFrames(c);
  const per = c.num_mel_bins * F;
  const mel = new SeededRandom(seed + 1).fillUniform(new Float32Array(chunks * per), -1.5, 1.5);
  const out = (await session.run({ input_features: new ort.Tensor("float32", mel, [chunks, c.num_mel_bins, F]) })).features!;
  expect(out.dims).toEqual([chunks, c.num_queries, c.out_dim]);
  const got = out.data as Float32Array;
  const q = c.num_queries * c.out_dim;
  let diff = 0;
  for (let b = 0; b < chunks; b++) diff = Math.max(diff, maxDiff(got.subarray(b * q, (b + 1) * q), refAudioChunk(c, weights, mel.subarray(b * per, (b + 1) * per))));
  return { diff, scale: Math.max(...Array.from(got, Math.abs)) };
}

describe("audio encoder + query former graph vs the plain-TS reference", () => {
  it("tiny (128 mels × 3000 frames → 1500 → 200 queries → 128): one seeded chunk within 1e-4", async () => {
    const r = await compare(tinyAudioConfig, 11, 1);
    console.log(`audio tiny: max |onnx − ref| = ${r.diff.toExponential(2)}; max |y| = ${r.scale.toFixed(3)}`);
    expect(r.diff).toBeLessThan(1e-4);
  }, 60_000);

  it("a small config, 2 chunks, 2 query-former layers, weights ×10 (O(1) activations)", async () => {
    const c = zAudioConfig.parse({
      num_mel_bins: 16, max_source_positions: 25, d_model: 24, encoder_layers: 2, encoder_attention_heads: 3, encoder_ffn_dim: 40,
      num_queries: 10, qformer_layers: 2, qformer_attention_heads: 2, qformer_ffn_dim: 32, out_dim: 8,
    });
    const r = await compare(c, 5, 2, 10);
    console.log(`audio small: max |onnx − ref| = ${r.diff.toExponential(2)}; max |y| = ${r.scale.toFixed(3)}`);
    expect(r.diff).toBeLessThan(1e-4);
  });
});

describe("audio parameter table", () => {
  it("has Whisper's names; k_proj has no bias; positions are the sinusoids", () => {
    const t = new Map(audioParamTable(tinyAudioConfig).map((p) => [p.name, p.shape]));
    expect(t.get("encoder.conv1.weight")).toEqual([64, 128, 3]);
    expect(t.get("encoder.conv2.weight")).toEqual([64, 64, 3]);
    expect(t.get("encoder.embed_positions.weight")).toEqual([1500, 64]);
    expect(t.has("encoder.layers.0.self_attn.k_proj.bias")).toBe(false);
    expect(t.get("qformer.queries")).toEqual([200, 64]);
    expect(t.get("qformer.layers.0.encoder_attn.q_proj.weight")).toEqual([64, 64]);
    expect(t.get("projector.weight")).toEqual([128, 64]);
    const s = whisperSinusoids(3, 4); // channels 4: ω = [1, 1e-4]
    expect(Array.from(s.subarray(8, 12))).toEqual([Math.sin(2), Math.sin(2e-4), Math.cos(2), Math.cos(2e-4)].map(Math.fround));
  });
});
