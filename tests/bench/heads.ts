/**
 * Generation heads on CPU through a SessionPool (the same graph cache and pool the nodes use):
 *   - MoE-TTS (uni-moe-tiny/tts, seeded, untrained): real-time factor = synthesis seconds / audio seconds
 *     for a greedy clip capped at `ttsSeconds` (decoder prefill + KV-cache decode + codec), median of
 *     `ttsRepeats` runs after one warm-up. The untrained model may emit [EOS] before the cap; the RTF
 *     is always over the audio actually produced, which is reported.
 *   - Task-aware DiT (uni-moe-tiny/dit, seeded, untrained): seconds per Euler step with classifier-free
 *     guidance (both branches in one batch-2 forward + the Euler update), median over every step of
 *     `ditRuns` samplings of `ditSteps` steps after one warm-up sampling. The VAE decode is timed apart.
 */
import { SessionPool } from "../../engine/runtime";
import { initialNoise, sampleEuler, seededConditioning } from "../../models/dit/dit";
import { ditReferenceConfig, withDit } from "../../models/dit/dit-tiny";
import { resolveTtsModel, synthesize, withTts } from "../../models/tts/tts";
import { TTS_REFERENCE_REF } from "../../models/tts/tts-tiny";
import { median } from "./stats";

export interface HeadsBenchOptions {
  ttsSeconds?: number;
  ttsRepeats?: number;
  ditSteps?: number;
  ditGuidance?: number;
  ditRuns?: number;
  log?: (s: string) => void;
}

export interface HeadsBench {
  executionProvider: string;
  tts: {
    model: string;
    maxSeconds: number;
    /** Audio seconds of the timed runs (equal: greedy is deterministic). */
    audioSeconds: number;
    codecTokens: number;
    synthesisMs: number;
    realTimeFactor: number;
    runs: number;
  };
  dit: {
    model: string;
    steps: number;
    guidance: number;
    msPerStep: number;
    secondsPerStep: number;
    vaeDecodeMs: number;
    runs: number;
  };
}

export async function benchHeads(o: HeadsBenchOptions = {}): Promise<HeadsBench> {
  const log = o.log ?? (() => {});
  const maxSeconds = o.ttsSeconds ?? 2;
  const ttsRepeats = o.ttsRepeats ?? 3;
  const steps = o.ditSteps ?? 8;
  const guidance = o.ditGuidance ?? 4;
  const ditRuns = o.ditRuns ?? 3;
  const pool = new SessionPool({ executionProvider: process.env.STUDIO_EP ?? "cpu" });
  try {
    const executionProvider = await pool.resolveExecutionProvider();

    // --- MoE-TTS
    let t0 = performance.now();
    const model = await resolveTtsModel(TTS_REFERENCE_REF);
    const tts = await withTts(model, pool, async ({ tts: decoder, codec }) => {
      log(`tts: model + graphs + sessions ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const segments = [{ style: "Language: English; Speaker: default;", text: "The quick brown fox jumps over the lazy dog, and then it runs away." }];
      const once = () => synthesize(decoder, codec, segments, { temperature: 0, topK: 0, topP: 1, seed: 0, maxSeconds, modelName: TTS_REFERENCE_REF });
      await once(); // warm-up
      const ms: number[] = [];
      const rtf: number[] = [];
      let audioSeconds = 0;
      let codecTokens = 0;
      for (let r = 0; r < ttsRepeats; r++) {
        const t = performance.now();
        const res = await once();
        const dt = performance.now() - t;
        if (!(res.durationSec > 0)) throw new Error("the TTS produced no audio (it stopped at [EOS] before the first codec token)");
        ms.push(dt);
        rtf.push(dt / 1000 / res.durationSec);
        audioSeconds = res.durationSec;
        codecTokens = res.chunks.reduce((a, c) => a + c.codes.length, 0);
      }
      return { model: TTS_REFERENCE_REF, maxSeconds, audioSeconds, codecTokens, synthesisMs: median(ms), realTimeFactor: median(rtf), runs: ttsRepeats };
    });

    // --- DiT
    t0 = performance.now();
    const cfg = ditReferenceConfig();
    const dit = await withDit(pool, { withEncoder: false }, async (runner, m) => {
      log(`dit: model + graphs + sessions ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const cond = seededConditioning(cfg.dit, "a red cube on a table", [], "benchmark");
      const stepMs: number[] = [];
      const decodeMs: number[] = [];
      for (let r = 0; r <= ditRuns; r++) {
        const times: number[] = [];
        let last = performance.now();
        const z = await sampleEuler({
          steps,
          noise: initialNoise(cfg.dit, r),
          velocity: (x, t) => runner.guidedVelocity(x, t, cond, guidance),
          onStep: () => {
            const now = performance.now();
            times.push(now - last);
            last = now;
          },
        });
        const td = performance.now();
        await runner.decode(z);
        if (r > 0) {
          stepMs.push(...times); // run 0 is the warm-up
          decodeMs.push(performance.now() - td);
        }
      }
      return { model: m.manifest.ref, steps, guidance, msPerStep: median(stepMs), secondsPerStep: median(stepMs) / 1000, vaeDecodeMs: median(decodeMs), runs: ditRuns };
    });
    return { executionProvider, tts, dit };
  } finally {
    await pool.close();
  }
}
