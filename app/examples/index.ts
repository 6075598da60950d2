import type { Workflow } from "@/engine/workflow/schema";

export interface Example {
  id: string;
  title: string;
  description: string;
  document: Workflow;
  /** Params filled with the ids of the built-in sample media when the example is opened. */
  sampleMedia?: { node: string; param: string; media: "image" | "audio" }[];
}

const node = (id: string, type: string, x: number, y: number, params: Record<string, unknown> = {}, label?: string) => ({
  id,
  type,
  typeVersion: 1,
  params,
  position: { x, y },
  ...(label ? { label } : {}),
});
const edge = (source: string, sourceSocket: string, target: string, targetSocket: string) => ({
  id: `${source}.${sourceSocket}:${target}.${targetSocket}`,
  source,
  sourceSocket,
  target,
  targetSocket,
});

/** Workflows a newcomer can open from the start page (each opens as a new, editable copy). */
export const EXAMPLES: Example[] = [
  {
    id: "omni",
    title: "Image + audio → MoE-LLM → routing, RoPE, speech, image",
    description: "The whole omnimodal pipeline on the seeded uni-moe-tiny family, with sample media: encoders, Prompt Builder with 3D RoPE, MoE-LLM, Routing and RoPE Inspectors, MoE-TTS and the task-aware DiT.",
    sampleMedia: [
      { node: "image", param: "file", media: "image" },
      { node: "audio", param: "file", media: "audio" },
    ],
    document: {
      schemaVersion: 2,
      name: "Omni pipeline",
      description: "image + audio + text → encoders → Prompt Builder (uni-moe 3D RoPE) → MoE-LLM → Routing Inspector + RoPE Inspector + TTS + DiT. Every model is seeded and untrained: it shows the mechanics, not answers.",
      tags: ["example"],
      nodes: [
        // Laid out for the nodes' sizes after a run (outputs shown: the MoE-LLM ~1,000 px tall, MoE-TTS ~860, DiT ~630),
        // so no node covers another's results; tests/e2e/omni.spec.ts checks it.
        node("image", "input.image", 0, 0, {}, "Image"),
        node("audio", "input.audio", 0, 450, {}, "Audio"),
        node("question", "input.text", 0, 890, { text: "What do you see and hear? Then say it and draw it." }, "Question"),
        node("vision", "encode.vision", 340, 0, {}),
        node("hearing", "encode.audio", 340, 450, {}),
        node("prompt", "prompt.builder", 680, 300, {}),
        node("rope", "inspect.rope", 1020, 0, {}, "RoPE Inspector"),
        node("llm", "model.moe-llm", 1020, 290, { maxNewTokens: 16, emit: "speech+image" }),
        node("answer", "output.preview", 1360, 0, {}, "Answer"),
        node("routing", "inspect.routing", 1360, 270, {}, "Routing Inspector"),
        node("tts", "generate.tts", 1360, 640, { maxSeconds: 2 }, "MoE-TTS"),
        node("dit", "generate.image", 1700, 640, { steps: 8 }, "Task-aware DiT"),
      ],
      edges: [
        edge("image", "image", "vision", "image"),
        edge("audio", "audio", "hearing", "audio"),
        edge("vision", "features", "prompt", "image"),
        edge("hearing", "features", "prompt", "audio"),
        edge("question", "text", "prompt", "text"),
        edge("prompt", "sequence", "llm", "sequence"),
        edge("prompt", "sequence", "rope", "sequence"),
        edge("llm", "output", "answer", "value"),
        edge("llm", "trace", "routing", "trace"),
        edge("llm", "output", "tts", "llm"),
        edge("question", "text", "tts", "text"),
        edge("llm", "output", "dit", "llm"),
      ],
      notes: [],
    },
  },
  {
    id: "moe-llm-routing",
    title: "Text → MoE-LLM → routing",
    description: "Ask the seeded uni-moe-tiny model a question; see its answer and how every token was routed.",
    document: {
      schemaVersion: 2,
      name: "Text → MoE-LLM → routing",
      description: "A prompt runs through uni-moe-tiny/tiny (seeded, untrained). The routing trace shows each token's experts per layer.",
      tags: ["example"],
      nodes: [
        node("prompt", "input.text", 0, 0, { text: "Explain what a mixture of experts is." }, "Prompt"),
        node("llm", "model.moe-llm", 320, 0, { maxNewTokens: 24 }),
        node("answer", "output.preview", 700, -60, {}, "Answer"),
        node("routing", "inspect.routing", 700, 160, {}, "Routing Inspector"),
      ],
      edges: [edge("prompt", "text", "llm", "prompt"), edge("llm", "output", "answer", "value"), edge("llm", "trace", "routing", "trace")],
      notes: [],
    },
  },
  {
    id: "ban-and-compare",
    title: "Ban an expert and compare",
    description: "The same prompt twice: once as the model routes it, once with expert E1 banned in every layer.",
    document: {
      schemaVersion: 2,
      name: "Ban an expert and compare",
      description: "Two MoE-LLM nodes on one prompt; the second bans E1. Compare their routing and answers.",
      tags: ["example"],
      nodes: [
        // side by side: each MoE-LLM is ~900 px tall once it shows its answer
        node("prompt", "input.text", 0, 0, { text: "Write one sentence about the sea." }, "Prompt"),
        node("base", "model.moe-llm", 340, 0, { maxNewTokens: 16 }, "Baseline"),
        node("banned", "model.moe-llm", 680, 0, { maxNewTokens: 16, interventions: '[{"layer": "*", "expert": "E1", "action": "ban"}]' }, "E1 banned"),
        node("baseRouting", "inspect.routing", 1020, 0, {}, "Baseline routing"),
        node("compare", "inspect.compare-traces", 1020, 360, { labelA: "baseline", labelB: "E1 banned" }, "Compare"),
        node("bannedRouting", "inspect.routing", 1020, 680, {}, "Routing with E1 banned"),
      ],
      edges: [
        edge("prompt", "text", "base", "prompt"),
        edge("prompt", "text", "banned", "prompt"),
        edge("base", "trace", "baseRouting", "trace"),
        edge("banned", "trace", "bannedRouting", "trace"),
        edge("base", "trace", "compare", "a"),
        edge("banned", "trace", "compare", "b"),
      ],
      notes: [],
    },
  },
  {
    id: "routing-precision",
    title: "Routing in fp32 vs bf16 (as released)",
    description:
      "The same prompt routed twice: in fp32, and in bf16 as Uni-MoE-2.0's released inference computes it. Compare Traces lists, per layer, the tokens whose k or experts differ (near the Top-P threshold and GRIN's near ties). Pick an imported Uni-MoE-2.0 model in both nodes to see it on real weights.",
    document: {
      schemaVersion: 2,
      name: "Routing in fp32 vs bf16",
      description: "Two MoE-LLM nodes on one prompt, identical but for their routing precision; Compare Traces shows the tokens routed differently side by side.",
      tags: ["example"],
      nodes: [
        // side by side, as in "Ban an expert and compare": each MoE-LLM is ~900 px tall once it shows its answer
        node("prompt", "input.text", 0, 0, { text: "Explain in two sentences why the sky is blue, then why sunsets are red." }, "Prompt"),
        node("fp32", "model.moe-llm", 340, 0, { maxNewTokens: 24, routingPrecision: "fp32" }, "fp32 routing"),
        node("bf16", "model.moe-llm", 680, 0, { maxNewTokens: 24, routingPrecision: "bf16" }, "bf16 routing (as released)"),
        node("compare", "inspect.compare-traces", 1020, 0, { labelA: "fp32", labelB: "bf16" }, "Compare"),
        node("bf16Routing", "inspect.routing", 1020, 340, {}, "bf16 routing"),
      ],
      edges: [
        edge("prompt", "text", "fp32", "prompt"),
        edge("prompt", "text", "bf16", "prompt"),
        edge("bf16", "trace", "bf16Routing", "trace"),
        edge("fp32", "trace", "compare", "a"),
        edge("bf16", "trace", "compare", "b"),
      ],
      notes: [],
    },
  },
  {
    id: "dataset-routing",
    title: "Dataset → routing per task (Fig. 7/8), vocabularies, sweeps",
    description: "A shipped sample of 36 records (text and images, 4 tasks) runs through uni-moe-tiny once per record; the Routing Aggregate sums the routing and shows Fig. 7 and 8 per task side by side, each expert's tokens and the experts each task over-uses. Set its Sweep to e.g. llm.routingTopP=0.5,0.7,0.9 to plot metrics against Top-P.",
    document: {
      schemaVersion: 2,
      name: "Routing over a dataset",
      description: "Dataset (examples/sample/records.jsonl) → Vision encoder (image records only) → Prompt Builder → MoE-LLM → Routing Aggregate. The Dataset node shows one record on a plain run; the Routing Aggregate runs every record (finished records are cached, so a re-run or added records cost only the new ones).",
      tags: ["example", "dataset"],
      nodes: [
        node("data", "input.dataset", 0, 120, { source: "examples/sample/records.jsonl", previewRow: 0 }, "Dataset"),
        node("vision", "encode.vision", 340, 0, {}),
        node("prompt", "prompt.builder", 660, 120, {}),
        node("llm", "model.moe-llm", 980, 120, { maxNewTokens: 4 }),
        node("aggregate", "inspect.routing-aggregate", 1340, 120, { scope: "dataset", concurrency: 1, stopOnError: false, sweep: "" }, "Routing Aggregate"),
      ],
      edges: [
        edge("data", "text", "prompt", "text"),
        edge("data", "image", "vision", "image"),
        edge("vision", "features", "prompt", "image"),
        edge("prompt", "sequence", "llm", "sequence"),
        edge("llm", "trace", "aggregate", "trace"),
        edge("data", "record", "aggregate", "record"),
      ],
      notes: [],
    },
  },
  {
    id: "dataset-ablation",
    title: "Dataset → expert ablation: ΔNLL per task beside routing share",
    description: "The same 36 records with reference answers: the MoE-LLM scores each answer (teacher-forced NLL), the Expert Ablation bans each expert in turn (plus k = 1 and no null expert) and shows the ΔNLL heatmap per task, the most important experts per task, and each expert's importance beside how often it is chosen. The seeded model's answers mean nothing; the mechanics are real.",
    document: {
      schemaVersion: 2,
      name: "Expert ablation over a dataset",
      description: "Dataset (examples/sample/records.jsonl, with answers) → Vision encoder → Prompt Builder → MoE-LLM (mode score-answer) → Expert Ablation. Every pass is a resumable batch: a re-run costs only what is missing.",
      tags: ["example", "dataset", "ablation"],
      nodes: [
        node("data", "input.dataset", 0, 120, { source: "examples/sample/records.jsonl", previewRow: 0 }, "Dataset"),
        node("vision", "encode.vision", 340, 0, {}),
        node("prompt", "prompt.builder", 660, 120, {}),
        node("llm", "model.moe-llm", 980, 120, { mode: "score-answer" }),
        node("ablation", "inspect.expert-ablation", 1340, 120, { ablate: "experts" }, "Expert Ablation"),
      ],
      edges: [
        edge("data", "text", "prompt", "text"),
        edge("data", "image", "vision", "image"),
        edge("vision", "features", "prompt", "image"),
        edge("prompt", "sequence", "llm", "sequence"),
        edge("data", "answer", "llm", "answer"),
        edge("llm", "trace", "ablation", "trace"),
        edge("data", "record", "ablation", "record"),
      ],
      notes: [],
    },
  },
];
