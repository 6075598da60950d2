import { z } from "zod";
import { defineNode } from "../engine/node";
import { embedWorkflowInPng } from "../engine/provenance";
import type { ImageValue } from "../engine/media/values";
import { defineValueKind } from "../engine/values/kind";
import { conditioningAsReleased, conditioningFromLlm, initialNoise, RELEASED_STEPS, sampleEuler, seededConditioning, SamplingCancelled, type DitConditioning } from "../models/dit/dit";
import { DIT_LABEL, DIT_REF, ditContentHash, ditReferenceConfig, DIT_DEFAULT_SEED, withDit } from "../models/dit/dit-tiny";
import { decodeToRgb, encodePng, rgbToTensor, tensorToRgb, vaeImageSize } from "../models/dit/vae";
import type { LlmOutputValue } from "../engine/values/llm-output";
import "./params";

/** What the node did, on its `info` output (and in its summary). */
export interface GenerateImageInfo {
  model: typeof DIT_REF;
  label: typeof DIT_LABEL;
  mode: "text-to-image" | "edit";
  conditioning: DitConditioning["source"];
  conditioningNote: string;
  steps: number;
  guidance: number;
  /** "released": 59 Euler steps, 3-branch guidance on 3 of 4 channels; "paper": CFG over all channels, `steps` steps. */
  sampler: "paper" | "released";
  /** "released": the last 32 + 3 fed-back states; "tokens": the [IMG*]/[TASK*] tokens' own states. */
  llmStates: "tokens" | "released";
  seed: number;
  ms: number;
}

/**
 * Picks the DiT conditioning from an LLM output: its [IMG0..31] + [TASK0..2] hidden states, or — in
 * "llm-or-seeded" mode, when they are missing (the seeded LLM never writes them) — 35 vectors seeded by
 * a hash of the LLM's text and token ids (models/dit.ts seededConditioning). "llm" mode throws instead.
 */
export function pickConditioning(llm: LlmOutputValue, mode: "llm" | "llm-or-seeded", states: "tokens" | "released" = "tokens"): DitConditioning {
  const c = ditReferenceConfig().dit;
  const marker = /\[(IMG|TASK)0\]/.test(llm.text);
  const got = states === "released" ? conditioningAsReleased(c, marker, llm.tailHidden ?? []) : conditioningFromLlm(c, llm.specialHidden ?? []);
  if (!("missing" in got)) return got;
  if (mode === "llm") throw new Error(`${got.missing}. Set "Conditioning" to "llm-or-seeded" to fall back to vectors seeded from the LLM text.`);
  return seededConditioning(c, llm.text, llm.ids ?? [], got.missing);
}

/** The `info` output's kind: a shape of this node's own (no view of its own; previews describe it generically). */
const imageInfo = defineValueKind<GenerateImageInfo>({
  name: "image-info",
  noun: "image generation info",
  schema: z.object({ model: z.string(), mode: z.enum(["text-to-image", "edit"]), steps: z.number(), guidance: z.number(), seed: z.number() }),
});

