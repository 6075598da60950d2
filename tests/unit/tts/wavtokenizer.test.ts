/** The WavTokenizer decoder graph against the plain-TS reference (incl. the iSTFT) on seeded weights in the real layout. */
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { buildWavTokenizerGraph, WavTokenizerRunner } from "@/models/codec-wavtokenizer";
import { SeededRandom } from "@/models/seeded-random";
import { MemoryWeights } from "@/models/weights";
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
