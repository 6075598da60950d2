/**
 * The node catalogue: every node type, listed explicitly (a duplicate type throws at start-up).
 * Param meta convention, read by the editor's form generator from zod's registry / JSON Schema:
 *   `.meta({ widget: "textarea" | "file" | "slider", accept?: "image/*", label?, description?, step? })`,
 *   placed last (after `.default()`). A `z.number().min().max()` with `.meta({ step })` becomes a slider;
 *   widget "file" holds an upload id and `accept` says which kind to upload. Types: nodes/params.ts.
 */
import { NodeCatalogue, type AnyNodeDefinition } from "../engine/node";
import { audioEncoder } from "./audio-encoder";
import { audioInput } from "./audio-input";
import { compareTracesNode } from "./compare-traces";
import { datasetNode } from "./dataset";
import { expertAblation } from "./expert-ablation";
import { generateImage } from "./dit";
import { imageInput } from "./image-input";
import { moeLlm } from "./moe-llm";
import { preview } from "./preview";
import { promptBuilder } from "./prompt-builder";
import { ropeInspector } from "./rope-inspector";
import { routingAggregate } from "./routing-aggregate";
import { routingInspector } from "./routing-inspector";
import { script } from "./script";
import { textInput } from "./text-input";
import { textTemplate } from "./text-template";
import { tts } from "./tts";
import { videoEncoder } from "./video-encoder";
import { videoInput } from "./video-input";
import { visionEncoder } from "./vision-encoder";

export type { ParamMeta, ParamWidget } from "./params";

export const allNodes: readonly AnyNodeDefinition[] = [
  textInput,
  imageInput,
  audioInput,
  videoInput,
  datasetNode,
  visionEncoder,
  audioEncoder,
  videoEncoder,
  textTemplate,
  script,
  promptBuilder,
  moeLlm,
  routingInspector,
  routingAggregate,
  expertAblation,
  compareTracesNode,
  ropeInspector,
  tts,
  generateImage,
  preview,
];

export const catalogue = new NodeCatalogue(allNodes);
