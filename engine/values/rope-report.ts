import { z } from "zod";
import { defineValueKind } from "./kind";

/** What the RoPE Inspector outputs: its report file (nodes/rope-inspector.ts RopeReportFile) and the figures of its summary. */
export interface RopeReport {
  kind: "rope-report";
  file: string;
  tokens: number;
  mode: string;
  compareMode: string | null;
}

export const ropeReport = defineValueKind<RopeReport>({
  name: "rope-report",
  noun: "a RoPE report",
  tag: "rope-report",
  schema: z.object({ kind: z.literal("rope-report"), file: z.string(), tokens: z.number(), mode: z.string(), compareMode: z.string().nullable() }),
  describe: (o) => ({ type: "rope-report", headline: `3D positions of ${o.tokens} tokens`, file: o.file }),
});
