import { z } from "zod";

/**
 * FROZEN: schemaVersion 1, the prototype format (before tags and notes; edges named their ends
 * `from`/`to` as "nodeId:socket" strings; nodes kept params under `data` and version under `version`).
 * Never edit this file: documents saved in this format must keep loading.
 */
export const zWorkflowV1 = z.object({
  schemaVersion: z.literal(1),
  title: z.string(),
  description: z.string().optional(),
  nodes: z.array(
    z.object({
      id: z.string(),
      type: z.string(),
      version: z.number().int().optional(),
      data: z.record(z.string(), z.unknown()).optional(),
      x: z.number(),
      y: z.number(),
      label: z.string().optional(),
    }),
  ),
  edges: z.array(z.object({ id: z.string().optional(), from: z.string(), to: z.string() })),
});

export type WorkflowV1 = z.infer<typeof zWorkflowV1>;
