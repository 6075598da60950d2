import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineNode, NodeCatalogue, type AnyNodeDefinition } from "@/engine/node";
import { SOCKET_TYPE_NAMES, SOCKET_TYPES, socketsCompatible } from "@/engine/sockets";
import { allNodes, catalogue } from "@/nodes";

const base = {
  type: "t.ok",
  typeVersion: 1,
  title: "Ok",
  category: "Utility" as const,
  description: "",
  inputs: {},
  outputs: {},
  params: z.object({}),
  execute: async () => ({}),
};

describe("defineNode", () => {
  it("refuses malformed definitions at registration", () => {
    expect(() => defineNode({ ...base, type: "NoDot" })).toThrow(/category\.name/);
    expect(() => defineNode({ ...base, typeVersion: 0 })).toThrow(/typeVersion/);
    expect(() => defineNode({ ...base, inputs: { x: { type: "BOGUS" as "TEXT" } } })).toThrow(/unknown type "BOGUS"/);
    expect(() => defineNode({ ...base, outputs: { x: { type: "ANY" } } })).toThrow(/cannot be ANY/);
    expect(() => defineNode({ ...base, params: z.object({ n: z.number() }) })).toThrow(/default/);
    expect(() => defineNode({ ...base, execute: undefined as unknown as typeof base.execute })).toThrow(/execute/);
  });

  it("a catalogue refuses duplicate types", () => {
    const a = defineNode(base) as AnyNodeDefinition;
    expect(() => new NodeCatalogue([a, a])).toThrow(/registered twice/);
  });
});

describe("the shipped catalogue", () => {
  it("has unique types, valid sockets and params that all parse from defaults", () => {
    expect(new Set(allNodes.map((n) => n.type)).size).toBe(allNodes.length);
    for (const def of catalogue.list()) {
      expect(def.params.safeParse({}).success, def.type).toBe(true);
      for (const spec of [...Object.values(def.inputs), ...Object.values(def.outputs)]) expect(SOCKET_TYPE_NAMES).toContain(spec.type);
      expect(z.toJSONSchema(def.params, { io: "input", unrepresentable: "any" })).toHaveProperty("type", "object");
    }
    for (const t of ["input.text", "input.image", "input.audio", "input.video", "output.preview", "text.template"]) expect(catalogue.get(t), t).toBeDefined();
  });

  it("every socket type has a colour; compatibility is what DESIGN.md says", () => {
    for (const name of SOCKET_TYPE_NAMES) expect(SOCKET_TYPES[name].color).toMatch(/^#[0-9a-f]{6}$/);
    expect(socketsCompatible("TEXT", "TEXT")).toBe(true);
    expect(socketsCompatible("IMAGE", "TEXT")).toBe(false);
    expect(socketsCompatible("GENERATED_IMAGE", "IMAGE")).toBe(true);
    expect(socketsCompatible("IMAGE", "GENERATED_IMAGE")).toBe(false);
    expect(socketsCompatible("SPEECH", "AUDIO")).toBe(true);
    expect(socketsCompatible("ROUTING_TRACE", "ANY")).toBe(true);
    expect(socketsCompatible("ANY", "TEXT")).toBe(false);
  });
});
