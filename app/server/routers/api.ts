/**
 * The HTTP API for scripts (docs/cli-and-api.md "HTTP API"): tRPC procedures that trpc-to-openapi also serves as
 * REST under /api/v1 and describes in /api/v1/openapi.json from these same zod schemas. Authenticated by
 * a personal API token (`Authorization: Bearer …`) or a session, scoped to that user. Run events (SSE)
 * and file downloads are plain routes beside them (app/api/v1/runs/…), described in the same document.
 */
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { listWorkflows, getWorkflow } from "../workflows";
import { applyOverrides, OverrideError, withDataset } from "../overrides";
import { ownedRun, refuseAtRunCap, runDetails, startRun } from "./run";
import { runManager } from "../runs";
import { protectedProcedure, router } from "../trpc";

const zId = z.string().min(1).max(64);
const TAGS = { runs: ["runs"], workflows: ["workflows"] };

export const zWorkflowSummary = z.object({ id: z.string(), name: z.string(), latestVersion: z.number().int(), updatedAt: z.string() });

export const zStartRunInput = z.object({
  workflowId: zId.describe("a saved workflow's id (GET /workflows lists them)"),
  version: z.number().int().min(1).optional().describe("the version to run (default: the latest)"),
  params: z
    .array(z.object({ nodeId: z.string().min(1), param: z.string().min(1), value: z.unknown() }))
    .max(200)
    .default([])
    .describe("param overrides, like `cli run --set nodeId.param=value`"),
  dataset: z.string().min(1).max(1000).optional().describe("a dataset for the workflow's Dataset node: a path inside <data dir>/datasets, or examples/…"),
  targetNodeId: zId.optional().describe("run only this node and its ancestors"),
});

export const zRunStatus = z.enum(["queued", "running", "finished", "failed", "cancelled", "interrupted"]);

export const zRunDetails = z.object({
  id: z.string(),
  workflowId: z.string().nullable(),
  workflowVersion: z.number().int().nullable(),
  status: z.string().describe(`one of ${zRunStatus.options.join(", ")}`),
  error: z.string().nullable(),
  executionProvider: z.string().nullable(),
  startRssBytes: z.number().nullable(),
  peakRssBytes: z.number().nullable(),
  peakDeviceBytes: z.number().nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  nodes: z.array(
    z.object({
      nodeId: z.string(),
      nodeType: z.string(),
      status: z.string(),
      cacheHit: z.boolean(),
      summary: z.string().nullable(),
      error: z.string().nullable(),
      durationMs: z.number().nullable(),
      outputs: z.record(z.string(), z.unknown()).nullable().describe("per output socket, a preview; files by id (GET /api/files/{id})"),
    }),
  ),
});

export const apiRouter = router({
  workflows: protectedProcedure
    .meta({ openapi: { method: "GET", path: "/workflows", protect: true, tags: TAGS.workflows, summary: "Your saved workflows" } })
    .input(z.object({}))
    .output(z.array(zWorkflowSummary))
    .query(async ({ ctx }) => (await listWorkflows({ ownerId: ctx.userId })).map((w) => ({ id: w.id, name: w.name, latestVersion: w.latestVersion, updatedAt: String(w.updatedAt) }))),

  startRun: protectedProcedure
    .meta({ openapi: { method: "POST", path: "/runs", protect: true, tags: TAGS.runs, summary: "Run a saved workflow (with param overrides and a dataset)", successDescription: "the run is queued; follow GET /runs/{runId}/events" } })
    .input(zStartRunInput)
    .output(z.object({ runId: z.string() }))
    .mutation(async ({ input, ctx }) => {
      await refuseAtRunCap(ctx.userId); // before reading the workflow: a refused start costs one count
      const saved = await getWorkflow(input.workflowId, input.version, ctx.userId);
      let document = saved.document;
      try {
        if (input.dataset !== undefined) document = withDataset(document, input.dataset);
        document = applyOverrides(document, input.params);
      } catch (err) {
        if (err instanceof OverrideError) throw new TRPCError({ code: "BAD_REQUEST", message: err.message });
        throw err;
      }
      return { runId: await startRun(ctx.userId, { document, workflowId: input.workflowId, workflowVersion: saved.version, targetNodeId: input.targetNodeId }) };
    }),

  run: protectedProcedure
    .meta({ openapi: { method: "GET", path: "/runs/{runId}", protect: true, tags: TAGS.runs, summary: "A run's status, every node's status and its outputs" } })
    .input(z.object({ runId: zId }))
    .output(zRunDetails)
    .query(async ({ input, ctx }) => {
      const { document: _document, ...details } = await runDetails(ctx.userId, input.runId);
      return details;
    }),

  cancelRun: protectedProcedure
    .meta({ openapi: { method: "POST", path: "/runs/{runId}/cancel", protect: true, tags: TAGS.runs, summary: "Cancel a queued or running run" } })
    .input(z.object({ runId: zId }))
    .output(z.object({ cancelled: z.boolean() }))
    .mutation(async ({ input, ctx }) => {
      await ownedRun(ctx.userId, input.runId);
      return { cancelled: await runManager().cancel(input.runId) };
    }),
});
