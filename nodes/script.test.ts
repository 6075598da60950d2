import { afterEach, describe, expect, it } from "vitest";
import { makeCtx } from "../tests/unit/nodes/ctx";
import { ScriptTimeoutError } from "../engine/sandbox";
import { script } from "./script";

let dispose: (() => Promise<void>) | undefined;
afterEach(async () => {
  await dispose?.();
  dispose = undefined;
});

async function setup() {
  const c = await makeCtx();
  dispose = c.dispose;
  return c;
}

describe("Script node", () => {
  it("the default example runs and shows what it does", async () => {
    const { ctx, logs } = await setup();
    const params = script.params.parse({});
    const out = await script.execute({ inputs: { a: [1, 2, 3] }, params, ctx });
    expect(out.result).toEqual({ doubled: [2, 4, 6], sum: 6 });
    expect(logs).toEqual(["got 3 values"]);
    expect(script.summarize!(out)).toBe('{"doubled":[2,4,6],"sum":6}');
  });

  it("outputs the result as JSON and as text (strings as they are)", async () => {
    const { ctx } = await setup();
    const run = (code: string, inputs: Record<string, unknown> = {}) => script.execute({ inputs, params: script.params.parse({ code }), ctx });
    expect(await run("return inputs.a + '!'", { a: "hi" })).toEqual({ result: "hi!", text: "hi!" });
    expect(await run("return { n: inputs.b * inputs.c }", { b: 6, c: 7 })).toEqual({ result: { n: 42 }, text: '{\n  "n": 42\n}' });
  });

  it("its limits come from the params, and the logs of a failed script still reach the run log", async () => {
    const { ctx, logs } = await setup();
    const params = script.params.parse({ code: "console.log('before the loop'); for (;;) {}", timeoutMs: 200 });
    await expect(script.execute({ inputs: {}, params, ctx })).rejects.toBeInstanceOf(ScriptTimeoutError);
    expect(logs).toEqual(["before the loop"]);
    expect(() => script.params.parse({ timeoutMs: 60_000 })).toThrow();
    expect(() => script.params.parse({ memoryMB: 1024 })).toThrow();
  });
});
