/**
 * Every ONNX graph the app builds, by family and model: the MoE-LLM decoder of each installed language model
 * (the MoE-LLM node's variant: sparse, trace, KV cache), the seeded vision and audio encoders, the seeded
 * MoE-TTS decoder and its codec, the seeded task-aware DiT with its VAE decoder and encoder, and each imported
 * released MoE-TTS and WavTokenizer codec. The placement report (engine/runtime/placement.ts) is run on these.
 * Listing builds nothing; `appGraphFile` builds (or finds cached) the graph of one entry.
 */
import { placementOf, type PlacementReport } from "@/engine/runtime/placement";
import { chooseProviders } from "@/engine/runtime/select";
import type { ExecutionProvider } from "@/engine/runtime/types";
import { adapterLabel, probeWebGpu } from "@/engine/runtime/webgpu";
import { listCodecs, codecGraphFile, resolveCodec } from "./tts/codec-wavtokenizer-model";
import { DIT_REF, ditGraphFile, ensureDitModel, type DitGraphKind } from "./dit/dit-tiny";
import { DEFAULT_AUDIO_MODEL, DEFAULT_VISION_MODEL, encoderGraphFile, resolveEncoder } from "./encoders/encoders-tiny";
import { graphFile, listModels, resolveModel } from "./moe-llm/moe-llm-model";
import { listSpeechModels, resolveSpeechRef, speechGraphFile } from "./tts/tts-released-model";
import { TTS_REFERENCE_REF } from "./tts/tts-tiny";
import { resolveTtsModel, ttsGraphFiles } from "./tts/tts";
import { deviceGraphOptions } from "./moe-llm/moe-llm-graph";
import { isImportedDir } from "./import/runtime";

export type GraphFamily = "decoder" | "vision encoder" | "audio encoder" | "TTS" | "TTS codec" | "DiT" | "VAE decoder" | "VAE encoder" | "codec";

export interface AppGraph {
  /** "<family>:<model ref>", stable across restarts */
  id: string;
  family: GraphFamily;
  model: string;
}

/** The decoder variant the MoE-LLM node runs (nodes/moe-llm.ts). */
export const DECODER_GRAPH = { moe: "sparse", trace: true, kvCache: true } as const;

const entry = (family: GraphFamily, model: string): AppGraph => ({ id: `${family}:${model}`, family, model });

export function listAppGraphs(): AppGraph[] {
  return [
    ...listModels().map((ref) => entry("decoder", ref)),
    entry("vision encoder", DEFAULT_VISION_MODEL),
    entry("audio encoder", DEFAULT_AUDIO_MODEL),
    entry("TTS", TTS_REFERENCE_REF),
    entry("TTS codec", TTS_REFERENCE_REF),
    ...listSpeechModels().map((ref) => entry("TTS", ref)),
    entry("DiT", DIT_REF),
    entry("VAE decoder", DIT_REF),
    entry("VAE encoder", DIT_REF),
    ...listCodecs().map((ref) => entry("codec", ref)),
  ];
}

/** The ONNX file of a listed graph, built on first use; `provider`: the decoder variant sessions on it run (moe-llm-model.ts withMoeLlm). */
export async function appGraphFile(id: string, provider: ExecutionProvider = "cpu"): Promise<string> {
  const g = listAppGraphs().find((x) => x.id === id);
  if (!g) throw new Error(`unknown graph "${id}"`);
  switch (g.family) {
    case "decoder": {
      const model = await resolveModel(g.model);
      return graphFile(model, isImportedDir(model.dir) ? DECODER_GRAPH : deviceGraphOptions(model.config, DECODER_GRAPH, provider));
    }
    case "vision encoder":
      return encoderGraphFile(await resolveEncoder("vision", g.model));
    case "audio encoder":
      return encoderGraphFile(await resolveEncoder("audio", g.model));
    case "TTS": {
      const speech = g.model === TTS_REFERENCE_REF ? undefined : resolveSpeechRef(g.model);
      return speech ? speechGraphFile(speech, { kvCache: false, dropout: false }) : ttsGraphFiles(await resolveTtsModel(g.model)).decoder;
    }
    case "TTS codec":
      return ttsGraphFiles(await resolveTtsModel(g.model)).codec;
    case "codec":
      return codecGraphFile(resolveCodec(g.model));
    default: {
      const kind: DitGraphKind = g.family === "DiT" ? "dit" : g.family === "VAE decoder" ? "vae-decoder" : "vae-encoder";
      return ditGraphFile(await ensureDitModel(), kind);
    }
  }
}

export interface GraphPlacement extends PlacementReport {
  graph: AppGraph;
  /** the WebGPU adapter the report was made on */
  adapter?: string;
}

/**
 * The placement report of a listed graph on a provider (engine/runtime/placement.ts). The provider must be
 * available here: WebGPU needs an adapter (the probe also sets up SwiftShader when that is the only one), CUDA its libraries.
 */
export async function graphPlacement(id: string, provider: ExecutionProvider): Promise<GraphPlacement> {
  const graph = listAppGraphs().find((x) => x.id === id);
  if (!graph) throw new Error(`unknown graph "${id}"`);
  let adapter: string | undefined;
  if (provider !== "cpu") await chooseProviders(provider); // throws with the reason (and what to install) when unavailable
  if (provider === "webgpu") {
    const p = await probeWebGpu();
    if (p.ok) adapter = adapterLabel(p.adapter);
  }
  const report = await placementOf(await appGraphFile(id, provider), provider);
  return { ...report, graph, ...(adapter ? { adapter } : {}) };
}
