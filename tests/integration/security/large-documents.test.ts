import { beforeAll, describe, expect, it, vi } from "vitest";
import { freshDataDir } from "../fresh-db";

// Work a few bytes of request can ask of a big stored workflow (attack36 B1, B5, B9), through the real tRPC route and
// database, accounts on: one large document per request; a run start refused at the cap before any work on its
// document; file checks of a document naming thousands of files in a few queries, not one per node.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
process.env.STUDIO_MAX_RUNS_PER_USER = "1";
const trpcRoute = await import("@/app/api/trpc/[trpc]/route");
const { appRouter } = await import("@/app/server/routers");
const { createSession, createUser } = await import("@/app/server/auth");
const { db } = await import("@/app/server/db");
const { LARGE_DOCUMENT_CHARS } = await import("@/app/server/large-documents");
const { grantFiles, grantVersionFiles, readableFiles } = await import("@/app/server/access");

const BASE = "http://studio.test:3000";
const HEADERS = { host: "studio.test:3000", origin: BASE, "content-type": "application/json" };

/** A workflow whose Text node holds `chars` characters. */
const docOf = (name: string, chars: number) => ({
  schemaVersion: 2,
  name,
  nodes: [
    { id: "prompt", type: "input.text", typeVersion: 1, params: { text: "x".repeat(chars) }, position: { x: 0, y: 0 } },
    { id: "show", type: "output.preview", typeVersion: 1, params: {}, position: { x: 300, y: 0 } },
  ],
  edges: [{ id: "e1", source: "prompt", sourceSocket: "text", target: "show", targetSocket: "value" }],
});

type Answer = { result?: unknown; error?: { message: string; data?: { code?: string } } };

/** One batched request of `procedure` for each input; the answers in order. */
async function batch(procedure: string, inputs: unknown[], cookie: string, method: "GET" | "POST"): Promise<Answer[]> {
  const path = `/api/trpc/${inputs.map(() => procedure).join(",")}?batch=1`;
  const encoded = JSON.stringify(Object.fromEntries(inputs.map((input, i) => [i, input])));
  const res =
    method === "GET"
      ? await trpcRoute.GET(new Request(`${BASE}${path}&input=${encodeURIComponent(encoded)}`, { headers: { ...HEADERS, cookie } }))
      : await trpcRoute.POST(new Request(`${BASE}${path}`, { method: "POST", body: encoded, headers: { ...HEADERS, cookie } }));
  return (await res.json()) as Answer[];
}
const codes = (answers: Answer[]) => answers.map((a) => (a.error ? a.error.data?.code : "OK"));

