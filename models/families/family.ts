/** What one checkpoint family is (families/table.ts lists them; deepseek.ts, phimoe.ts, gpt-oss.ts define some). */
import type { MoeLlmConfig } from "../moe-llm/config";
import type { MappingRule } from "./common";
import type { PartSpec } from "./parts";
import type { TowerKind } from "./towers";

export type FamilyName = "grin_qwen2_vl" | "qwen2_moe" | "qwen3_moe" | "olmoe" | "mixtral" | "deepseek_v2" | "deepseek_v3" | "phimoe" | "gpt_oss";

export interface Family {
  name: FamilyName;
  /** config.json model_type values of this family. */
  modelTypes: string[];
  title: string;
  /** Canonical config (zMoeLlmConfig plus the architecture switches of families/conventions.ts). */
  toConfig(raw: Record<string, unknown>): MoeLlmConfig;
  rules: MappingRule[];
  /**
   * Encoder towers the checkpoint may carry (canonical names `vision/…`, `audio/…`, see families/towers.ts).
   * A tower is imported when any of its tensors is present; then all of them are required.
   */
  towers?: TowerKind[];
  /** The parts a checkpoint of this family may hold (families/parts.ts); default: the decoder only. */
  parts?: PartSpec[];
  /**
   * config.json keys the importer reads, when toConfig cannot tell (it passes the whole config through);
   * other families' reads are recorded while toConfig runs. The rest is listed as not used (configFieldNotes).
   */
  configKeys?: string[];
}
