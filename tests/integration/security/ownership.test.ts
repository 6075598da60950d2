import { TRPCError } from "@trpc/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

// Two accounts against the real tRPC router (createCaller) and a real SQLite database.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
process.env.STUDIO_MAX_RUNS_PER_USER = "2";
const { appRouter } = await import("@/app/server/routers");
const { db } = await import("@/app/server/db");
const { runManager } = await import("@/app/server/runs");
const { createUser } = await import("@/app/server/auth");
const { canReadArtifact, grantFiles, recordUploader } = await import("@/app/server/access");

const doc = {
  schemaVersion: 2,
  name: "A's private workflow",
  nodes: [
    { id: "prompt", type: "input.text", typeVersion: 1, params: { text: "secret" }, position: { x: 0, y: 0 } },
    { id: "show", type: "output.preview", typeVersion: 1, params: {}, position: { x: 300, y: 0 } },
  ],
  edges: [{ id: "e1", source: "prompt", sourceSocket: "text", target: "show", targetSocket: "value" }],
};

const caller = (userId: string | null) => appRouter.createCaller({ origin: null, host: "studio.example", userId });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(TRPCError);
    return (err as TRPCError).code;
  }
  return "OK";
}

const artifact = "ab".repeat(32) + ".png";

describe("another user's things are not found", () => {
  let a: ReturnType<typeof caller>;
  let b: ReturnType<typeof caller>;
  let aId: string;
  let bId: string;
  let wf: string;
  let runId: string;

  beforeAll(async () => {
    await runManager().ready;
    aId = (await createUser("alice", "alice-password")).id;
    bId = (await createUser("bob", "bob-password1")).id;
    a = caller(aId);
    b = caller(bId);
    wf = (await a.workflow.create({ document: doc })).id;
    runId = (await a.run.start({ document: doc, workflowId: wf, workflowVersion: 1 })).runId;
    await runManager().whenDone(runId);
    // A finished run of A's that wrote an artifact (as the run host records it while the run writes).
    await db().nodeRun.create({ data: { id: "nr-art", runId, nodeId: "img", nodeType: "x", status: "done", outputs: JSON.stringify({ image: { file: artifact } }) } });
    await grantFiles([artifact], { runId });
  });
  afterAll(async () => {
    await runManager().runtime.close();
  });

  it("the owner sees the workflow, its run and its versions", async () => {
    expect((await a.workflow.get({ id: wf })).document.name).toBe("A's private workflow");
    expect((await a.workflow.list({})).map((w) => w.id)).toContain(wf);
    expect((await a.run.get({ runId })).status).toBe("finished");
    expect((await a.run.list({})).map((r) => r.id)).toContain(runId);
    const row = await db().workflow.findUnique({ where: { id: wf } });
    expect(row!.ownerId).toBe(aId);
    expect((await db().run.findUnique({ where: { id: runId } }))!.ownerId).toBe(aId);
    expect((await db().workflowVersion.findFirst({ where: { workflowId: wf } }))!.author).toBe(aId);
  });

  it("B gets NOT_FOUND (never FORBIDDEN) for A's workflow by id, and the list does not show it", async () => {
    expect(await code(b.workflow.get({ id: wf }))).toBe("NOT_FOUND");
    expect(await code(b.workflow.get({ id: wf, version: 1 }))).toBe("NOT_FOUND");
    expect(await code(b.workflow.versions({ id: wf }))).toBe("NOT_FOUND");
    expect(await code(b.workflow.save({ id: wf, baseVersion: 1, document: { ...doc, name: "hijacked" } }))).toBe("NOT_FOUND");
    expect(await code(b.workflow.rename({ id: wf, name: "mine now" }))).toBe("NOT_FOUND");
    expect(await code(b.workflow.duplicate({ id: wf }))).toBe("NOT_FOUND");
    expect(await code(b.workflow.trash({ id: wf }))).toBe("NOT_FOUND");
    expect(await code(b.workflow.restore({ id: wf }))).toBe("NOT_FOUND");
    expect(await code(b.workflow.deleteForever({ id: wf }))).toBe("NOT_FOUND");
    expect((await b.workflow.list({})).map((w) => w.id)).not.toContain(wf);
    expect((await b.workflow.list({ trash: true })).map((w) => w.id)).not.toContain(wf);
    expect((await b.workflow.list({ search: "private" })).length).toBe(0);
    // The same answer as for an id that does not exist at all.
    expect(await code(b.workflow.get({ id: "no-such-id" }))).toBe("NOT_FOUND");
    // ...and A's work is untouched.
    const after = await a.workflow.get({ id: wf });
    expect(after.version).toBe(1);
    expect(after.document.name).toBe("A's private workflow");
    expect(after.summary.deletedAt).toBeNull();
  });

  it("B gets NOT_FOUND for A's run by id: get, events, cancel, move; run lists never show it", async () => {
    expect(await code(b.run.get({ runId }))).toBe("NOT_FOUND");
    expect(await code(b.run.cancel({ runId }))).toBe("NOT_FOUND");
    expect(await code(b.run.move({ runId, direction: "up" }))).toBe("NOT_FOUND");
    const events = await b.run.events({ runId });
    expect(await code((events as AsyncIterable<unknown>)[Symbol.asyncIterator]().next())).toBe("NOT_FOUND");
    expect((await b.run.list({})).map((r) => r.id)).not.toContain(runId);
    expect((await b.run.list({ workflowId: wf })).length).toBe(0);
  });

  it("B cannot run against A's workflow id", async () => {
    expect(await code(b.run.start({ document: doc, workflowId: wf }))).toBe("NOT_FOUND");
  });

  it("artifacts: A's run output is readable by A, not by B; an upload by its uploader only", async () => {
    expect(await canReadArtifact(aId, artifact)).toBe(true);
    expect(await canReadArtifact(bId, artifact)).toBe(false);
    expect(await canReadArtifact(null, artifact)).toBe(false);
    const upload = "cd".repeat(32) + ".wav";
    expect(await canReadArtifact(bId, upload)).toBe(false);
    await recordUploader(bId, upload);
    expect(await canReadArtifact(bId, upload)).toBe(true);
    expect(await canReadArtifact(aId, upload)).toBe(false);
    expect(await canReadArtifact(aId, "../../etc/passwd")).toBe(false);
  });

  it("artifacts by share link: only while the link is active, only for the shared workflow's last run", async () => {
    const link = await db().shareLink.create({ data: { id: "sl1", token: "tok-active-0123456789abcdef", workflowId: wf, createdBy: aId } });
    expect(await canReadArtifact(null, artifact, link.token)).toBe(true);
    expect(await canReadArtifact(bId, artifact, "tok-wrong")).toBe(false);
    await db().shareLink.update({ where: { id: "sl1" }, data: { revokedAt: new Date() } });
    expect(await canReadArtifact(null, artifact, link.token)).toBe(false);
    await db().shareLink.create({ data: { id: "sl2", token: "tok-expired-0123456789abcd", workflowId: wf, createdBy: aId, expiresAt: new Date(Date.now() - 1000) } });
    expect(await canReadArtifact(null, artifact, "tok-expired-0123456789abcd")).toBe(false);
    // A link to another workflow does not open this one's artifacts.
    const other = (await b.workflow.create({ document: { ...doc, name: "B's" } })).id;
    await db().shareLink.create({ data: { id: "sl3", token: "tok-other-0123456789abcdef", workflowId: other, createdBy: bId } });
    expect(await canReadArtifact(null, artifact, "tok-other-0123456789abcdef")).toBe(false);
  });

  it("without a user every data procedure is UNAUTHORIZED", async () => {
    const anon = caller(null);
    const calls: Promise<unknown>[] = [
      anon.workflow.list({}),
      anon.workflow.get({ id: wf }),
      anon.workflow.versions({ id: wf }),
      anon.workflow.create({ document: doc }),
      anon.workflow.save({ id: wf, baseVersion: 1, document: doc }),
      anon.workflow.rename({ id: wf, name: "x" }),
      anon.workflow.duplicate({ id: wf }),
      anon.workflow.trash({ id: wf }),
      anon.workflow.restore({ id: wf }),
      anon.workflow.deleteForever({ id: wf }),
      anon.workflow.createFromExample({ exampleId: "x" }),
      anon.workflow.check({ document: doc }),
      anon.run.start({ document: doc }),
      anon.run.cancel({ runId }),
      anon.run.move({ runId, direction: "up" }),
      anon.run.list({}),
      anon.run.get({ runId }),
      anon.run.runtime(),
      anon.provenance.fromMedia({ base64: "AAAA" }),
    ];
    for (const c of calls) expect(await code(c)).toBe("UNAUTHORIZED");
  });

  it("caps concurrent runs per user with TOO_MANY_REQUESTS and a clear message", async () => {
    const carol = (await createUser("carol", "carol-password")).id;
    const c = caller(carol);
    await db().run.createMany({ data: [0, 1].map((i) => ({ id: `carol-q${i}`, document: "{}", status: i ? "running" : "queued", ownerId: carol })) });
    const err = await c.run.start({ document: doc }).catch((e: unknown) => e as TRPCError);
    expect(err).toBeInstanceOf(TRPCError);
    expect((err as TRPCError).code).toBe("TOO_MANY_REQUESTS");
    expect((err as TRPCError).message).toMatch(/2 run\(s\) queued or running.*limit is 2/);
    // Other users are not affected by carol's runs; when one of hers ends she may start again.
    const other = (await b.run.start({ document: doc })).runId;
    await runManager().whenDone(other);
    await db().run.update({ where: { id: "carol-q0" }, data: { status: "finished" } });
    const started = (await c.run.start({ document: doc })).runId;
    expect((await runManager().whenDone(started)).type).toBe("finished");
  });

  it("parallel starts cannot slip past the cap", async () => {
    const dave = (await createUser("dave", "dave-password")).id;
    const d = caller(dave);
    await db().run.create({ data: { id: "dave-q0", document: "{}", status: "queued", ownerId: dave } });
    // A busy queue: start() records the run as queued and leaves it there (as while other runs execute).
    const manager = runManager();
    const realStart = manager.start.bind(manager);
    let n = 0;
    manager.start = async (input) => {
      const id = `dave-new-${n++}`;
      await new Promise((r) => setTimeout(r, 20));
      await db().run.create({ data: { id, document: JSON.stringify(input.document), status: "queued", ownerId: input.ownerId ?? "local" } });
      return id;
    };
    try {
      const results = await Promise.allSettled([d.run.start({ document: doc }), d.run.start({ document: doc }), d.run.start({ document: doc })]);
      expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected", "rejected"]);
      for (const r of results) if (r.status === "rejected") expect((r.reason as TRPCError).code).toBe("TOO_MANY_REQUESTS");
    } finally {
      manager.start = realStart;
    }
  });
});
