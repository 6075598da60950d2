import { describe, expect, it } from "vitest";
import { applyOverrides, parseSet } from "@/app/server/overrides";
import { emptyWorkflow, type Workflow } from "@/engine/workflow/schema";

const doc: Workflow = {
  ...emptyWorkflow("overrides"),
  nodes: [
    { id: "prompt", type: "input.text", typeVersion: 1, params: { text: "hello" }, position: { x: 0, y: 0 } },
    { id: "llm", type: "model.moe-llm", typeVersion: 1, params: {}, position: { x: 300, y: 0 } },
  ],
};

describe("--set node.param=value", () => {
  it("a value is JSON where the param takes it, else the text as typed (a prompt of 42, true or null)", () => {
    const set = (...s: string[]) => applyOverrides(doc, s.map(parseSet));
    expect(set("prompt.text=42", "llm.maxNewTokens=5").nodes.map((n) => n.params)).toEqual([{ text: "42" }, { maxNewTokens: 5 }]);
    expect(set("prompt.text=true").nodes[0]!.params.text).toBe("true");
    expect(set("prompt.text=null").nodes[0]!.params.text).toBe("null");
    expect(set('prompt.text="quoted"').nodes[0]!.params.text).toBe("quoted");
    expect(set("prompt.text=plain words").nodes[0]!.params.text).toBe("plain words");
    // a number param given text stays what was asked, for the run's validation to name
    expect(set("llm.maxNewTokens=lots").nodes[1]!.params.maxNewTokens).toBe("lots");
  });

  it("a model of another kind is named with what its config lacks, in one line (it printed zod's JSON)", async () => {
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const dir = mkdtempSync(`${(await import("node:os")).tmpdir()}/not-an-llm-`);
    writeFileSync(`${dir}/config.json`, JSON.stringify({ model_type: "tts", hidden_size: 64 }));
    const { openModelDir } = await import("@/models/moe-llm/moe-llm-model");
    expect(() => openModelDir(dir, "some/tts")).toThrow(/^model "some\/tts": config\.json is not a valid MoE-LLM config \([a-z_]+: [^\n]*\)$/);
  });
});
