import { z } from "zod";
import { defineValueKind, ownPreview } from "./kind";

/** What Expert Ablation hands on: the table as JSON, CSV and safetensors files (engine/batch/ablation-export.ts layouts). */
export interface AblationReport {
  kind: "expert-ablation-report";
  /** `type` + `headline` make it its own preview in the editor. */
  type: "expert-ablation";
  headline: string;
  file: string;
  csvFile: string;
  safetensorsFile: string;
  status: "finished" | "failed" | "cancelled";
  ablations: number;
  tasks: string[];
  records: { total: number; failed: number };
  workflowFingerprint: string;
  datasetFingerprint: string;
}

export const expertAblation = defineValueKind<AblationReport>({
  name: "expert-ablation",
  noun: "an ablation report",
  tag: "expert-ablation-report",
  schema: z.object({ kind: z.literal("expert-ablation-report"), type: z.literal("expert-ablation"), headline: z.string(), file: z.string(), csvFile: z.string(), safetensorsFile: z.string() }),
  describe: ownPreview,
});
