import { describe, expect, it } from "vitest";
import { cfgCombine, conditioningFromLlm, initialNoise, sampleEuler, SamplingCancelled, seededConditioning, timeGrid, zDitConfig } from "@/models/dit/dit";
import { SeededRandom } from "@/models/io/seeded-random";

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe("Euler flow sampler (rectified flow, t = 1 → 0)", () => {
  it("uses the uniform grid 1, 1 − 1/N, …, 0", () => {
    expect(timeGrid(4)).toEqual([1, 0.75, 0.5, 0.25, 0]);
    expect(() => timeGrid(0)).toThrow();
  });

  it("recovers x0 exactly on the straight-line flow v(x, t) = (x − x0)/t, for any step count", async () => {
    // x_t = (1 − t)·x0 + t·ε has dx/dt = ε − x0 = (x_t − x0)/t: the flow is straight, so Euler is exact.
    const rng = new SeededRandom(5);
    const x0 = rng.fillNormal(new Float32Array(64));
    const noise = rng.fillNormal(new Float32Array(64));
    for (const steps of [1, 3, 8, 50]) {
      const got = await sampleEuler({ steps, noise, velocity: async (x, t) => Float32Array.from(x, (v, i) => (v - x0[i]!) / t) });
      const d = maxAbs(got, x0);
      console.log(`straight flow, ${steps} steps: max |x − x0| = ${d.toExponential(2)}`);
      expect(d).toBeLessThan(1e-5);
    }
  });

  it("matches the closed form of Euler on dx/dt = a·x: x_0 = (1 − a/N)^N · x_1, → e^{−a}·x_1 as N grows", async () => {
    const a = 0.7;
    const noise = Float32Array.from([1, -2, 0.5, 3]);
    for (const steps of [1, 4, 16, 100]) {
      const got = await sampleEuler({ steps, noise, velocity: async (x) => Float32Array.from(x, (v) => a * v) });
      const exact = Array.from(noise, (v) => v * (1 - a / steps) ** steps);
      expect(maxAbs(got, exact)).toBeLessThan(1e-5);
      const ode = Array.from(noise, (v) => v * Math.exp(-a));
      const err = maxAbs(got, ode);
      console.log(`dx/dt = ${a}x, ${steps} steps: |Euler − closed form| ${maxAbs(got, exact).toExponential(2)}, |Euler − e^{-a}x| ${err.toExponential(2)}`);
      if (steps === 100) expect(err).toBeLessThan(0.01); // O(1/N)
    }
  });

  it("calls the velocity at t_i with step i, reports progress after every step, and leaves the noise alone", async () => {
    const noise = Float32Array.from([1, 2]);
    const calls: [number, number][] = [];
    const steps: [number, number, number][] = [];
    await sampleEuler({
      steps: 4,
      noise,
      velocity: async (x, t, i) => (calls.push([t, i]), new Float32Array(x.length)),
      onStep: (i, n, t) => void steps.push([i, n, t]),
    });
    expect(calls).toEqual([[1, 0], [0.75, 1], [0.5, 2], [0.25, 3]]);
    expect(steps).toEqual([[0, 4, 0.75], [1, 4, 0.5], [2, 4, 0.25], [3, 4, 0]]);
    expect(Array.from(noise)).toEqual([1, 2]);
  });

  it("stops between steps when the signal is aborted (its reason, else SamplingCancelled)", async () => {
    const ac = new AbortController();
    let calls = 0;
    const run = sampleEuler({
      steps: 10,
      noise: new Float32Array(4),
      velocity: async (x) => (calls++, new Float32Array(x.length)),
      signal: ac.signal,
      onStep: (i) => void (i === 2 && ac.abort(new Error("user cancelled"))),
    });
    await expect(run).rejects.toThrow("user cancelled");
    expect(calls).toBe(3);
    const bare = { aborted: true, reason: undefined } as unknown as AbortSignal; // a signal without a reason
    await expect(sampleEuler({ steps: 2, noise: new Float32Array(1), velocity: async () => new Float32Array(1), signal: bare })).rejects.toBeInstanceOf(SamplingCancelled);
  });

  it("rejects a velocity of the wrong size", async () => {
    await expect(sampleEuler({ steps: 1, noise: new Float32Array(3), velocity: async () => new Float32Array(2) })).rejects.toThrow(/2 values/);
  });
});

