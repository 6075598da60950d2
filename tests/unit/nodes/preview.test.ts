import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storeUpload } from "../../../engine/uploads";
import { imageInput } from "../../../nodes/image-input";
import { describeValue, preview } from "../../../nodes/preview";
import { makeImage } from "../../fixtures/media/make";
import { makeCtx } from "./ctx";

let env: Awaited<ReturnType<typeof makeCtx>>;
beforeAll(async () => (env = await makeCtx()));
afterAll(() => env.dispose());

const show = (value: unknown) => preview.execute({ inputs: { value }, params: preview.params.parse({}), ctx: env.ctx });

describe("output.preview", () => {
  it("describes text", async () => {
    const out = await show("Hello, experts.");
    expect(out.summary).toEqual({ type: "text", headline: 'text, 15 chars: "Hello, experts."', text: "Hello, experts.", length: 15 });
    expect(preview.summarize!(out)).toBe('text, 15 chars: "Hello, experts."');
  });
  it("describes an image from the image input, keeping the file id for display", async () => {
    const up = await storeUpload(env.storage, await makeImage("png", 32, 16), { filename: "a.png" });
    const { image } = await imageInput.execute({ inputs: {}, params: { file: up.id }, ctx: env.ctx });
    const out = await show(image);
    expect(out.summary).toEqual({ type: "image", headline: "image 32×16", file: up.id, mime: "image/png", width: 32, height: 16 });
  });
  it("describes numbers, nothing, lists, typed arrays and other objects briefly", () => {
    expect(describeValue(3.5)).toMatchObject({ type: "number", value: 3.5 });
    expect(describeValue(undefined)).toMatchObject({ type: "null" });
    expect(describeValue([1, "a", 3, 4, 5, 6, 7])).toMatchObject({ type: "array", length: 7, headline: "list of 7" });
    expect((describeValue([1, 2, 3, 4, 5, 6, 7]).items as unknown[]).length).toBe(5);
    expect(describeValue(Float32Array.from([0.5, -2, 3]))).toMatchObject({ type: "typed-array", dtype: "float32", length: 3, min: -2, max: 3 });
    expect(describeValue({ kind: "routing-trace", layers: [] })).toMatchObject({ type: "object", kind: "routing-trace", keys: ["kind", "layers"] });
    const long = describeValue("x".repeat(10_000));
    expect(long.length).toBe(10_000);
    expect((long.text as string).length).toBe(2000);
  });
  it("survives cyclic and deeply nested values, and its summary is JSON", () => {
    const a: Record<string, unknown> = { name: "a" };
    a.self = a;
    const nested = [[[[[a]]]]];
    expect(() => JSON.stringify(describeValue(nested))).not.toThrow();
    expect(() => JSON.stringify(describeValue(a))).not.toThrow();
  });
});
