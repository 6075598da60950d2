/**
 * Downloads of a run's routing results, for the HTTP API and `cli run --out`: the trace a Routing
 * Inspector node stored, or a Routing Aggregate node's aggregate, as JSON, CSV or safetensors.
 */
import { stat } from "node:fs/promises";
import { TRPCError } from "@trpc/server";
import { aggregateCSV, type AggregateExport } from "@/engine/batch/summary";
import { RoutingAggregate } from "@/engine/routing/aggregate";
import { traceFromJSON, traceToCSV } from "@/engine/routing/export";
import { aggregateToSafetensors, traceToSafetensors } from "@/engine/routing/safetensors-export";
import type { Workflow } from "@/engine/workflow/schema";
import { canReadArtifact } from "./access";
import { documentFingerprint } from "./computation";
import { db } from "./db";
import { fileStorage, localFile } from "./storage";

export const EXPORT_FORMATS = ["json", "csv", "safetensors"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
export type ExportKind = "trace" | "aggregate";

export interface ExportFile {
  filename: string;
  contentType: string;
  body: Uint8Array;
}

const MB = 1024 * 1024;
/** Stored traces and aggregates an export reads whole and converts on the server (a 512-token × 24-layer trace is ~2 MB). */
const MAX_EXPORT_BYTES = 256 * MB;

const CONTENT_TYPE: Record<ExportFormat, string> = { json: "application/json", csv: "text/csv; charset=utf-8", safetensors: "application/octet-stream" };


/** The stored file ids a node's outputs point at, for a trace (routing report) or an aggregate. */
export function exportSource(outputs: Record<string, unknown> | null, kind: ExportKind): { file: string; csvFile?: string } | null {
  for (const v of Object.values(outputs ?? {})) {
    const o = v as Record<string, unknown> | null;
    if (!o || typeof o !== "object") continue;
    if (kind === "trace" && typeof o.traceFile === "string") return { file: o.traceFile };
    if (kind === "aggregate" && o.type === "routing-aggregate" && typeof o.file === "string") return { file: o.file, ...(typeof o.csvFile === "string" ? { csvFile: o.csvFile } : {}) };
  }
  return null;
}

/** Converts a stored trace or aggregate to `format`; the run's document fingerprint goes into the trace's metadata. */
export async function convertExport(kind: ExportKind, source: { file: string; csvFile?: string }, format: ExportFormat, doc?: Workflow | null): Promise<ExportFile> {
  const storage = fileStorage();
  const raw = await storage.read(source.file);
  const stem = kind === "trace" ? "routing-trace" : "routing-aggregate";
  const file = (body: Uint8Array | string): ExportFile => ({ filename: `${stem}.${format}`, contentType: CONTENT_TYPE[format], body: typeof body === "string" ? new TextEncoder().encode(body) : body });
  if (format === "json") return file(new Uint8Array(raw));
  if (kind === "trace") {
    const trace = traceFromJSON(raw.toString("utf8"), { semantics: false });
    return file(format === "csv" ? traceToCSV(trace) : traceToSafetensors(trace, doc ? { workflowFingerprint: documentFingerprint(doc) } : {}));
  }
  const exported = JSON.parse(raw.toString("utf8")) as AggregateExport;
  if (format === "csv" && source.csvFile) return file(new Uint8Array(await storage.read(source.csvFile)));
  const agg = RoutingAggregate.fromJSON(exported.aggregate);
  const meta = { workflowFingerprint: exported.workflowFingerprint, datasetFingerprint: exported.datasetFingerprint };
  return file(format === "csv" ? aggregateCSV(agg, meta) : aggregateToSafetensors(agg, meta));
}

/** A node's trace or aggregate in one of the owner's runs; NOT_FOUND when the run is someone else's or the node has none. */
export async function runExport(ownerId: string, runId: string, nodeId: string, kind: ExportKind, format: ExportFormat): Promise<ExportFile> {
  const run = await db().run.findFirst({ where: { id: runId, ownerId }, select: { document: true, nodeRuns: { where: { nodeId }, select: { outputs: true } } } });
  if (!run) throw new TRPCError({ code: "NOT_FOUND", message: `run ${runId} does not exist` });
  const outputs = run.nodeRuns[0]?.outputs ? (JSON.parse(run.nodeRuns[0].outputs) as Record<string, unknown>) : null;
  const source = exportSource(outputs, kind);
  if (!source) throw new TRPCError({ code: "NOT_FOUND", message: `node "${nodeId}" of run ${runId} has no ${kind === "trace" ? "routing trace (a Routing Inspector node stores one)" : "aggregate (a Routing Aggregate node makes one)"}` });
  // The outputs are not proof: a Script node's JSON may name any file id. Only what the owner may read is served, and
  // only a file of the kind the nodes write (a 192 MB WAV upload named as a trace was read and parsed whole per GET).
  for (const [id, ext] of [[source.file, ".json"], ...(source.csvFile ? [[source.csvFile, ".csv"]] : [])] as const) {
    if (!id.endsWith(ext) || !(await canReadArtifact(ownerId, id))) throw new TRPCError({ code: "NOT_FOUND", message: `node "${nodeId}" of run ${runId} names file ${id.slice(0, 80)}, which is not a stored ${kind}` });
    const bytes = (await stat(await localFile(id))).size;
    if (bytes > MAX_EXPORT_BYTES) throw new TRPCError({ code: "PAYLOAD_TOO_LARGE", message: `the ${kind} file of node "${nodeId}" is ${Math.ceil(bytes / MB)} MB; exports convert up to ${MAX_EXPORT_BYTES / MB} MB (read the file itself through /api/files)` });
  }
  return convertExport(kind, source, format, JSON.parse(run.document) as Workflow);
}
