import { describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { Executor } from "@/engine/executor";
import { checkOutputs, defineNode, NodeCatalogue, type OutputSpec } from "@/engine/node";
import { SOCKET_KINDS } from "@/engine/sockets";
import { VALUE_KINDS } from "@/engine/values";
import { compileCheck } from "@/engine/values/fast-check";
import { kindTest, oneOfKinds, type ValueKind } from "@/engine/values/kind";
import { CURRENT_SCHEMA_VERSION } from "@/engine/workflow/schema";
import { catalogue as shipped } from "@/nodes";
import { SeededRandom } from "@/models/io/seeded-random";
import { MemoryStorage } from "./helpers";

/**
 * The executor checks outputs (and defineNode inputs) with each kind's schema compiled into a plain predicate
 * (engine/values/fast-check.ts). It must say exactly what zod says: never accept what the schema rejects (a wrong
 * value would reach the next node), never reject what it accepts. Checked on seeded random values built from every
 * kind's schema, valid and malformed (wrong types at any depth, missing and extra keys, NaN, ±Infinity, fractions,
 * unsafe integers, arrays for objects, inherited fields, typed arrays of the wrong type).
 */

type Def = { type: string; [field: string]: unknown };
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Values that break schemas in different ways. */
const JUNK: (() => unknown)[] = [
  () => undefined, () => null, () => NaN, () => Infinity, () => -Infinity, () => 0, () => -0, () => -1, () => 1.5, () => 2 ** 53, () => 7,
  () => "", () => "x", () => true, () => [], () => [1, "a"], () => ({}), () => new Float32Array(2), () => new Float64Array(1), () => new Int32Array(1),
  () => Object.create(null), () => new Date(0), () => () => 1, () => new Map(),
];

/** A random value the schema accepts (or, for shapes we cannot build, some value: it only has to exercise both sides). */
function build(s: z.ZodType, r: SeededRandom, depth = 0): unknown {
  const def = defOf(s);
  switch (def.type) {
    case "object": {
      const o: Record<string, unknown> = {};
      for (const [k, f] of Object.entries(def.shape as Record<string, z.ZodType>)) {
        if (defOf(f).type === "optional" && r.uniform() < 0.3) continue;
        o[k] = build(f, r, depth + 1);
      }
      return o;
    }
    case "optional":
      return build(def.innerType as z.ZodType, r, depth);
    case "literal":
      return (def.values as unknown[])[0];
    case "enum": {
      const v = Object.values(def.entries as Record<string, unknown>);
      return v[r.int(v.length)];
    }
    case "string":
      return r.uniform() < 0.5 ? "" : `s${r.int(100)}`;
    case "number":
      return 1 + r.int(50);
    case "boolean":
      return r.uniform() < 0.5;
    case "array":
      return depth > 3 ? [] : Array.from({ length: r.int(3) }, () => build(def.element as z.ZodType, r, depth + 1));
    case "union": {
      const o = def.options as z.ZodType[];
      return build(o[r.int(o.length)]!, r, depth);
    }
    case "custom": {
      const fn = def.fn as (v: unknown) => unknown;
      const candidates = [[], new Float32Array(3), new Uint8Array(2), new Int32Array(2), new BigInt64Array(1), {}, "s", 1];
      return candidates.find((c) => fn(c)) ?? candidates[0];
    }
    default:
      return JUNK[r.int(JUNK.length)]!();
  }
}

/** Paths to every nested field of a plain value (objects and arrays). */
function paths(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v && typeof v === "object" && !ArrayBuffer.isView(v) && Object.getPrototypeOf(v) === Object.prototype) for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

function clone(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clone);
  if (v && typeof v === "object" && !ArrayBuffer.isView(v) && Object.getPrototypeOf(v) === Object.prototype) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clone(x)]));
  return v;
}

/** One random mutation of a valid value: a field replaced by junk, deleted, an extra key, or the whole value re-shaped. */
function mutate(valid: unknown, r: SeededRandom): unknown {
  const v = clone(valid);
  const all = paths(v);
  const path = all[r.int(all.length)]!;
  const choice = r.int(6);
  if (path.length === 0 || choice === 5) {
    const isObject = typeof v === "object" && v !== null;
    const shapes = [() => [v], () => (isObject ? Object.create(v) : v), () => (isObject ? Object.assign(Object.create(null), v) : v), () => JUNK[r.int(JUNK.length)]!()];
    return shapes[r.int(shapes.length)]!();
  }
  let parent = v as Record<string | number, unknown>;
  for (const p of path.slice(0, -1)) parent = parent[p] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (choice === 0 && !Array.isArray(parent)) delete parent[last];
  else if (choice === 1 && !Array.isArray(parent)) parent[`extra${r.int(3)}`] = JUNK[r.int(JUNK.length)]!();
  else parent[last] = JUNK[r.int(JUNK.length)]!();
  return v;
}

/** Every kind the app knows: the registered kinds, the node files' own kinds, and a union of two. */
function allKinds(): ValueKind<unknown>[] {
  const kinds = new Set<ValueKind<unknown>>(VALUE_KINDS);
  for (const def of shipped.list()) for (const s of [...Object.values(def.inputs), ...Object.values(def.outputs)]) if (s.kind) kinds.add(s.kind);
  kinds.add(oneOfKinds(VALUE_KINDS.find((k) => k.name === "routing-report")!, VALUE_KINDS.find((k) => k.name === "routing-aggregate")!) as ValueKind<unknown>);
  return [...kinds];
}

