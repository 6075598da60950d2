import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { ProvenanceError, readWorkflowFromMedia, sniffMedia } from "@/engine/provenance";
import { loadWorkflow } from "@/engine/workflow/load";
import { WorkflowParseError } from "@/engine/workflow/migrate";
import { catalogue } from "@/nodes";
import { checkPlainJson } from "../document-guard";
import { protectedProcedure, router } from "../trpc";

/** ~60 MB of file as base64 (4 characters per 3 bytes), plus room for a data: URL prefix. */
const MAX_BASE64 = 80_000_128;

/** Strips an optional `data:<mime>;base64,` prefix and whitespace; rejects anything that is not base64. */
function decodeBase64(text: string): Uint8Array {
  const body = text.replace(/^data:[^,]{0,200};base64,/, "").replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 === 1) {
    throw new TRPCError({ code: "BAD_REQUEST", message: "the file is not valid base64" });
  }
  return new Uint8Array(Buffer.from(body, "base64"));
}

export const provenanceRouter = router({
  /** Reads the workflow embedded in a PNG or WAV made by MoE Studio: migrated, params upgraded, problems listed. */
  fromMedia: protectedProcedure.input(z.object({ base64: z.string().min(1).max(MAX_BASE64) })).mutation(({ input }) => {
    const bytes = decodeBase64(input.base64);
    const kind = sniffMedia(bytes);
    if (!kind) throw new TRPCError({ code: "BAD_REQUEST", message: "not a PNG or WAV file" });
    let doc: unknown;
    try {
      doc = readWorkflowFromMedia(bytes);
    } catch (err) {
      if (err instanceof ProvenanceError) throw new TRPCError({ code: "BAD_REQUEST", message: err.message });
      throw err;
    }
    if (doc === null) throw new TRPCError({ code: "BAD_REQUEST", message: `this ${kind.toUpperCase()} carries no MoE Studio workflow` });
    checkPlainJson(doc, "the embedded workflow");
    try {
      const { workflow, problems } = loadWorkflow(doc, catalogue);
      return { document: workflow, problems };
    } catch (err) {
      if (err instanceof WorkflowParseError) throw new TRPCError({ code: "BAD_REQUEST", message: `the embedded workflow cannot be read: ${err.message}` });
      throw err;
    }
  }),
});
