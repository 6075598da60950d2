import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { loadWorkflow } from "@/engine/workflow/load";
import { WorkflowParseError } from "@/engine/workflow/migrate";
import { readImportedDocument } from "../document-guard";
import { EXAMPLES } from "@/app/examples";
import { storeSampleMedia } from "@/app/examples/media";
import { recordUploader } from "../access";
import { fileStorage } from "../storage";
import { catalogue } from "@/nodes";
import { protectedProcedure, publicProcedure, router } from "../trpc";
import * as workflows from "../workflows";

const zId = z.string().min(1).max(64);

export const workflowRouter = router({
  list: protectedProcedure
    .input(z.object({ search: z.string().max(200).optional(), trash: z.boolean().optional() }))
    .query(({ input, ctx }) => workflows.listWorkflows({ ...input, ownerId: ctx.userId })),
  get: protectedProcedure
    .input(z.object({ id: zId, version: z.number().int().positive().optional() }))
    .query(({ input, ctx }) => workflows.getWorkflow(input.id, input.version, ctx.userId)),
  versions: protectedProcedure.input(z.object({ id: zId })).query(({ input, ctx }) => workflows.listVersions(ctx.userId, input.id)),
  create: protectedProcedure
    .input(z.object({ name: z.string().min(1).max(200).optional(), document: z.unknown().optional(), message: z.string().max(500).optional() }))
    .mutation(({ input, ctx }) => workflows.createWorkflow({ ...input, ownerId: ctx.userId })),
  save: protectedProcedure
    .input(z.object({ id: zId, baseVersion: z.number().int().min(0), document: z.unknown(), message: z.string().max(500).optional() }))
    .mutation(({ input, ctx }) => workflows.saveWorkflow({ ...input, ownerId: ctx.userId })),
  rename: protectedProcedure.input(z.object({ id: zId, name: z.string().min(1).max(200) })).mutation(({ input, ctx }) => workflows.renameWorkflow(ctx.userId, input.id, input.name)),
  duplicate: protectedProcedure.input(z.object({ id: zId })).mutation(({ input, ctx }) => workflows.duplicateWorkflow(ctx.userId, input.id)),
  trash: protectedProcedure.input(z.object({ id: zId })).mutation(({ input, ctx }) => workflows.setTrashed(ctx.userId, input.id, true)),
  restore: protectedProcedure.input(z.object({ id: zId })).mutation(({ input, ctx }) => workflows.setTrashed(ctx.userId, input.id, false)),
  deleteForever: protectedProcedure.input(z.object({ id: zId })).mutation(({ input, ctx }) => workflows.deleteForever(ctx.userId, input.id)),
  examples: publicProcedure.query(() => EXAMPLES.map(({ id, title, description }) => ({ id, title, description }))),
  createFromExample: protectedProcedure.input(z.object({ exampleId: z.string().max(200) })).mutation(async ({ input, ctx }) => {
    const example = EXAMPLES.find((e) => e.id === input.exampleId);
    if (!example) throw new TRPCError({ code: "NOT_FOUND", message: `no example "${input.exampleId}"` });
    const document = structuredClone(example.document);
    if (example.sampleMedia?.length) {
      const media = await storeSampleMedia(fileStorage());
      // The sample media are handed to the user, as if uploaded.
      for (const id of Object.values(media)) await recordUploader(ctx.userId, id);
      for (const m of example.sampleMedia) {
        const n = document.nodes.find((x) => x.id === m.node);
        if (n) n.params = { ...n.params, [m.param]: media[m.media] };
      }
    }
    return workflows.createWorkflow({ document, ownerId: ctx.userId, message: `From the example "${example.title}"` });
  }),
  /** Reads any document (import, JSON view): migrates it and lists its problems; unreadable → a clear error. */
  check: protectedProcedure.input(z.object({ document: z.unknown() })).mutation(({ input }) => {
    const document = readImportedDocument(input.document);
    try {
      return loadWorkflow(document, catalogue);
    } catch (err) {
      if (err instanceof WorkflowParseError) throw new TRPCError({ code: "BAD_REQUEST", message: err.message });
      throw err;
    }
  }),
});
