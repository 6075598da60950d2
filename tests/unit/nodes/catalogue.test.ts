import { z } from "zod";
import { describe, expect, it } from "vitest";
import { defaultParams, NodeCatalogue } from "../../../engine/node";
import { allNodes, catalogue } from "../../../nodes";

describe("node catalogue", () => {
  it("lists the first nodes, each once", () => {
    const types = allNodes.map((d) => d.type);
    expect(new Set(types).size).toBe(types.length);
    expect(types).toEqual(expect.arrayContaining(["input.audio", "input.image", "input.text", "input.video", "output.preview", "text.template"]));
    expect(catalogue.list()).toHaveLength(allNodes.length);
    expect(() => new NodeCatalogue([...allNodes, allNodes[0]!])).toThrow(/registered twice/);
  });

  it("every node's params parse from {} and every node can summarize", () => {
    for (const def of allNodes) {
      expect(() => def.params.parse({}), def.type).not.toThrow();
      expect(defaultParams(def)).toEqual(def.params.parse({}));
      expect(typeof def.summarize, def.type).toBe("function");
    }
  });

  it("param widget meta reaches the JSON Schema the editor reads", () => {
    const schema = (type: string) => z.toJSONSchema(catalogue.get(type)!.params, { io: "input" }) as { properties: Record<string, Record<string, unknown>> };
    expect(schema("input.text").properties.text).toMatchObject({ widget: "textarea", default: "" });
    expect(schema("input.image").properties.file).toMatchObject({ widget: "file", accept: "image/*" });
    expect(schema("input.audio").properties.file).toMatchObject({ widget: "file", accept: "audio/*" });
    expect(schema("input.video").properties.file).toMatchObject({ widget: "file", accept: "video/*" });
  });
});
