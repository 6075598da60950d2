import { TRPCError } from "@trpc/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prng } from "../reference/random";
import { freshDataDir } from "./fresh-db";

// 1,000 generated malformed workflow documents thrown at save, import and run through the real tRPC
// router: none may crash (every failure is a TRPCError BAD_REQUEST with a message naming the cause),
// graph-level problems that a work-in-progress save may keep are reported as problems, nothing runs,
// and the saved work is intact.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
const { appRouter } = await import("@/app/server/routers");
const { db } = await import("@/app/server/db");
const { runManager } = await import("@/app/server/runs");

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function baseDoc(): Doc {
  return {
    schemaVersion: 2,
    name: "Fuzz base",
    description: "",
    tags: ["fuzz"],
    nodes: [
      { id: "prompt", type: "input.text", typeVersion: 1, params: { text: "hello" }, position: { x: 0, y: 0 } },
      { id: "join", type: "text.template", typeVersion: 1, params: { template: "{a}!" }, position: { x: 300, y: 0 } },
      { id: "show", type: "output.preview", typeVersion: 1, params: {}, position: { x: 600, y: 0 } },
    ],
    edges: [
      { id: "e1", source: "prompt", sourceSocket: "text", target: "join", targetSocket: "a" },
      { id: "e2", source: "join", sourceSocket: "text", target: "show", targetSocket: "value" },
    ],
    notes: [],
  };
}

/** Which check should catch a mutation: the document guard/schema ("shape"), or graph validation ("graph"). */
type Kind = "shape" | "graph";

function deep(depth: number, leaf: unknown = 1): unknown {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { k: v };
  return v;
}