export const generateImage = defineNode({
  type: "generate.image",
  typeVersion: 2,
  title: "Task-aware DiT",
  category: "Generate",
  description:
    "Renders a 256×256 image from the LLM's [TASK0..2][IMG0..31] hidden states with a flow-matching DiT (Euler, classifier-free guidance) and a tiny VAE. Connect a source image to edit it. uni-moe-tiny/dit is seeded, untrained.",
  inputs: {
    llm: { type: "LLM_OUTPUT", label: "LLM output" },
    source: { type: "IMAGE", optional: true, label: "source image (edit)" },
  },
  outputs: { image: { type: "GENERATED_IMAGE" }, info: { type: "JSON", kind: imageInfo } },
  params: z.object({
    steps: z.number().int().min(1).max(100).default(8).meta({ label: "Steps", step: 1 }),
    guidance: z.number().min(0).max(20).default(4).meta({ label: "Guidance (CFG)", step: 0.5 }),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(0).meta({ label: "Seed" }),
    conditioning: z
      .enum(["llm", "llm-or-seeded"])
      .default("llm-or-seeded")
      .meta({
        label: "Conditioning",
        description: "llm: require [IMG0..31] and [TASK0..2] from the LLM. llm-or-seeded: when they are missing, use vectors seeded from a hash of the LLM text.",
      }),
    sampler: z
      .enum(["released", "paper"])
      .default("released")
      .meta({
        label: "Sampler",
        description:
          "released (RELEASED.md §2.5): 59 Euler steps on a 60-point grid (Steps is ignored); 3 branches (conditional / image-only / null, whose input-image latent is the initial noise) combined as null + image·(image-only − null) + CFG·(conditional − image-only) on 3 of the 4 latent channels, the 4th keeps the conditional one. paper: Steps steps, CFG over all channels with zeroed LLM states (documents saved before v2 use this).",
      }),
    imageGuidance: z.number().min(0).max(20).default(1).meta({ label: "Image guidance (released sampler)", step: 0.5 }),
    llmStates: z
      .enum(["released", "tokens"])
      .default("released")
      .meta({
        label: "LLM states",
        description: "released (§2.1): the last 32 fed-back generated states as [IMG] and the 3 before as [TASK], whatever their tokens. tokens: each [IMG*]/[TASK*] token's own state (documents saved before v2 use this).",
      }),
  }),
  migrateParams(params, fromVersion) {
    // v1 documents keep their behaviour: the paper's sampler and the tokens' own states
    return fromVersion < 2 ? { sampler: "paper", llmStates: "tokens", ...params } : params;
  },
  async fingerprint() {
    return ditContentHash(ditReferenceConfig(), DIT_DEFAULT_SEED);
  },
  async execute({ inputs, params, ctx }) {
    if (!ctx.runtime) throw new Error("no ONNX Runtime layer is attached to this run");
    const t0 = performance.now();
    const cond = pickConditioning(inputs.llm, params.conditioning, params.llmStates);
    const released = params.sampler === "released";
    const steps = released ? RELEASED_STEPS : params.steps;
    const source = inputs.source ?? undefined;
    const cfg = ditReferenceConfig();
    const R = vaeImageSize(cfg.vae);
    const total = steps + (source ? 2 : 1);
    ctx.progress(0, source ? "encoding the source image" : `step 0/${steps}`);

    return withDit(ctx.runtime, { withEncoder: source !== undefined }, async (runner) => {
      let srcLatent: Float32Array | undefined;
      if (source) {
        const rgb = await decodeToRgb(await ctx.storage.read(source.file), R);
        srcLatent = await runner.encode(rgbToTensor(rgb, R, R));
        ctx.progress(1 / total, `step 0/${steps}`);
      }
      const done = source ? 1 : 0;
      // The image refines live: a decoded estimate of the final image every few steps (at most ~12).
      const previewEvery = Math.max(1, Math.ceil(steps / 12));
      let x0: Float32Array | undefined;
      let z: Float32Array;
      try {
        const noise = initialNoise(cfg.dit, params.seed);
        z = await sampleEuler({
          steps,
          noise,
          velocity: async (x, t) => {
            const v = released ? await runner.releasedVelocity(x, t, cond, params.guidance, params.imageGuidance, noise, srcLatent) : await runner.guidedVelocity(x, t, cond, params.guidance, srcLatent);
            // Rectified flow: x_t = (1 − t)·x0 + t·noise and v = noise − x0, so x0 ≈ x_t − t·v.
            x0 = Float32Array.from(x, (xi, j) => xi - t * v[j]!);
            return v;
          },
          signal: ctx.signal,
          onStep: async (i, n) => {
            let preview: string | undefined;
            if (x0 && (i + 1) % previewEvery === 0 && i + 1 < n) {
              preview = await ctx.storage.write(await encodePng(tensorToRgb(await runner.decode(x0), R, R), R, R), "png");
            }
            ctx.progress((done + i + 1) / total, `step ${i + 1}/${n}`, preview);
          },
        });
      } catch (err) {
        if (err instanceof SamplingCancelled) throw ctx.signal.reason ?? err;
        throw err;
      }
      if (ctx.signal.aborted) throw ctx.signal.reason ?? new SamplingCancelled(steps);
      const pixels = tensorToRgb(await runner.decode(z), R, R);
      const png = await encodePng(pixels, R, R);
      // The file says which workflow made it (so its content id differs per workflow, by design).
      const file = await ctx.storage.write(ctx.workflow ? embedWorkflowInPng(png, ctx.workflow) : png, "png");
      ctx.progress(1, "decoded");
      const image: ImageValue = { kind: "image", file, mime: "image/png", width: R, height: R };
      const info: GenerateImageInfo = {
        model: DIT_REF,
        label: DIT_LABEL,
        mode: source ? "edit" : "text-to-image",
        conditioning: cond.source,
        conditioningNote: cond.note,
        steps,
        guidance: params.guidance,
        sampler: params.sampler,
        llmStates: params.llmStates,
        seed: params.seed,
        ms: performance.now() - t0,
      };
      return { image, info };
    });
  },
  summarize(outputs) {
    const img = outputs.image;
    const info = outputs.info;
    if (!img || !info) return "no image";
    const cond = info.conditioning === "llm" ? "conditioned on the LLM's [IMG*]/[TASK*] hidden states" : `conditioning ${info.conditioningNote}`;
    const how = info.sampler === "released" ? `released sampler (${info.steps} Euler steps, 3-branch guidance on 3 of 4 channels)` : `paper sampler (${info.steps} steps)`;
    return `${info.mode === "edit" ? "edited" : "generated"} ${img.width}×${img.height} PNG (${info.model}, ${info.label}), ${how}, CFG ${info.guidance}, seed ${info.seed}; ${cond}${info.llmStates === "released" ? " (states taken as released)" : ""}`;
  },
});
