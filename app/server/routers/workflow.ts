import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { loadWorkflow } from "@/engine/workflow/load";
import { WorkflowParseError } from "@/engine/workflow/migrate";
import { EXAMPLES } from "@/app/examples";
import { storeSampleMedia } from "@/app/examples/media";
import { fileStorage } from "../storage";
import { catalogue } from "@/nodes";
import { publicProcedure, router } from "../trpc";
import * as workflows from "../workflows";

const zId = z.string().min(1).max(64);

export const workflowRouter = router({
  list: publicProcedure
    .input(z.object({ search: z.string().max(200).optional(), trash: z.boolean().optional() }))
    .query(({ input }) => workflows.listWorkflows(input)),
  get: publicProcedure.input(z.object({ id: zId, version: z.number().int().positive().optional() })).query(({ input }) => workflows.getWorkflow(input.id, input.version)),
  versions: publicProcedure.input(z.object({ id: zId })).query(({ input }) => workflows.listVersions(input.id)),
  create: publicProcedure
    .input(z.object({ name: z.string().min(1).max(200).optional(), document: z.unknown().optional(), message: z.string().max(500).optional() }))
    .mutation(({ input }) => workflows.createWorkflow(input)),
  save: publicProcedure
    .input(z.object({ id: zId, baseVersion: z.number().int().min(0), document: z.unknown(), message: z.string().max(500).optional() }))
    .mutation(({ input }) => workflows.saveWorkflow(input)),
  rename: publicProcedure.input(z.object({ id: zId, name: z.string().min(1).max(200) })).mutation(({ input }) => workflows.renameWorkflow(input.id, input.name)),
  duplicate: publicProcedure.input(z.object({ id: zId })).mutation(({ input }) => workflows.duplicateWorkflow(input.id)),
  trash: publicProcedure.input(z.object({ id: zId })).mutation(({ input }) => workflows.setTrashed(input.id, true)),
  restore: publicProcedure.input(z.object({ id: zId })).mutation(({ input }) => workflows.setTrashed(input.id, false)),
  deleteForever: publicProcedure.input(z.object({ id: zId })).mutation(({ input }) => workflows.deleteForever(input.id)),
  examples: publicProcedure.query(() => EXAMPLES.map(({ id, title, description }) => ({ id, title, description }))),
  createFromExample: publicProcedure.input(z.object({ exampleId: z.string() })).mutation(async ({ input }) => {
    const example = EXAMPLES.find((e) => e.id === input.exampleId);
    if (!example) throw new TRPCError({ code: "NOT_FOUND", message: `no example "${input.exampleId}"` });
    const document = structuredClone(example.document);
    if (example.sampleMedia?.length) {
      const media = await storeSampleMedia(fileStorage());
      for (const m of example.sampleMedia) {
        const n = document.nodes.find((x) => x.id === m.node);
        if (n) n.params = { ...n.params, [m.param]: media[m.media] };
      }
    }
    return workflows.createWorkflow({ document, message: `From the example "${example.title}"` });
  }),
  /** Reads any document (import, JSON view): migrates it and lists its problems; unreadable → a clear error. */
  check: publicProcedure.input(z.object({ document: z.unknown() })).mutation(({ input }) => {
    try {
      return loadWorkflow(input.document, catalogue);
    } catch (err) {
      if (err instanceof WorkflowParseError) throw new TRPCError({ code: "BAD_REQUEST", message: err.message });
      throw err;
    }
  }),
});
