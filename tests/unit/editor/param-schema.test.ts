import { describe, expect, it } from "vitest";
import { z } from "zod";
import { nullableNumber } from "@/app/editor/param-schema";
import type { ParamSchema } from "@/app/editor/param-schema";
import { moeLlm } from "@/nodes/moe-llm";

/** The param form reads a nullable number (the MoE-LLM's routingTopP: null = the model's P) from the node's JSON Schema as the catalogue sends it. */
describe("param form: nullable numbers", () => {
  const props = (z.toJSONSchema(moeLlm.params, { io: "input", unrepresentable: "any" }) as { properties: Record<string, ParamSchema> }).properties;

  it("routingTopP: a number in (0, 1] whose slider starts one step above 0, default null, with its widget hints", () => {
    expect(nullableNumber(props.routingTopP!)).toEqual({
      type: "number",
      exclusiveMinimum: 0,
      minimum: 0.05,
      maximum: 1,
      default: null,
      widget: "routing-override",
      routingControl: "topP",
      label: "Routing Top-P override",
      step: 0.05,
      description: expect.stringContaining("the model's own P"),
    });
  });

  it("routingTopK: a whole number from 1, default null (the model's k), with its widget hints", () => {
    expect(nullableNumber(props.routingTopK!)).toMatchObject({
      type: "integer",
      minimum: 1,
      maximum: 1024,
      default: null,
      widget: "routing-override",
      routingControl: "topK",
      label: "Routing top-k override",
      description: expect.stringContaining("the model's own k"),
    });
  });

  it("other params are not nullable numbers", () => {
    expect(nullableNumber(props.temperature!)).toBeNull();
    expect(nullableNumber(props.topK!)).toBeNull();
    expect(nullableNumber({ anyOf: [{ type: "string" }, { type: "null" }] })).toBeNull();
    expect(nullableNumber({ anyOf: [{ type: "number", minimum: 1 }, { type: "null" }] })).toMatchObject({ type: "number", minimum: 1 });
  });
});
