import { describe, expect, it } from "vitest";
import {
  runScript,
  ScriptCancelledError,
  ScriptError,
  ScriptInputError,
  ScriptMemoryError,
  ScriptOutputError,
  ScriptRuntimeError,
  ScriptStackOverflowError,
  ScriptSyntaxError,
  ScriptTimeoutError,
} from "@/engine/sandbox";

/** Runs a script that must fail and returns its error. */
async function failure(code: string, opts: Partial<Parameters<typeof runScript>[0]> = {}): Promise<ScriptError> {
  try {
    const r = await runScript({ code, ...opts });
    throw new Error(`expected the script to fail, it returned ${JSON.stringify(r.outputs)}`);
  } catch (err) {
    if (!(err instanceof ScriptError)) throw err;
    return err;
  }
}

const run = async (code: string, inputs?: Record<string, unknown>) => (await runScript({ code, inputs })).outputs;

describe("results of ordinary scripts", () => {
  it("returns numbers, arrays and nested objects as JSON", async () => {
    expect(await run("return 1 + 2")).toBe(3);
    expect(await run("return inputs.a.map((x) => x * 2)", { a: [1, 2, 3] })).toEqual([2, 4, 6]);
    expect(await run("return { n: inputs.n, deep: { list: [1, 'two', null, true], s: 'x' } }", { n: 7 })).toEqual({ n: 7, deep: { list: [1, "two", null, true], s: "x" } });
    expect(await run("return")).toBeNull(); // undefined leaves as null
    expect(await run("return inputs.missing === undefined")).toBe(true); // unconnected input
  });

  it("passes typed arrays in as plain arrays and numbers survive the round trip", async () => {
    const a = new Float32Array([0.5, -1.25, 3]);
    const b = Int32Array.from([7, -8]);
    expect(await run("return [Array.isArray(inputs.a), inputs.a, inputs.b.reduce((s, x) => s + x, 0)]", { a, b })).toEqual([true, [0.5, -1.25, 3], -1]);
  });

  it("agrees with the host on a seeded random computation", async () => {
    // An independent reference: the same statistics computed in the host.
    let s = 12345;
    const xs = Array.from({ length: 500 }, () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 10 - 5);
    const out = (await run("const xs = inputs.xs; const mean = xs.reduce((a, x) => a + x, 0) / xs.length; return { mean, max: Math.max(...xs), sorted: [...xs].sort((p, q) => p - q).slice(0, 3) }", { xs })) as {
      mean: number;
      max: number;
      sorted: number[];
    };
    const mean = xs.reduce((a, x) => a + x, 0) / xs.length;
    expect(Math.abs(out.mean - mean)).toBeLessThan(1e-12);
    expect(out.max).toBe(Math.max(...xs));
    expect(out.sorted).toEqual([...xs].sort((p, q) => p - q).slice(0, 3));
  });

  it("copies console output into the logs and settles async scripts", async () => {
    const r = await runScript({ code: "console.log('n =', inputs.n, { k: [1] }); console.warn('careful'); return (async () => inputs.n * 2)()", inputs: { n: 21 } });
    expect(r.outputs).toBe(42);
    expect(r.logs).toEqual(['n = 21 {"k":[1]}', "warn: careful"]);
  });

  it("seeds Math.random: same seed, same numbers; another seed, others", async () => {
    const code = "return [Math.random(), Math.random()]";
    const a = await runScript({ code, seed: 5 });
    const b = await runScript({ code, seed: 5 });
    const c = await runScript({ code, seed: 6 });
    expect(a.outputs).toEqual(b.outputs);
    expect(a.outputs).not.toEqual(c.outputs);
  });
});

