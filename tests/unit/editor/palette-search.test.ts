import { describe, expect, it } from "vitest";
import { searchNodeTypes } from "@/app/editor/palette-search";

const nodes = [
  { type: "input.dataset", title: "Dataset", category: "Inputs", description: "Records to run, with a Routing Aggregate downstream." },
  { type: "model.moe-llm", title: "MoE-LLM", category: "Models", description: "Generates text and a routing trace." },
  { type: "inspect.routing", title: "Routing Inspector", category: "Inspectors", description: "Per-layer expert load." },
  { type: "inspect.routing-aggregate", title: "Routing Aggregate", category: "Inspectors", description: "Sums routing over records." },
];

describe("palette search: name matches first", () => {
  it("ranks title and type matches above description matches, keeping catalogue order among equals", () => {
    expect(searchNodeTypes(nodes, "routing").map((n) => n.title)).toEqual(["Routing Inspector", "Routing Aggregate", "Dataset", "MoE-LLM"]);
    expect(searchNodeTypes(nodes, "aggregate").map((n) => n.title)).toEqual(["Routing Aggregate", "Dataset"]);
    expect(searchNodeTypes(nodes, "routing insp").map((n) => n.title)).toEqual(["Routing Inspector", "Routing Aggregate"]); // the second: its category
    expect(searchNodeTypes(nodes, "").map((n) => n.title)).toEqual(nodes.map((n) => n.title));
    expect(searchNodeTypes(nodes, "nothing-like-it")).toEqual([]);
  });
});