/** Each mutation breaks a valid document in one way that must be refused (or, for "graph", reported). */
function mutations(rand: () => number): { name: string; kind: Kind; apply: (d: Doc) => unknown }[] {
  const pick = <T,>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const node = (d: Doc) => pick(d.nodes as Doc[]);
  const edge = (d: Doc) => pick(d.edges as Doc[]);
  const wrongValue = () => pick<unknown>([null, true, 42, -1.5, [], {}, [1, "2"], { x: 1 }]); // never a string
  return [
    { name: "wrong type at the top", kind: "shape", apply: (d) => ({ ...d, [pick(["schemaVersion", "name", "nodes", "edges"])]: pick<unknown>([null, true, 7.5, {}, ["x"]]) }) },
    { name: "wrong type in a node", kind: "shape", apply: (d) => (Object.assign(node(d), { [pick(["id", "type", "typeVersion", "position"])]: pick<unknown>([null, false, 1.5, -3, "", {}, []]) }), d) },
    { name: "wrong type in an edge", kind: "shape", apply: (d) => (Object.assign(edge(d), { [pick(["id", "source", "sourceSocket", "target", "targetSocket"])]: pick<unknown>([null, 3, [], {}, ""]) }), d) },
    { name: "params not an object", kind: "shape", apply: (d) => ((node(d).params = pick<unknown>(["x", 3, ["a"], true])), d) },
    { name: "missing top-level field", kind: "shape", apply: (d) => (delete d[pick(["schemaVersion", "name", "nodes", "edges"])], d) },
    { name: "missing node field", kind: "shape", apply: (d) => (delete node(d)[pick(["id", "type", "typeVersion", "position"])], d) },
    { name: "missing edge field", kind: "shape", apply: (d) => (delete edge(d)[pick(["id", "source", "sourceSocket", "target", "targetSocket"])], d) },
    { name: "huge name", kind: "shape", apply: (d) => ((d.name = "N".repeat(201 + Math.floor(rand() * 100_000))), d) },
    { name: "huge text overall", kind: "shape", apply: (d) => ((node(d).params.blob = "x".repeat(17 * 1024 * 1024)), d) },
    { name: "huge id", kind: "shape", apply: (d) => ((node(d).id = "i".repeat(129 + Math.floor(rand() * 5000))), d) },
    { name: "deep nesting in params", kind: "shape", apply: (d) => ((node(d).params.deep = deep(65 + Math.floor(rand() * 20_000))), d) },
    { name: "a value that contains itself", kind: "shape", apply: (d) => {
      const loop: Doc = { a: 1 };
      loop.self = pick([loop, [loop]]);
      node(d).params.loop = loop;
      return d;
    } },
    { name: "the document contains itself", kind: "shape", apply: (d) => ((d.nodes[0].params.doc = d), d) },
    { name: "__proto__ key", kind: "shape", apply: (d) => JSON.parse(JSON.stringify(d).replace('"params":{', '"params":{"__proto__":{"polluted":true},')) },
    { name: "constructor/prototype key", kind: "shape", apply: (d) => ((node(d).params[pick(["constructor", "prototype"])] = { polluted: true }), d) },
    { name: "NaN or Infinity", kind: "shape", apply: (d) => {
      const bad = pick([NaN, Infinity, -Infinity]);
      if (rand() < 0.5) node(d).position[pick(["x", "y"])] = bad;
      else node(d).params[pick(["text", "n", "temperature"])] = bad;
      return d;
    } },
    { name: "not JSON at all", kind: "shape", apply: (d) => ((node(d).params.v = pick<unknown>([() => 1, Symbol("s"), 10n, new Date(0), new Map(), /re/])), d) },
    { name: "not an object", kind: "shape", apply: () => pick<unknown>([null, 0, "workflow", [], [1, 2], true, "{not json"]) },
    { name: "unknown or newer schemaVersion", kind: "shape", apply: (d) => ((d.schemaVersion = pick([0, -1, 3, 99, 1e9, 2.5])), d) },
    { name: "v1 that does not parse", kind: "shape", apply: () => ({ schemaVersion: 1, title: 5, nodes: "x", edges: [{ from: "nocolon", to: "a:b" }] }) },
    { name: "bad id characters", kind: "shape", apply: (d) => ((node(d).id = pick(["a b", "../x", "<script>", "a/b", "é"])), d) },
    { name: "too many nodes", kind: "shape", apply: (d) => ((d.nodes = Array.from({ length: 5001 }, (_, i) => ({ id: `n${i}`, type: "input.text", typeVersion: 1, params: {}, position: { x: 0, y: 0 } }))), d) },
    { name: "negative or fractional typeVersion", kind: "shape", apply: (d) => ((node(d).typeVersion = pick([0, -1, 1.5])), d) },
    { name: "wrong value in tags/notes", kind: "shape", apply: (d) => (rand() < 0.5 ? (d.tags = [wrongValue()]) : (d.notes = [{ id: "n", text: wrongValue(), position: { x: 0, y: 0 } }]), d) },
    // Graph-level: the document has the right shape; a save may keep it as work in progress, but the
    // problems are reported, and a run is refused.
    { name: "unknown node type", kind: "graph", apply: (d) => ((node(d).type = pick(["no.such.node", "x", "input.text.v9", "__proto__"])), d) },
    { name: "duplicate node ids", kind: "graph", apply: (d) => (d.nodes.push({ ...structuredClone(node(d)) }), d) },
    { name: "duplicate edge ids", kind: "graph", apply: (d) => ((d.edges[1].id = d.edges[0].id), d) },
    { name: "dangling edge", kind: "graph", apply: (d) => ((edge(d)[pick(["source", "target"])] = "ghost"), d) },
    { name: "unknown socket", kind: "graph", apply: (d) => ((edge(d)[pick(["sourceSocket", "targetSocket"])] = pick(["nope", "image", "__proto__"])), d) },
    { name: "incompatible socket types", kind: "graph", apply: (d) => {
      d.nodes.push({ id: "vision", type: "encode.vision", typeVersion: 1, params: {}, position: { x: 0, y: 300 } });
      d.edges.push({ id: "bad", source: "prompt", sourceSocket: "text", target: "vision", targetSocket: "image" });
      return d;
    } },
    { name: "cycle", kind: "graph", apply: (d) => (d.edges.push({ id: "back", source: "join", sourceSocket: "text", target: "join", targetSocket: "b" }), d) },
    { name: "missing required input", kind: "graph", apply: (d) => ((d.edges = d.edges.filter((e: Doc) => e.id !== "e1")), d) },
    { name: "invalid params", kind: "graph", apply: (d) => {
      const i = pick([0, 1]); // input.text's "text", text.template's "template": both strings
      d.nodes[i].params = { [i ? "template" : "text"]: pick<unknown>([42, ["x"], { a: 1 }, null, true]) };
      return d;
    } },
  ];
}

function generate(count: number, seed: number): { name: string; kind: Kind; doc: unknown }[] {
  const rand = prng(seed);
  const all = mutations(rand);
  return Array.from({ length: count }, (_, i) => {
    const m = all[i % all.length]!; // every kind many times; the details vary with the seed
    return { name: m.name, kind: m.kind, doc: m.apply(baseDoc()) };
  });
}

type Outcome = { ok: true; value: unknown } | { ok: false; code: string; message: string };

