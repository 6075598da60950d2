import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadWorkflow } from "@/engine/workflow/load";
import { parseAndMigrate, WorkflowParseError } from "@/engine/workflow/migrate";
import { CURRENT_SCHEMA_VERSION, emptyWorkflow, zWorkflow } from "@/engine/workflow/schema";
import { catalogue } from "@/nodes";

const fixture = (name: string) => readFileSync(path.join(__dirname, "../../fixtures/workflows", name), "utf8");

describe("workflow schema", () => {
  it("accepts a minimal document and fills defaults", () => {
    const doc = zWorkflow.parse({ schemaVersion: 2, name: "x", nodes: [], edges: [] });
    expect(doc.description).toBe("");
    expect(doc.tags).toEqual([]);
  });

  it("rejects bad ids, missing fields and non-finite positions", () => {
    const base = emptyWorkflow("x");
    expect(zWorkflow.safeParse({ ...base, nodes: [{ id: "has space", type: "t.x", typeVersion: 1, params: {}, position: { x: 0, y: 0 } }] }).success).toBe(false);
    expect(zWorkflow.safeParse({ ...base, name: "" }).success).toBe(false);
    expect(zWorkflow.safeParse({ ...base, nodes: [{ id: "a", type: "t.x", typeVersion: 1, params: {}, position: { x: Infinity, y: 0 } }] }).success).toBe(false);
    expect(zWorkflow.safeParse({ ...base, edges: [{ id: "e", source: "a", target: "b" }] }).success).toBe(false);
  });

  it("round-trips through JSON unchanged", () => {
    const doc = parseAndMigrate(fixture("v1-prototype.json"));
    expect(parseAndMigrate(JSON.stringify(doc))).toEqual(doc);
  });
});

describe("migrations", () => {
  it("upgrades the real schemaVersion 1 fixture to the current format", () => {
    const doc = parseAndMigrate(fixture("v1-prototype.json"));
    expect(doc.schemaVersion).toBe(CURRENT_SCHEMA_VERSION);
    expect(doc.name).toBe("Caption an image (prototype format)");
    expect(doc.nodes.map((n) => [n.id, n.type, n.typeVersion, n.position])).toEqual([
      ["prompt", "input.text", 1, { x: 0, y: 0 }],
      ["photo", "input.image", 1, { x: 0, y: 220 }],
      ["join", "text.template", 1, { x: 320, y: 0 }],
      ["show", "output.preview", 1, { x: 640, y: 0 }],
    ]);
    expect(doc.nodes[1]!.label).toBe("Photo");
    expect(doc.nodes[2]!.params).toEqual({ template: "{a} Be brief." });
    expect(doc.edges).toEqual([
      { id: "l1", source: "prompt", sourceSocket: "text", target: "join", targetSocket: "a" },
      { id: "e2", source: "join", sourceSocket: "text", target: "show", targetSocket: "value" },
    ]);
  });

  it("loads the migrated fixture with no problems (its image node has no file: a warning) and fills param defaults", () => {
    const { workflow, problems } = loadWorkflow(fixture("v1-prototype.json"), catalogue);
    expect(problems.map((p) => `${p.severity}:${p.code}:${p.nodeId}`)).toEqual(["warning:node-warning:photo"]);
    expect(workflow.nodes.find((n) => n.id === "show")!.params).toEqual({});
  });

  it("does not modify the caller's object", () => {
    const input = JSON.parse(fixture("v1-prototype.json"));
    const copy = structuredClone(input);
    parseAndMigrate(input);
    expect(input).toEqual(copy);
  });

  it.each([
    ["not JSON", "{ nope", /not valid JSON/],
    ["an array", "[]", /must be a JSON object/],
    ["no version", "{}", /schemaVersion/],
    ["a future version", JSON.stringify({ schemaVersion: 99 }), /newer than this MoE Studio/],
    ["a broken v1 edge", JSON.stringify({ schemaVersion: 1, title: "t", nodes: [], edges: [{ from: "a", to: "b:x" }] }), /nodeId:socket/],
    ["a v2 with wrong shapes", JSON.stringify({ schemaVersion: 2, name: "t", nodes: "x", edges: [] }), /nodes/],
  ])("rejects %s with a clear message", (_what, text, message) => {
    expect(() => parseAndMigrate(text)).toThrow(WorkflowParseError);
    expect(() => parseAndMigrate(text)).toThrow(message);
  });
});