describe("sandbox escapes fail", () => {
  it("has no require, process, fetch, module loading or timers", async () => {
    expect(await run("return [typeof require, typeof process, typeof fetch, typeof module, typeof setTimeout, typeof XMLHttpRequest, typeof WebAssembly]")).toEqual(
      Array(7).fill("undefined"),
    );
    const req = await failure("return require('fs')");
    expect(req).toBeInstanceOf(ScriptRuntimeError);
    expect(req.message).toMatch(/ReferenceError: '?require'? is not defined/);
    expect((await failure("return process.env")).message).toMatch(/ReferenceError: '?process'? is not defined/);
    expect((await failure("return fetch('http://127.0.0.1/')")).message).toMatch(/ReferenceError: '?fetch'? is not defined/);
  });

  it("import() cannot load anything", async () => {
    const e = await failure("return import('node:fs').then((fs) => fs.readFileSync('/etc/passwd', 'utf8'))");
    expect(e).toBeInstanceOf(ScriptRuntimeError);
    expect(e.message).toMatch(/could not load module/);
    for (const name of ["/work/main/package.json", "std", "os", "qjs:os"]) {
      expect((await failure(`return import(${JSON.stringify(name)})`)).message).toMatch(/could not load module/);
    }
    expect((await failure("import fs from 'fs'; return fs")).kind).toBe("syntax"); // a function body: no static imports
  });

  it("constructor tricks reach only the sandbox's own global", async () => {
    const probe = "['process', 'require', 'global', 'Buffer', 'fetch'].map((k) => typeof g[k])";
    expect(await run(`const g = globalThis.constructor.constructor('return this')(); return ${probe}`)).toEqual(Array(5).fill("undefined"));
    expect(await run(`const g = Function('return this')(); return ${probe}`)).toEqual(Array(5).fill("undefined"));
    expect(await run(`const g = (() => {}).constructor('return this')(); return ${probe}`)).toEqual(Array(5).fill("undefined"));
    // The escape attempt people copy from Node's vm module:
    const e = await failure("return this.constructor.constructor('return process')().mainModule.require('child_process')");
    expect(e).toBeInstanceOf(ScriptRuntimeError);
    // The console function is the only host function, and it leads nowhere.
    expect(await run("const g = console.log.constructor('return this')(); return typeof g.process")).toBe("undefined");
  });

  it("prototype pollution inside stays inside, and does not survive to the next script", async () => {
    await run("Object.prototype.polluted = 'yes'; Array.prototype.map = () => 'hijacked'; JSON.stringify = () => '\"hijacked\"'; return 1");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect([1, 2].map((x) => x + 1)).toEqual([2, 3]);
    // A fresh runtime each time: nothing of the last script is left.
    expect(await run("return [({}).polluted, [1].map((x) => x + 1)]")).toEqual([null, [2]]);
  });

  it("a script that overwrites JSON.stringify cannot fake its result", async () => {
    expect(await run("JSON.stringify = () => 'not json'; return { ok: 1 }")).toEqual({ ok: 1 });
  });

  it("__proto__ in the returned JSON does not become a prototype on the host", async () => {
    const out = (await run("const o = JSON.parse('{\"__proto__\": {\"polluted\": true}, \"a\": {\"__proto__\": {\"x\": 1}}}'); return o")) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.keys(out)).toEqual(["a"]);
    expect((out as { polluted?: unknown }).polluted).toBeUndefined();
    const merged = Object.assign({}, out, out.a as object);
    expect((merged as { x?: unknown }).x).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("limits", () => {
  it("an endless loop times out in bounded time, and the next run works", async () => {
    const t0 = performance.now();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const e = await failure("while (true) {}", { timeoutMs: 300 });
    clearInterval(timer);
    const ms = performance.now() - t0;
    expect(ticks).toBeGreaterThan(5); // the host's event loop kept turning: the loop runs in a worker
    expect(e).toBeInstanceOf(ScriptTimeoutError);
    expect(e.message).toContain("300 ms");
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(2000 + 300); // the interrupt, not the watchdog (timeout + 2 s) ended it
    expect(await run("return 'still works'")).toBe("still works");
  });

  it("a loop that allocates as it spins is stopped by time or memory, never runs on", async () => {
    const e = await failure("const a = []; for (;;) a.push({ i: a.length })", { timeoutMs: 500, memoryBytes: 8 * 1024 * 1024 });
    expect(e instanceof ScriptTimeoutError || e instanceof ScriptMemoryError).toBe(true);
  });

  it("a memory bomb ends with a memory error, and the next run works", async () => {
    for (const code of [
      "const a = []; while (true) a.push(new Float64Array(1e5))", // many allocations below the limit each
      "const a = []; for (let i = 0; ; i++) a.push('x'.repeat(1e5) + i)", // strings
      "return new Array(1e8).fill(0)", // one huge array
      "const a = []; while (true) a.push(new Array(1e5).fill(1))",
    ]) {
      const e = await failure(code, { timeoutMs: 10_000, memoryBytes: 16 * 1024 * 1024 });
      expect(e, code).toBeInstanceOf(ScriptMemoryError);
      expect(e.message).toContain("16 MB");
    }
    expect(await run("return [1, 2, 3].length")).toBe(3);
  });

  it("the memory limit follows the param: 24 MB fits under 64 MB but not under 8 MB", async () => {
    const code = "const a = []; for (let i = 0; i < 30; i++) a.push(new Float64Array(1e5)); return a.length"; // 24 MB
    expect((await runScript({ code, memoryBytes: 64 * 1024 * 1024 })).outputs).toBe(30);
    expect(await failure(code, { memoryBytes: 8 * 1024 * 1024 })).toBeInstanceOf(ScriptMemoryError);
  });

  it("deep recursion is a stack error, with its line", async () => {
    const e = await failure("const f = (n) => f(n + 1) + 1;\nreturn f(0)");
    expect(e).toBeInstanceOf(ScriptStackOverflowError);
    expect((e as ScriptStackOverflowError).line).toBe(1);
    expect(await run("const f = (n) => (n === 0 ? 0 : 1 + f(n - 1)); return f(1000)")).toBe(1000); // ordinary recursion is fine
  });

  it("work inside built-ins is bounded too: deep nesting, catastrophic regex backtracking", async () => {
    // QuickJS's JSON.stringify checks for cycles along the path (quadratic in depth) without polling
    // the interrupt handler: the host's watchdog (time limit + 2 s) kills that worker. Either way it stops.
    const t0 = performance.now();
    const nested = await failure("let a = []; for (let i = 0; i < 1e5; i++) a = [a]; return a", { timeoutMs: 1000 });
    expect(["ScriptStackOverflowError", "ScriptTimeoutError"]).toContain(nested.constructor.name);
    expect(performance.now() - t0).toBeLessThan(1000 + 2000 + 1500);
    const deepInput = JSON.parse("[".repeat(500) + "]".repeat(500)) as unknown;
    expect((await runScript({ code: "let d = 0, x = inputs.a; while (Array.isArray(x) && x.length) { x = x[0]; d++ } return d", inputs: { a: deepInput } })).outputs).toBe(499);
    const regex = await failure("return /^(a+)+$/.test('a'.repeat(40) + 'b')", { timeoutMs: 500 });
    expect(regex).toBeInstanceOf(ScriptTimeoutError);
    expect(await run("return 'fine'")).toBe("fine");
  });

  it("cancel interrupts a running script promptly", async () => {
    const controller = new AbortController();
    const t0 = performance.now();
    setTimeout(() => controller.abort(), 200);
    const e = await failure("while (true) {}", { timeoutMs: 20_000, signal: controller.signal });
    expect(e).toBeInstanceOf(ScriptCancelledError);
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(await run("return 'after cancel'")).toBe("after cancel");
  });
});

describe("errors say what went wrong, and where", () => {
  it("a syntax error gives line and column in the user's code", async () => {
    const e = (await failure("const a = 1;\nconst b = ;\nreturn a")) as ScriptSyntaxError;
    expect(e).toBeInstanceOf(ScriptSyntaxError);
    expect(e.line).toBe(2);
    expect(e.column).toBeGreaterThan(0);
    expect(e.message).toMatch(/^syntax error at line 2, column \d+: /);
  });

  it("code that ends too early is reported at its own last line, not at the wrapper's closing brace", async () => {
    // it said "line 3, column 1: unexpected token in expression: '}'" for two lines without a brace
    for (const code of ["const x = inputs.a;\nreturn x +", "return [1, 2,", "return 'unclosed"]) {
      const e = (await failure(code)) as ScriptSyntaxError;
      expect(e).toBeInstanceOf(ScriptSyntaxError);
      expect(e.line, code).toBeLessThanOrEqual(code.split("\n").length);
      expect(e.message, code).not.toContain("'}'");
    }
  });

  it("a runtime error carries the message, the line and the stack inside the script", async () => {
    const e = (await failure("function inner(x) {\n  return x.missing.deeper;\n}\nreturn inner({})")) as ScriptRuntimeError;
    expect(e).toBeInstanceOf(ScriptRuntimeError);
    expect(e.errorName).toBe("TypeError");
    expect(e.line).toBe(2);
    expect(e.message).toMatch(/^TypeError: .*deeper.* \(line 2\)$/);
    expect(e.scriptStack).toMatch(/at inner \(script\.js:2:\d+\)/);
    expect(e.scriptStack).toMatch(/script\.js:4:\d+/);
    const thrown = await failure("throw 'plain string'");
    expect(thrown.message).toContain("plain string");
  });

  it("a rejected promise is a runtime error; one that never settles says so", async () => {
    expect((await failure("return Promise.reject(new RangeError('nope'))")).message).toMatch(/^RangeError: nope/);
    expect((await failure("return new Promise(() => {})")).message).toMatch(/never settles/);
  });

  it("logs are capped: empty lines count (a million of them became a million server log lines), and at most 1000 lines", async () => {
    const empty = await runScript({ code: "for (let i = 0; i < 20000; i++) console.log(''); return 1", inputs: {} });
    expect(empty.logs).toHaveLength(1001);
    expect(empty.logs.at(-1)).toBe("… (log limit reached; further output dropped)");
    const long = await runScript({ code: "for (let i = 0; i < 100; i++) console.log('x'.repeat(1000)); return 1", inputs: {} });
    expect(long.logs.length).toBeLessThan(70); // 64 kB of characters
    expect(long.logs.at(-1)).toBe("… (log limit reached; further output dropped)");
  });

  it("the logs written before a failure come with the error", async () => {
    const e = await failure("console.log('step 1'); throw new Error('step 2 failed')");
    expect(e.logs).toEqual(["step 1"]);
  });

  it("a result that is not JSON-serialisable or too large is an output error", async () => {
    expect(await failure("return 10n")).toBeInstanceOf(ScriptOutputError);
    const cyclic = await failure("const o = {}; o.self = o; return o");
    expect(cyclic).toBeInstanceOf(ScriptOutputError);
    expect(cyclic.message).toMatch(/circular|cycle/i);
    const big = await failure("return 'x'.repeat(2000)", { maxOutputChars: 1000 });
    expect(big).toBeInstanceOf(ScriptOutputError);
    expect(big.message).toContain("the limit is 1000");
    expect((await failure("return { toJSON() { throw new Error('no json for you') } }")).message).toContain("no json for you");
  });

  it("inputs that JSON cannot carry are an input error naming the socket", async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const e = await failure("return 1", { inputs: { a: 1, b: cyclic } });
    expect(e).toBeInstanceOf(ScriptInputError);
    expect(e.message).toMatch(/^input "b" cannot be passed/);
    expect((await failure("return 1", { inputs: { c: 5n } })).message).toMatch(/input "c".*BigInt/);
    expect((await failure("return 1", { inputs: { a: new Float64Array(1000) }, maxInputChars: 500 })).message).toMatch(/input "a"/);
  });
});

describe("concurrency", () => {
  it("concurrent runs are isolated from each other", async () => {
    const jobs = Array.from({ length: 6 }, (_, k) =>
      runScript({ code: "globalThis.mine = (globalThis.mine ?? 0) + inputs.k; let t = 0; for (let i = 0; i < 20000; i++) t += i % 3; return [globalThis.mine, t]", inputs: { k } }),
    );
    const out = await Promise.all(jobs);
    let t = 0;
    for (let i = 0; i < 20000; i++) t += i % 3;
    expect(out.map((r) => r.outputs)).toEqual(Array.from({ length: 6 }, (_, k) => [k, t]));
  });

  it("an endless loop next to ordinary scripts does not stop them", async () => {
    const loop = failure("while (true) {}", { timeoutMs: 1500 });
    const t0 = performance.now();
    const quick = await Promise.all([run("return 1"), run("return 2")]);
    expect(quick).toEqual([1, 2]);
    expect(performance.now() - t0).toBeLessThan(1500); // they did not wait for the loop to end
    expect(await loop).toBeInstanceOf(ScriptTimeoutError);
  });
});
