/**
 * The parts of a checkpoint (Uni-MoE-2.0-Omni holds more than its LLM), each with what MoE Studio does with it, for
 * inspect-checkpoint, the Models page and the import manifest. A part is a set of tensor-name prefixes; it counts as
 * imported when a mapping rule of the family sends any of its tensors to a canonical name (families/table.ts), so a
 * part becomes "imported" by adding its rules (and, for a new head, its builder) — the texts below say what happens
 * either way.
 */
import type { TensorClaim } from "./common";

export type PartId = "llm" | "vision" | "audio" | "speech_generator" | "image_generator" | "image_projectors" | "other";

export interface PartSpec {
  id: PartId;
  title: string;
  /** Tensor-name prefixes of the part. */
  prefixes: string[];
  /** What MoE Studio does with the part when its tensors are imported (claimed onto canonical names). */
  imported: string;
  /** What it does when they are only listed (claimed as unused, or unclaimed). */
  notImported: string;
}

/** Uni-MoE-2.0-Omni (modeling_qwen2vl.py GrinQwen2VLForConditionalGeneration + modeling_out.py heads, RELEASED.md §3). */
export const OMNI_PARTS: PartSpec[] = [
  { id: "llm", title: "MoE-LLM (decoder, 28 MoE layers in the release)", prefixes: ["model.", "lm_head."], imported: "imported into model.onnx: the MoE-LLM node's model", notImported: "not imported" },
  {
    id: "vision",
    title: "Vision tower (SigLIP) + aligner",
    prefixes: ["vision_tower.", "vision_aligner."],
    imported: "imported into vision/vision.onnx: pick <model>/vision in the Vision Encoder node",
    notImported: "not imported (no tensors of the tower, or none the importer maps)",
  },
  {
    id: "audio",
    title: "Audio tower (Whisper encoder) + query former + projector",
    prefixes: ["audio_tower.", "audio_aligner."],
    imported: "imported into audio/audio.onnx: pick <model>/audio in the Audio Encoder node",
    notImported: "not imported (no tensors of the tower, or none the importer maps)",
  },
  {
    id: "speech_generator",
    title: "Speech generator (MoE-TTS, ar_ori_v2_new)",
    prefixes: ["speech_generator."],
    imported: "imported into speech/ (the released MoE-TTS, RELEASED.md §1): pick <model>/speech in the MoE-TTS node; its codec is WavTokenizer, a separate checkpoint (import its folder)",
    notImported: "listed, not imported (none of its tensors matched the MoE-TTS mapping)",
  },
  {
    id: "image_generator",
    title: "Image generator (task-aware DiT, VAE)",
    prefixes: ["image_generator."],
    imported: "imported as the DiT model",
    notImported: "listed, not imported: the DiT node runs the seeded toy; the release loads its DiT and SDXL VAE from their own checkpoints (RELEASED.md §2.7)",
  },
  {
    id: "image_projectors",
    title: "Image-generation projectors ([IMG], [TASK] and visual hidden-state projectors)",
    prefixes: ["image_hidden_fcs.", "task_hidden_fcs.", "visual_hidden_fcs."],
    imported: "imported as the DiT's conditioning projectors",
    notImported: "listed, not imported: the DiT node conditions through the seeded toy's projectors (visual_hidden_fcs is unused by the release too, RELEASED.md §0)",
  },
];

/** The parts of a family with nothing but its decoder. */
export const DECODER_PARTS: PartSpec[] = [{ ...OMNI_PARTS[0]!, title: "MoE-LLM (decoder)" }];

/** Catch-all for tensors of no known part. */
const OTHER: PartSpec = { id: "other", title: "Other tensors", prefixes: [], imported: "imported", notImported: "unknown to MoE Studio: not used" };

export interface PartReport {
  id: PartId;
  title: string;
  tensors: number;
  parameters: number;
  /** Tensors no rule claimed (the part's whole list is in inspect-checkpoint). */
  unclaimed: number;
  imported: boolean;
  /** What MoE Studio does with the part. */
  what: string;
}

/** The parts present in a checkpoint's tensors, in spec order (then "other"). */
export function checkpointParts(specs: readonly PartSpec[], tensors: readonly TensorClaim[]): PartReport[] {
  const groups = new Map<PartSpec, TensorClaim[]>();
  for (const t of tensors) {
    const spec = specs.find((s) => s.prefixes.some((p) => t.name.startsWith(p))) ?? OTHER;
    groups.set(spec, [...(groups.get(spec) ?? []), t]);
  }
  return [...specs, OTHER].flatMap((spec) => {
    const list = groups.get(spec);
    if (!list) return [];
    const imported = list.some((t) => t.canonical !== null);
    return [
      {
        id: spec.id,
        title: spec.title,
        tensors: list.length,
        parameters: list.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0),
        unclaimed: list.filter((t) => t.rule === null).length,
        imported,
        what: imported ? spec.imported : spec.notImported,
      },
    ];
  });
}
