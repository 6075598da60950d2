import { expect } from "vitest";
import type { DecoderModel } from "@/models/moe-llm/generate";
import type { ForwardInput, ForwardOutput, KvCache, MoeLlmRunner } from "@/models/moe-llm/moe-llm-session";

/** Largest |a[i] − b[i]| of two arrays of one length. */
export const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/**
 * The runner as a DecoderModel that keeps every forward's logits and present cache. With `countTwin`, also counts the
 * forwards its decode twin ran (each must be a one-token step of one sequence after a cache).
 */
export function recording(runner: MoeLlmRunner, o: { countTwin?: boolean } = {}) {
  const logits: Float32Array[] = [], presents: KvCache[] = [];
  const twin = { calls: 0 };
  const t = runner.extras.decodeTwin;
  if (o.countTwin && t) {
    const direct = t.forwardDirect.bind(t);
    t.forwardDirect = (input: ForwardInput) => {
      twin.calls++;
      expect(input.batch === 1 && input.seq === 1 && (input.past?.length ?? 0) > 0).toBe(true);
      return direct(input);
    };
  }
  const model: DecoderModel = {
    config: runner.config,
    options: runner.options,
    async forward(input: ForwardInput): Promise<ForwardOutput> {
      const out = await runner.forward(input);
      logits.push(out.logits.slice());
      if (out.present) presents.push(out.present);
      return out;
    },
  };
  return { model, logits, presents, twin };
}