describe("classifier-free guidance", () => {
  const rng = new SeededRandom(3);
  const vu = rng.fillNormal(new Float32Array(1000), 3);
  const vc = rng.fillNormal(new Float32Array(1000), 3);
  it("g = 1 is exactly the conditional velocity, g = 0 the unconditional", () => {
    expect(Array.from(cfgCombine(vu, vc, 1))).toEqual(Array.from(vc));
    expect(Array.from(cfgCombine(vu, vc, 0))).toEqual(Array.from(vu));
  });
  it("g = 4 extrapolates: v_u + 4·(v_c − v_u)", () => {
    const got = cfgCombine(vu, vc, 4);
    expect(maxAbs(got, Array.from(vu, (u, i) => u + 4 * (vc[i]! - u)))).toBeLessThan(1e-5);
  });
});

describe("conditioning", () => {
  const c = zDitConfig.parse({ condTokens: 4, taskTokens: 3, llmHidden: 8 });
  const tok = (token: string, v: number, n = 8) => ({ token, hidden: new Float32Array(n).fill(v) });
  it("takes [IMG*]/[TASK*] hidden states by index (first occurrence), ignoring other tokens", () => {
    const special = [tok("<|speech_start|>", 9), tok("[TASK2]", 32), tok("[IMG3]", 13), tok("[IMG0]", 10), tok("[IMG1]", 11), tok("[IMG1]", 99), tok("[IMG2]", 12), tok("[TASK0]", 30), tok("[TASK1]", 31)];
    const r = conditioningFromLlm(c, special);
    if ("missing" in r) throw new Error(r.missing);
    expect(r.source).toBe("llm");
    expect(Array.from({ length: 4 }, (_, i) => r.img[i * 8])).toEqual([10, 11, 12, 13]);
    expect(Array.from({ length: 3 }, (_, i) => r.task[i * 8])).toEqual([30, 31, 32]);
  });
  it("says what is missing or the wrong size", () => {
    const r = conditioningFromLlm(c, [tok("[IMG0]", 1)]);
    expect("missing" in r && r.missing).toMatch(/1 of the 7 tokens.*\[IMG1\]/);
    const r2 = conditioningFromLlm(c, [tok("[IMG0]", 1, 16)]);
    expect("missing" in r2 && r2.missing).toMatch(/16-dim.*take 8/);
  });
  it("the seeded fallback is a deterministic function of the LLM text and ids", () => {
    const a = seededConditioning(c, "hello", [1, 2], "why");
    const b = seededConditioning(c, "hello", [1, 2], "why");
    const d = seededConditioning(c, "hello!", [1, 2], "why");
    expect(a.source).toBe("seeded-from-text");
    expect(a.note).toMatch(/because why/);
    expect(Array.from(a.img)).toEqual(Array.from(b.img));
    expect(Array.from(a.task)).toEqual(Array.from(b.task));
    expect(maxAbs(a.img, d.img)).toBeGreaterThan(0.1);
  });
  it("initial noise: same seed → same, different seed → different", () => {
    const c2 = zDitConfig.parse({});
    expect(initialNoise(c2, 1).length).toBe(4 * 32 * 32);
    expect(Array.from(initialNoise(c2, 1))).toEqual(Array.from(initialNoise(c2, 1)));
    expect(maxAbs(initialNoise(c2, 1), initialNoise(c2, 2))).toBeGreaterThan(0.5);
  });
});