describe("compiled value checks == zod", () => {
  it("every kind, seeded random valid and malformed values: the fast test accepts exactly what the schema accepts", () => {
    const r = new SeededRandom(2112);
    let accepted = 0, rejected = 0;
    const kinds = allKinds();
    expect(kinds.length).toBeGreaterThan(20);
    for (const kind of kinds) {
      const fast = kindTest(kind);
      const compiled = compileCheck(kind.schema);
      for (let n = 0; n < 300; n++) {
        const valid = build(kind.schema, r);
        for (const v of [valid, mutate(valid, r), mutate(mutate(valid, r), r)]) {
          const zod = kind.schema.safeParse(v).success;
          if (!zod && fast(v)) throw new Error(`${kind.name}: the fast test accepts what zod rejects: ${String(JSON.stringify(v, (_, x) => (ArrayBuffer.isView(x) ? `${x.constructor.name}(${(x as Float32Array).length})` : x)))}`);
          expect(fast(v), `${kind.name}: fast test vs zod`).toBe(zod);
          expect(compiled(v), `${kind.name}: compiled schema vs zod`).toBe(zod);
          if (zod) accepted++;
          else rejected++;
        }
      }
    }
    console.log(`${kinds.length} kinds: ${accepted} values accepted, ${rejected} rejected, fast test == zod on all`);
    expect(rejected).toBeGreaterThan(accepted / 4);
    expect(accepted).toBeGreaterThan(1000);
  });

  it("number checks compile exactly: int (safe integers), positive, nonnegative, bounds; other checks fall back to zod", () => {
    const schemas = [z.number(), z.number().int(), z.number().int().positive(), z.number().nonnegative(), z.number().min(-2).max(3), z.number().gt(0).lt(1), z.number().multipleOf(0.5), z.string().min(2), z.array(z.number()).min(1)];
    const values = [0, -0, 1, -1, 0.5, 1.5, 3, 3.0000001, -2, -2.5, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), NaN, Infinity, -Infinity, "1", "ab", [], [1], ["a"], null, undefined];
    for (const s of schemas) {
      const c = compileCheck(s);
      for (const v of values) expect(c(v), `${JSON.stringify(defOf(s))} on ${String(v)}`).toBe(s.safeParse(v).success);
    }
  });

  it("a valid value is accepted without zod's parse (the hot path); a wrong one is worded by zod", () => {
    const kind = SOCKET_KINDS.LLM_OUTPUT as ValueKind<unknown>;
    const spy = vi.spyOn(kind.schema, "safeParse");
    const specs: Record<string, OutputSpec> = { output: { type: "LLM_OUTPUT" }, n: { type: "NUMBER" } };
    const llm = { kind: "llm-output", model: "m", text: "hi", promptIds: [1], ids: [2], stopReason: "eos", specialHidden: [], tailHidden: [new Float32Array(4)], prefillMs: 1, decodeMs: 1 };
    checkOutputs(specs, { output: llm, n: 3 });
    expect(spy).not.toHaveBeenCalled();
    expect(() => checkOutputs(specs, { output: { ...llm, tailHidden: [new Float64Array(4)] }, n: 3 })).toThrow(/^output "output" is not an LLM output \(LLM_OUTPUT\): tailHidden\.0: /);
    expect(() => checkOutputs(specs, { output: llm, n: "3" })).toThrow(/^output "n" is not a number \(NUMBER\)/);
    checkOutputs(specs, { output: llm, n: NaN }); // NUMBER carries NaN and ±Infinity (a metric may be undefined)
    spy.mockRestore();
  });
});

describe("the executor refuses a wrong output where it leaves the node", () => {
  const image = { kind: "image", file: "f.png", mime: "image/png", width: 4, height: 3 };
  const node = defineNode({
    type: "test.maker",
    typeVersion: 1,
    title: "Maker",
    category: "Utility",
    description: "returns what its param says",
    inputs: {},
    outputs: { image: { type: "IMAGE" }, n: { type: "NUMBER" } },
    params: z.object({ bad: z.enum(["none", "width", "tag", "n"]).default("none") }),
    async execute({ params }) {
      const out = { image: { ...image }, n: 1 };
      if (params.bad === "width") out.image.width = -4;
      if (params.bad === "tag") (out.image as { kind: string }).kind = "audio";
      if (params.bad === "n") (out as { n: unknown }).n = "1";
      return out as never;
    },
  });
  const executor = new Executor({ catalogue: new NodeCatalogue([node] as never[]), storage: new MemoryStorage(), concurrency: 1 });
  const doc = (bad: string) => ({ schemaVersion: CURRENT_SCHEMA_VERSION, name: "t", description: "", tags: [], nodes: [{ id: "m", type: "test.maker", typeVersion: 1, params: { bad }, position: { x: 0, y: 0 } }], edges: [], notes: [] });

  it.each([
    ["width", 'output "image" is not an image (IMAGE): width: '],
    ["tag", 'output "image" is not an image (IMAGE): kind: '],
    ["n", 'output "n" is not a number (NUMBER)'],
  ])("bad %s", async (bad, message) => {
    const r = await executor.run(doc(bad), { runId: `bad-${bad}` });
    expect(r.status).toBe("failed");
    expect(r.nodes.get("m")!.error).toContain(message);
  });

  it("good outputs pass", async () => {
    const r = await executor.run(doc("none"), { runId: "good" });
    expect(r.status).toBe("finished");
    expect(r.outputs.get("m")).toEqual({ image, n: 1 });
  });
});
