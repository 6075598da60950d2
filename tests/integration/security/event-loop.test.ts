import { beforeAll, describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

// One hostile request must not stall the server: the route handlers themselves (in this process, so a
// blocked event loop blocks the health checks too), accounts off.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "off";
delete process.env.STUDIO_MAX_BODY_MB;
const trpcRoute = await import("@/app/api/trpc/[trpc]/route");
const health = await import("@/app/api/health/route");
const { checkPlainJson } = await import("@/app/server/document-guard");

const BASE = "http://127.0.0.1:3000";
const post = (path: string, body: string) =>
  trpcRoute.POST(new Request(`${BASE}${path}`, { method: "POST", body, headers: { host: "127.0.0.1:3000", origin: BASE, "content-type": "application/json" } }));

/** A workflow whose one node has a param holding `n` numbers (6 MB of JSON for 3 million). */
function hugeParamDocument(n: number) {
  const doc = { schemaVersion: 2, name: "huge", nodes: [{ id: "t", type: "input.text", typeVersion: 1, params: { text: "x", big: "@@" }, position: { x: 0, y: 0 } }], edges: [] };
  return JSON.stringify(doc).replace('"@@"', `[${"0,".repeat(n - 1)}0]`);
}

/** Polls /api/health every 10 ms while `work` runs; returns the slowest answer (ms) and the work's result. */
async function whilePolling<T>(work: () => Promise<T>): Promise<{ slowest: number; answers: number; result: T }> {
  let done = false;
  let slowest = 0;
  let answers = 0;
  const poller = (async () => {
    while (!done) {
      const t0 = performance.now();
      const res = await health.GET();
      expect(res.status).toBe(200);
      slowest = Math.max(slowest, performance.now() - t0);
      answers++;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  await new Promise((r) => setTimeout(r, 50));
  const result = await work();
  await new Promise((r) => setTimeout(r, 50));
  done = true;
  await poller;
  return { slowest, answers, result };
}

describe("a document with millions of values", () => {
  beforeAll(async () => {
    await health.GET(); // the database is open before anything is timed
  });

  it("is refused (413) from the raw body, while /api/health keeps answering within 200 ms and RSS comes back", async () => {
    const body = JSON.stringify({ document: "@@" }).replace('"@@"', hugeParamDocument(3_000_000));
    expect(body.length).toBeGreaterThan(6_000_000);
    const rss0 = process.memoryUsage().rss;
    const slowestOf: number[] = [];
    for (let round = 0; round < 3; round++) {
      const { slowest, answers, result: res } = await whilePolling(() => post("/api/trpc/workflow.create", body));
      expect(res.status).toBe(413);
      expect((await res.json()).error).toMatch(/holds more than 250,000 values/);
      expect(answers).toBeGreaterThan(3);
      expect(slowest, `slowest health answer in round ${round}`).toBeLessThan(200);
      slowestOf.push(Math.round(slowest));
    }
    const grown = (process.memoryUsage().rss - rss0) / 2 ** 20;
    console.log(`3 refused 6 MB documents: slowest health answers ${slowestOf.join(", ")} ms; RSS ${grown.toFixed(0)} MB over the start`);
    expect(grown).toBeLessThan(150);
  });

  it("an imported file (JSON text inside the request) is counted before it is parsed", async () => {
    const { slowest, result: res } = await whilePolling(() => post("/api/trpc/workflow.check", JSON.stringify({ document: hugeParamDocument(3_000_000) })));
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toMatch(/the file is refused: it holds more than 250,000 values/);
    expect(slowest).toBeLessThan(200);
  });

  it("deep nesting is refused from the text too; documents within the limits still save", async () => {
    const deep = JSON.stringify({ document: "@@" }).replace('"@@"', `${"[".repeat(100_000)}${"]".repeat(100_000)}`);
    const res = await post("/api/trpc/workflow.create", deep);
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatch(/nested deeper than 64 levels/);
    const ok = await post("/api/trpc/workflow.create", JSON.stringify({ document: JSON.parse(hugeParamDocument(100_000)) }));
    expect(ok.status).toBe(200);
  });

  it("checkPlainJson counts a container's size before walking it: 3 million values are refused in milliseconds", () => {
    const value = { nodes: [{ params: { big: new Array(3_000_000).fill(0) } }] };
    const t0 = performance.now();
    expect(() => checkPlainJson(value)).toThrow(/more than 250,000 values \(at nodes\.0\.params\.big\)/);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(() => checkPlainJson({ a: [1, { b: [NaN] }] })).toThrow(/a\.1\.b\.0 is NaN/);
    expect(() => checkPlainJson(JSON.parse('{"x":{"__proto__":1}}'))).toThrow(/the key "__proto__" at x is not allowed/);
    let nested: unknown = 1;
    for (let i = 0; i < 64; i++) nested = [nested];
    expect(() => checkPlainJson(nested)).not.toThrow();
    expect(() => checkPlainJson([nested])).toThrow(/nested deeper than 64 levels/);
  });
});
