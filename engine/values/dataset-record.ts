import { z } from "zod";
import { defineValueKind } from "./kind";

/** What a Dataset node's `record` output carries (engine/batch/feeder.ts RecordInfo); readers need only its task and label. */
export interface RecordTags {
  task?: string;
  label?: string;
}

export const datasetRecord = defineValueKind<RecordTags>({
  name: "dataset-record",
  noun: "a dataset record (index, id, task, label)",
  tag: "dataset-record",
  schema: z.object({ task: z.string().optional(), label: z.string().optional() }),
});
