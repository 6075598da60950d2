/**
 * How a batch run feeds one record into a workflow: the Dataset node (nodes/dataset.ts) is swapped for
 * this definition of the same type, whose params carry the resolved record, so the rest of the graph
 * runs unchanged. Both share DATASET_OUTPUTS, so every edge that is valid in the editor stays valid.
 */
import { z } from "zod";
import { defineNode, NodeCatalogue, type OutputSpec } from "../node";
import type { ResolvedRecord } from "./dataset";

export const DATASET_NODE_TYPE = "input.dataset";
export const AGGREGATE_NODE_TYPE = "inspect.routing-aggregate";

export const DATASET_OUTPUTS = {
  text: { type: "TEXT", label: "text" },
  answer: { type: "TEXT", label: "answer (reference, for scoring)" },
  image: { type: "IMAGE", label: "image" },
  audio: { type: "AUDIO", label: "audio" },
  video: { type: "VIDEO", label: "video" },
  record: { type: "JSON", label: "record (index, id, task, label)" },
  dataset: { type: "JSON", label: "dataset (count, errors, preview)" },
} satisfies Record<string, OutputSpec>;

/** What the `record` output carries. */
export interface RecordInfo {
  kind: "dataset-record";
  index: number;
  id: string;
  task: string;
  label: string;
  hash: string;
}

export function recordInfo(r: ResolvedRecord): RecordInfo {
  return { kind: "dataset-record", index: r.index, id: r.id, task: r.task, label: r.label, hash: r.hash };
}

/** Outputs of one record; media and an answer the record lacks are absent (the batch runner prunes their branches). */
export function recordOutputs(r: ResolvedRecord, dataset: unknown = null): Record<string, unknown> {
  return {
    text: r.text,
    ...(r.answer ? { answer: r.answer } : {}),
    ...(r.image ? { image: r.image } : {}),
    ...(r.audio ? { audio: r.audio } : {}),
    ...(r.video ? { video: r.video } : {}),
    record: recordInfo(r),
    dataset,
  };
}

const recordFeeder = defineNode({
  type: DATASET_NODE_TYPE,
  typeVersion: 1,
  title: "Dataset record",
  category: "Inputs",
  description: "One record of a dataset, fed by the batch runner.",
  inputs: {},
  outputs: DATASET_OUTPUTS,
  params: z.object({ record: z.custom<ResolvedRecord>((v) => typeof v === "object" && v !== null && typeof (v as ResolvedRecord).hash === "string").optional() }),
  async execute({ params }) {
    if (!params.record) throw new Error("internal: the batch runner gave this record feeder no record");
    return recordOutputs(params.record);
  },
});

/** The catalogue with the Dataset node replaced by the record feeder. */
export function batchCatalogue(catalogue: NodeCatalogue): NodeCatalogue {
  return new NodeCatalogue([...catalogue.list().filter((d) => d.type !== DATASET_NODE_TYPE), recordFeeder as never]);
}