async function outcome(call: () => Promise<unknown>, label: string): Promise<Outcome> {
  try {
    return { ok: true, value: await call() };
  } catch (err) {
    if (!(err instanceof TRPCError)) throw new Error(`${label}: crashed with ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    return { ok: false, code: err.code, message: err.message };
  }
}

function expectClearRefusal(o: Outcome, label: string) {
  expect(o.ok, `${label}: was accepted`).toBe(false);
  if (o.ok) return;
  expect(o.code, `${label}: ${o.message}`).toBe("BAD_REQUEST");
  expect(o.message.length, label).toBeGreaterThan(10);
  expect(o.message.length, label).toBeLessThan(2000);
  expect(o.message, label).not.toMatch(/internal server|\[object Object\]|Maximum call stack|Cannot read prop|is not a function|is not iterable/i);
}

describe("fuzz: 1,000 malformed workflow documents at save, import and run", () => {
  const api = appRouter.createCaller({ origin: null, host: "studio.test", userId: "fuzzer" });
  const cases = generate(1000, 20261123);
  let saved: { id: string; document: unknown };
  const counts = { refused: 0, reportedProblems: 0 };

  beforeAll(async () => {
    await runManager().ready;
    const created = await api.workflow.create({ document: baseDoc() });
    saved = { id: created.id, document: (await api.workflow.get({ id: created.id })).document };
  });
  afterAll(async () => {
    await runManager().runtime.close();
    console.log(`fuzz: ${cases.length} documents × 4 targets; refused ${counts.refused} times with BAD_REQUEST, ${counts.reportedProblems} work-in-progress saves/imports kept with problems listed`);
  });

  it("the generator makes every kind of malformation many times", () => {
    const kinds = new Map<string, number>();
    for (const c of cases) kinds.set(c.name, (kinds.get(c.name) ?? 0) + 1);
    expect(kinds.size).toBe(mutations(prng(1)).length);
    for (const n of kinds.values()) expect(n).toBeGreaterThanOrEqual(25);
  });

  it("zero crashes: each document gets a clear validation error (or, for graph problems, a listed problem) at every target", { timeout: 600_000 }, async () => {
    let base = (await api.workflow.get({ id: saved.id })).version;
    for (const [i, c] of cases.entries()) {
      const label = `#${i} ${c.name}`;
      const run = await outcome(() => api.run.start({ document: c.doc }), `${label} run`);
      expectClearRefusal(run, `${label} run`);

      const check = await outcome(() => api.workflow.check({ document: c.doc }), `${label} import`);
      const create = await outcome(() => api.workflow.create({ document: c.doc, message: "imported" }), `${label} import-create`);
      const save = await outcome(() => api.workflow.save({ id: saved.id, baseVersion: base, document: c.doc }), `${label} save`);
      if (c.kind === "shape") {
        for (const [o, what] of [[check, "import"], [create, "import-create"], [save, "save"]] as const) expectClearRefusal(o, `${label} ${what}`);
        counts.refused += 4;
      } else {
        // Kept as work in progress, with the problem listed for the editor; reading it back works.
        expect(check.ok, `${label} import`).toBe(true);
        expect(create.ok && save.ok, `${label} save`).toBe(true);
        const problems = (check as { value: { problems: { severity: string; message: string }[] } }).value.problems;
        expect(problems.length, `${label}: no problem listed`).toBeGreaterThan(0);
        for (const p of problems) expect(p.message.length).toBeGreaterThan(5);
        const reread = await api.workflow.get({ id: saved.id });
        expect(reread.version).toBe(base + 1);
        expect(reread.problems.length).toBeGreaterThan(0);
        base = reread.version;
        counts.refused += 1;
        counts.reportedProblems += 2;
      }
    }
  });

  it("saved work is intact: version 1 is unchanged, every version reads back, nothing ran, the router still works", async () => {
    expect((await api.workflow.get({ id: saved.id, version: 1 })).document).toEqual(saved.document);
    const versions = await api.workflow.versions({ id: saved.id });
    for (const v of versions) {
      const got = await api.workflow.get({ id: saved.id, version: v.version });
      expect(got.document.schemaVersion).toBe(2);
    }
    expect(await db().run.count()).toBe(0);
    // Prototypes were not polluted along the way.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // And a good document still saves and runs.
    const latest = await api.workflow.get({ id: saved.id });
    const { version } = await api.workflow.save({ id: saved.id, baseVersion: latest.version, document: baseDoc() });
    expect(version).toBe(latest.version + 1);
    const { runId } = await api.run.start({ document: baseDoc(), workflowId: saved.id });
    expect((await runManager().whenDone(runId)).type).toBe("finished");
  });
});
