import { z } from "zod";
import { defineNode } from "../engine/node";
import { runScript, ScriptError } from "../engine/sandbox";
import "./params";

const EXAMPLE = `// Inputs a, b, c arrive as JSON values (numeric arrays as plain arrays).
// Return any JSON value: it becomes the "result" output.
const xs = Array.isArray(inputs.a) ? inputs.a : [1, 2, 3];
console.log("got", xs.length, "values");
return { doubled: xs.map((x) => x * 2), sum: xs.reduce((s, x) => s + x, 0) };
`;

/** The result as text: a string as it is, anything else as indented JSON. */
function asText(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

/** User JavaScript over small JSON values, run in the QuickJS sandbox (engine/sandbox) with time and memory limits. */
export const script = defineNode({
  type: "utility.script",
  typeVersion: 1,
  title: "Script",
  category: "Utility",
  description: "Runs your JavaScript on the inputs in a sandbox (no files, network or processes) and outputs what it returns.",
  inputs: {
    a: { type: "ANY", optional: true },
    b: { type: "ANY", optional: true },
    c: { type: "ANY", optional: true },
  },
  outputs: {
    result: { type: "JSON" },
    text: { type: "TEXT", label: "text" },
  },
  params: z.object({
    code: z
      .string()
      .max(200_000)
      .default(EXAMPLE)
      .meta({ widget: "textarea", language: "javascript", label: "Code", description: "The body of a function of `inputs`; return the result." }),
    timeoutMs: z.number().int().min(10).max(30_000).default(2000).meta({ label: "Time limit (ms)", step: 10 }),
    memoryMB: z.number().int().min(1).max(256).default(32).meta({ label: "Memory limit (MB)", step: 1 }),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(1).meta({ label: "Math.random seed" }),
  }),
  async execute({ inputs, params, ctx }) {
    try {
      const { outputs, logs } = await runScript({
        code: params.code,
        inputs,
        timeoutMs: params.timeoutMs,
        memoryBytes: params.memoryMB * 1024 * 1024,
        seed: params.seed,
        signal: ctx.signal,
      });
      for (const line of logs) ctx.log(line);
      return { result: outputs, text: asText(outputs) };
    } catch (err) {
      // What the script printed before it failed helps to find why.
      if (err instanceof ScriptError) for (const line of err.logs) ctx.log(line);
      throw err;
    }
  },
  summarize(outputs) {
    const json = JSON.stringify(outputs.result) ?? "null";
    return json.length > 80 ? `${json.slice(0, 79)}…` : json;
  },
});
