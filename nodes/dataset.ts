import { z } from "zod";
import { DatasetError, fingerprintDataset, readRows, resolveDatasetSource, resolveRecord, scanRows, type DatasetRecord, type DatasetScan, type RowResult } from "../engine/batch/dataset";
import { DATASET_NODE_TYPE, DATASET_OUTPUTS, recordOutputs } from "../engine/batch/feeder";
import { defineNode } from "../engine/node";
import { dataset as datasetKind, type DatasetSummary } from "../engine/values/dataset";
import "./params";

export type { DatasetSummary };

function headline(scan: DatasetScan): string {
  const tasks = Object.keys(scan.tasks).filter((t) => t !== "");
  return `${scan.count} records${scan.errorCount ? `, ${scan.errorCount} bad row(s) skipped` : ""}${tasks.length ? `, ${tasks.length} task(s)` : ""} (${Object.keys(scan.modalities).join(" + ")})`;
}

/** How the node reads a dataset (one object, so a test can count the passes). */
export const datasetReader = { fingerprint: fingerprintDataset, rows: readRows };

/**
 * The fingerprint hook's result, handed to execute: the executor calls both with the same parsed params
 * object, so keying on it passes the hash of this execution through without hashing the dataset twice.
 */
const fingerprintOf = new WeakMap<object, { source: string; fingerprint: string }>();

/** One pass over the rows: the scan, and the `previewRow`-th valid record kept on the way. */
async function scanKeeping(source: string, fingerprint: string, previewRow: number): Promise<{ scan: DatasetScan; record?: DatasetRecord }> {
  let record: DatasetRecord | undefined;
  let valid = 0;
  async function* rows(): AsyncGenerator<RowResult> {
    for await (const r of datasetReader.rows(source)) {
      if (r.ok && valid++ === previewRow) record = r.record;
      yield r;
    }
  }
  const scan = await scanRows(source, rows(), fingerprint);
  return { scan, record };
}

/**
 * A dataset: text and media records from a JSONL/CSV file or a folder (engine/batch/dataset.ts says the
 * format). On its own it emits one record (`previewRow`) so the workflow can be tried on it; a Routing
 * Aggregate node downstream runs the workflow once per record and sums the routing.
 */
export const datasetNode = defineNode({
  type: DATASET_NODE_TYPE,
  typeVersion: 1,
  title: "Dataset",
  category: "Inputs",
  description: "Records (prompt text, image/audio/video, task, label, reference answer) from a JSONL/CSV file or a folder. Emits one record here; a Routing Aggregate downstream runs every record.",
  inputs: {},
  outputs: { ...DATASET_OUTPUTS, dataset: { ...DATASET_OUTPUTS.dataset, kind: datasetKind } },
  params: z.object({
    source: z
      .string()
      .max(1000)
      .default("examples/sample/records.jsonl")
      .meta({ label: "Dataset", description: "A .jsonl/.csv file or a folder: examples/… for the shipped samples, otherwise a path inside <data dir>/datasets." }),
    previewRow: z.number().int().min(0).default(0).meta({ label: "Record shown in a single run (0 = first)" }),
  }),
  async fingerprint(params) {
    const source = resolveDatasetSource(params.source);
    const fingerprint = await datasetReader.fingerprint(source);
    fingerprintOf.set(params, { source, fingerprint });
    return fingerprint;
  },
  async execute({ params, ctx }) {
    let scan: DatasetScan;
    let rec: DatasetRecord | undefined;
    try {
      const source = resolveDatasetSource(params.source);
      const known = fingerprintOf.get(params);
      fingerprintOf.delete(params);
      const fingerprint = known?.source === source ? known.fingerprint : await datasetReader.fingerprint(source);
      ({ scan, record: rec } = await scanKeeping(source, fingerprint, params.previewRow));
    } catch (err) {
      if (err instanceof DatasetError) throw new Error(err.message);
      throw err;
    }
    if (scan.count === 0) throw new Error(`the dataset has no valid records${scan.errorCount ? ` (${scan.errorCount} bad row(s), e.g. ${scan.errors[0]!.message})` : ""}`);
    if (!rec) throw new Error(`record ${params.previewRow} does not exist: the dataset has ${scan.count} valid record(s)`);
    const resolved = await resolveRecord(rec, ctx.storage);
    const out = recordOutputs(resolved, { ...scan, kind: "dataset", type: "dataset", headline: headline(scan), format: scan.kind, previewRow: params.previewRow } satisfies DatasetSummary);
    // A single run needs the media the workflow uses; in a batch, absent media prune their branch instead.
    const used = new Set((ctx.workflow?.edges ?? []).filter((e) => e.source === ctx.nodeId).map((e) => e.sourceSocket));
    const lacking = ["image", "audio", "video", "answer"].filter((m) => used.has(m) && out[m] === undefined);
    if (lacking.length) throw new Error(`record ${params.previewRow} (${rec.id}) has no ${lacking.join("/")}, which this workflow uses: pick a preview row that has it (a batch run simply leaves that branch out for such records)`);
    return out;
  },
  summarize(outputs) {
    const d = outputs.dataset;
    if (!d) return "no dataset";
    const tasks = Object.keys(d.tasks).filter((t) => t !== "");
    return `${d.count} records${d.errorCount ? `, ${d.errorCount} bad row(s) skipped` : ""}${tasks.length ? `, ${tasks.length} task(s)` : ""}; showing record ${d.previewRow}`;
  },
});
