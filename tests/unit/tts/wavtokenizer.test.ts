/** The WavTokenizer decoder graph against the plain-TS reference (incl. the iSTFT) on seeded weights in the real layout. */
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { buildWavTokenizerGraph, WavTokenizerRunner } from "@/models/tts/codec-wavtokenizer";
import { SeededRandom } from "@/models/io/seeded-random";
import { MemoryWeights } from "@/models/io/weights";
import { referenceWavDecode, seedWavWeights, smallWavConfig } from "./wavtokenizer-reference";

describe("WavTokenizer decoder graph vs reference", () => {
  for (const [seed, T, over] of [[1, 9, {}], [2, 17, { n_fft: 40, hop_length: 10, num_layers: 3, bandwidth_id: 2 }], [3, 1, {}]] as const) {
    it(`seed ${seed}, ${T} codes: waveform of T·hop samples within 1e-4`, async () => {
      const c = smallWavConfig(over);
      const W = seedWavWeights(c, seed);
      const runner = new WavTokenizerRunner(c, await ort.InferenceSession.create(buildWavTokenizerGraph(c, new MemoryWeights(W)), { logSeverityLevel: 3 }));
      const r = new SeededRandom(seed + 10);
      const codes = Array.from({ length: T }, () => r.int(c.codebook_size));
      const got = await runner.decode(codes);
      const ref = referenceWavDecode(c, W, codes);
      expect(got.length).toBe(T * c.hop_length);
      expect(ref.length).toBe(T * c.hop_length);
      let d = 0, peak = 0;
      for (let i = 0; i < got.length; i++) {
        d = Math.max(d, Math.abs(got[i]! - ref[i]!));
        peak = Math.max(peak, Math.abs(ref[i]!));
      }
      console.log(`WavTokenizer seed ${seed}: max |Δ| ${d.toExponential(2)} (peak |y| ${peak.toFixed(2)})`);
      expect(d).toBeLessThanOrEqual(1e-4 * Math.max(1, peak));
      await runner.session.release();
    });
  }
});

describe("WavTokenizer import from a generated .ckpt (torch zip, Lightning layout) + yaml", () => {
  it("imports the decode path only; the imported graph matches the reference; hop comes from the yaml", async () => {
    const { mkdtempSync, mkdirSync, rmSync, writeFileSync } = await import("node:fs");
    const os = await import("node:os");
    const path = await import("node:path");
    const { writeTorchCheckpoint, lightningCheckpoint } = await import("./torch-ckpt-writer");
    const { importWavTokenizer, resolveCodec, codecGraphFile, listCodecs } = await import("@/models/tts/codec-wavtokenizer-model");
    const tmp = mkdtempSync(path.join(os.tmpdir(), "wavtok-"));
    const saved = process.env.STUDIO_MODELS_DIR;
    process.env.STUDIO_MODELS_DIR = path.join(tmp, "models");
    try {
      const c = smallWavConfig({ n_fft: 40, hop_length: 10 });
      const W = seedWavWeights(c, 7);
      const all = new Map(W);
      all.set("feature_extractor.encodec.encoder.model.0.conv.conv.weight", { shape: [4, 1, 7], data: new Float32Array(28).fill(0.1) });
      all.set("multiperioddisc.discriminators.0.convs.0.weight", { shape: [2, 1, 5, 1], data: new Float32Array(10).fill(0.2) });
      const src = path.join(tmp, "speech_gen");
      mkdirSync(src);
      writeTorchCheckpoint(path.join(src, "wavtokenizer_large_unify_600_24k.ckpt"), lightningCheckpoint(all, "BF16"), "wavtokenizer_large_unify_600_24k");
      writeFileSync(path.join(src, "wavtokenizer_smalldata_frame40_3s_nq1_code4096_dim512_kmeans200_attn.yaml"), `model:\n  class_path: decoder.experiment.WavTokenizer\n  init_args:\n    sample_rate: 400\n    head:\n      class_path: decoder.heads.ISTFTHead\n      init_args:\n        dim: 64\n        n_fft: 40\n        hop_length: 10\n        padding: same\n`);
      const r = await importWavTokenizer(src, { name: "wt" });
      expect(r.ref).toBe("wavtokenizer/wt");
      expect(r.config).toMatchObject({ hop_length: 10, sample_rate: 400, n_fft: 40, num_layers: 2, hop_source: "yaml" });
      expect(listCodecs()).toEqual(["wavtokenizer/wt"]);
      expect((await importWavTokenizer(src, { name: "wt" })).status).toBe("unchanged");
      const codec = resolveCodec("wavtokenizer/wt");
      const runner = new WavTokenizerRunner(codec.config, await ort.InferenceSession.create(codecGraphFile(codec), { logSeverityLevel: 3 }));
      const codes = [1, 60, 33, 2, 2, 9];
      const got = await runner.decode(codes);
      // the checkpoint stored bf16: the reference reads the same rounded weights back from the import
      const { SafetensorsWeights } = await import("@/models/io/safetensors");
      const sw = new SafetensorsWeights(path.join(codec.dir, "codec.safetensors"));
      const Wr = new Map(sw.names().map((n) => [n, sw.get(n)]));
      sw.close();
      const ref = referenceWavDecode(codec.config, Wr, codes);
      let d = 0;
      got.forEach((v, i) => (d = Math.max(d, Math.abs(v - ref[i]!))));
      console.log(`imported WavTokenizer (bf16 .ckpt): max |Δ| ${d.toExponential(2)}`);
      expect(got.length).toBe(60);
      expect(d).toBeLessThanOrEqual(1e-4);
      await runner.session.release();
    } finally {
      if (saved === undefined) delete process.env.STUDIO_MODELS_DIR;
      else process.env.STUDIO_MODELS_DIR = saved;
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