describe("large stored documents", () => {
  let userId: string;
  let cookie: string;
  const big: string[] = [];
  let small: string;

  beforeAll(async () => {
    userId = (await createUser("alice", "alice-password")).id;
    cookie = `studio_session=${(await createSession(userId)).token}`;
    const me = appRouter.createCaller({ origin: null, host: "studio.test", userId });
    for (let i = 0; i < 2; i++) {
      const { id } = await me.workflow.create({ document: docOf(`big ${i}`, LARGE_DOCUMENT_CHARS + 1000) });
      await me.workflow.save({ id, baseVersion: 1, document: docOf(`big ${i} v2`, LARGE_DOCUMENT_CHARS + 2000) });
      big.push(id);
    }
    small = (await me.workflow.create({ document: docOf("small", 10) })).id;
  }, 60_000);

  it("one request reads, diffs, renames or restores at most one of them; the rest are refused saying why, small ones pass", async () => {
    expect(codes(await batch("workflow.get", [{ id: big[0] }, { id: big[1] }], cookie, "GET"))).toEqual(["OK", "TOO_MANY_REQUESTS"]);
    expect(codes(await batch("history.diff", big.map((workflowId) => ({ workflowId, from: 1, to: 2 })), cookie, "GET"))).toEqual(["OK", "TOO_MANY_REQUESTS"]);
    const renamed = await batch("workflow.rename", big.map((id, i) => ({ id, name: `renamed ${i}` })), cookie, "POST");
    expect(codes(renamed)).toEqual(["OK", "TOO_MANY_REQUESTS"]);
    expect(renamed[1]!.error!.message).toMatch(/one call per request may read or copy a workflow over 1 MB; send the others in requests of their own/);
    expect(codes(await batch("history.restore", big.map((workflowId) => ({ workflowId, version: 1 })), cookie, "POST"))).toEqual(["OK", "TOO_MANY_REQUESTS"]);
    expect(codes(await batch("workflow.duplicate", big.map((id) => ({ id })), cookie, "POST"))).toEqual(["OK", "TOO_MANY_REQUESTS"]);
    const me = appRouter.createCaller({ origin: null, host: "studio.test", userId });
    const tokens = await Promise.all(big.map(async (workflowId) => (await me.share.create({ workflowId })).token));
    expect(codes(await batch("share.fork", tokens.map((token) => ({ token })), cookie, "POST"))).toEqual(["OK", "TOO_MANY_REQUESTS"]);
    expect(codes(await batch("share.resolve", [{ token: tokens[1] }], "", "GET"))).toEqual(["OK"]); // anyone, once per request
    // one large and several small ones in one request, and each large one in a request of its own: all fine
    expect(codes(await batch("workflow.get", [{ id: small }, { id: big[1] }, { id: small }], cookie, "GET"))).toEqual(["OK", "OK", "OK"]);
    for (const id of big) expect(codes(await batch("workflow.rename", [{ id, name: "again" }], cookie, "POST"))).toEqual(["OK"]);
    const names = await db().workflow.findMany({ where: { id: { in: big } }, select: { name: true } });
    expect(await db().workflow.count({ where: { ownerId: userId, name: { endsWith: "(fork)" } } })).toBe(1);
    expect(names.map((n) => n.name)).toEqual(["again", "again"]);
  }, 120_000);

  it("a run with MBs of document and previews: one per request too (the same run twice is one)", async () => {
    const text = JSON.stringify(docOf("ran", LARGE_DOCUMENT_CHARS));
    for (const id of ["big-run-1", "big-run-2"]) await db().run.create({ data: { id, ownerId: userId, status: "finished", document: text } });
    expect(codes(await batch("run.get", [{ runId: "big-run-1" }, { runId: "big-run-2" }], cookie, "GET"))).toEqual(["OK", "TOO_MANY_REQUESTS"]);
    expect(codes(await batch("run.get", [{ runId: "big-run-2" }, { runId: "big-run-2" }], cookie, "GET"))).toEqual(["OK", "OK"]);
    await db().run.deleteMany({ where: { id: { in: ["big-run-1", "big-run-2"] } } });
  });

  it("a run start at the owner's cap is refused before its document is looked at", async () => {
    await db().run.create({ data: { id: "queued-run", ownerId: userId, status: "queued", document: "{}" } });
    const findMany = vi.spyOn(db().fileGrant, "findMany");
    const cyclic = { ...docOf("cycle", 1), edges: [{ id: "e1", source: "show", sourceSocket: "value", target: "prompt", targetSocket: "text" }] };
    const answers = await batch("run.start", [{ document: cyclic }, { document: docOf("ok", 1), workflowId: big[0], workflowVersion: 1 }], cookie, "POST");
    expect(codes(answers)).toEqual(["TOO_MANY_REQUESTS", "TOO_MANY_REQUESTS"]); // not BAD_REQUEST for the cycle: refused first
    expect(findMany).not.toHaveBeenCalled();
    findMany.mockRestore();
    await db().run.delete({ where: { id: "queued-run" } });
  });

  it("the files of a document naming thousands of them are checked and granted in a few queries", async () => {
    const ids = Array.from({ length: 3000 }, (_, i) => `${i.toString(16).padStart(64, "0")}.png`);
    await grantFiles(ids.slice(0, 1000), { userId }); // the user's uploads; the other 2,000 are made up
    const nodes = ids.map((file, i) => ({ id: `img${i}`, type: "input.image", typeVersion: 1, params: { file }, position: { x: 0, y: i } }));
    const findFirst = vi.spyOn(db().fileGrant, "findFirst");
    const findMany = vi.spyOn(db().fileGrant, "findMany");
    const readable = await readableFiles(userId, [...ids, ...ids]);
    expect([...readable].sort()).toEqual(ids.slice(0, 1000));
    const version = await db().workflowVersion.findFirstOrThrow({ where: { workflowId: small } });
    await grantVersionFiles(version.id, userId, { nodes });
    expect(await db().fileGrant.count({ where: { versionId: version.id } })).toBe(1000);
    expect(findFirst).not.toHaveBeenCalled();
    expect(findMany.mock.calls.length).toBeLessThanOrEqual(20);
    findFirst.mockRestore();
    findMany.mockRestore();
  }, 60_000);
});
