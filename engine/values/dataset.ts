import { z } from "zod";
import type { DatasetScan } from "../batch/dataset";
import { defineValueKind, ownPreview } from "./kind";

/** What a Dataset node's `dataset` output carries: the scan (count, per-row errors, first rows). `type` + `headline` make it its own preview (a table of the first rows and the bad rows). */
export type DatasetSummary = Omit<DatasetScan, "kind"> & { kind: "dataset"; type: "dataset"; headline: string; format: DatasetScan["kind"]; previewRow: number };

export const dataset = defineValueKind<DatasetSummary>({
  name: "dataset",
  noun: "a dataset summary",
  tag: "dataset",
  schema: z.object({ kind: z.literal("dataset"), type: z.literal("dataset"), headline: z.string(), count: z.number(), preview: z.custom<unknown[]>((v) => Array.isArray(v)) }),
  describe: ownPreview,
});
