import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { previewOutputs } from "@/app/server/runs";
import { Executor } from "@/engine/executor";
import { NodeCatalogue } from "@/engine/node";
import { CURRENT_SCHEMA_VERSION } from "@/engine/workflow/schema";
import { textInput } from "@/nodes/text-input";
import { textStatsNode } from "@/nodes/text-stats";
import { makeCtx } from "./ctx";

let env: Awaited<ReturnType<typeof makeCtx>>;
beforeAll(async () => (env = await makeCtx()));
afterAll(() => env.dispose());

describe("text.stats (ARCHITECTURE.md's worked example: a value kind, a node and a view)", () => {
  const run = (text: unknown) => textStatsNode.execute({ inputs: { text }, params: {}, ctx: env.ctx });
  it("counts words, characters and lines", async () => {
    expect(await run("  two  words\nhé")).toEqual({ stats: { kind: "text-stats", words: 3, chars: 15, lines: 2 } });
  });
  it("refuses what is not text, naming the input", async () => {
    await expect(run(42)).rejects.toThrow("input text is not text: connect text (TEXT)");
  });
  it("previews by its kind, for the view of type text-stats", async () => {
    const outputs = await run("a b");
    expect(previewOutputs(outputs, textStatsNode.outputs)).toEqual({ stats: { type: "text-stats", headline: "2 words · 3 chars · 1 lines", words: 2, chars: 3, lines: 1 } });
  });
  it("runs in a workflow; a wrong output is stopped where it leaves the node, naming node and socket", async () => {
    const bad = { ...textStatsNode, type: "text.stats-bad", execute: async () => ({ stats: { kind: "text-stats", words: -1, chars: 0, lines: 0 } }) };
    const executor = new Executor({ catalogue: new NodeCatalogue([textInput, textStatsNode, bad]), storage: env.storage });
    const nodes = [
      { id: "t", type: "input.text", typeVersion: 1, params: { text: "one two" }, position: { x: 0, y: 0 } },
      { id: "s", type: "text.stats", typeVersion: 1, params: {}, position: { x: 200, y: 0 } },
      { id: "b", type: "text.stats-bad", typeVersion: 1, params: {}, position: { x: 200, y: 100 } },
    ];
    const edges = [
      { id: "e1", source: "t", sourceSocket: "text", target: "s", targetSocket: "text" },
      { id: "e2", source: "t", sourceSocket: "text", target: "b", targetSocket: "text" },
    ];
    const r = await executor.run({ schemaVersion: CURRENT_SCHEMA_VERSION, name: "stats", description: "", tags: [], nodes, edges, notes: [] }, { runId: "r1" });
    expect(r.outputs.get("s")).toEqual({ stats: { kind: "text-stats", words: 2, chars: 7, lines: 1 } });
    expect(r.nodes.get("b")?.error).toMatch(/^Node "b" \(text.stats-bad\): output "stats" is not text statistics \(text-stats\): words: /);
  });
});
