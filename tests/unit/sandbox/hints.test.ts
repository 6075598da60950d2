import { describe, expect, it } from "vitest";
import { z } from "zod";
import { inputsDeclaration, typeFromPreview, typeFromSocket } from "@/engine/sandbox/hints";
import { script } from "@/nodes/script";
import { describeValue } from "@/nodes/preview";

describe("type hints for a script's inputs", () => {
  it("reads types from the previews of real values", () => {
    expect(typeFromPreview(describeValue("hi"))).toBe("string");
    expect(typeFromPreview(describeValue(3))).toBe("number");
    expect(typeFromPreview(describeValue([1, 2, 3]))).toBe("number[]");
    expect(typeFromPreview(describeValue([1, "x"]))).toBe("(number | string)[]");
    expect(typeFromPreview(describeValue(new Float32Array(4)))).toBe("number[]");
    expect(typeFromPreview(describeValue({ sum: 1, "odd key": 2 }))).toBe('{ sum: any; "odd key": any; }');
    expect(typeFromPreview(describeValue(null))).toBe("null");
    expect(typeFromPreview(describeValue({ kind: "image", file: "a.png", mime: "image/png", width: 1, height: 1 }))).toBeUndefined();
  });

  it("falls back to the socket type, and marks unconnected inputs", () => {
    expect(typeFromSocket("TEXT")).toBe("string");
    expect(typeFromSocket("ROUTING_TRACE")).toBe("any");
    const d = inputsDeclaration([
      { socket: "a", sourceType: "TEXT", source: "t1.text" },
      { socket: "b", sourceType: "JSON", source: "s1.result", preview: describeValue([1, 2]) },
      { socket: "c" },
    ]);
    expect(d).toContain("declare const inputs: {");
    expect(d).toMatch(/\/\*\* TEXT from t1\.text \*\/\n {2}a: string;/);
    expect(d).toMatch(/b: number\[\];/);
    expect(d).toMatch(/c: undefined;/);
    expect(d).toContain("declare const console");
  });

  it("the Script node's code param is marked as JavaScript for the editor", () => {
    const schema = z.toJSONSchema(script.params, { io: "input", unrepresentable: "any" }) as { properties: Record<string, Record<string, unknown>> };
    expect(schema.properties.code).toMatchObject({ widget: "textarea", language: "javascript", type: "string" });
    expect(schema.properties.timeoutMs).toMatchObject({ default: 2000, maximum: 30000 });
    expect(schema.properties.memoryMB).toMatchObject({ default: 32, maximum: 256 });
  });
});
