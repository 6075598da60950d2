import { randomBytes } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { emptyWorkflow, type Workflow } from "@/engine/workflow/schema";
import { freshDataDir } from "./fresh-db";

// History and share links through the tRPC caller, against a real SQLite database.
process.env.STUDIO_DATA_DIR = freshDataDir();
const { db } = await import("@/app/server/db");
const { appRouter } = await import("@/app/server/routers");
const { NOT_SHARED } = await import("@/app/server/shares");

// "local" is the owner on a single-user install; "bob" is a second user; null is nobody logged in.
const alice = appRouter.createCaller({ origin: null, host: null, userId: "local" });
const bob = appRouter.createCaller({ origin: null, host: null, userId: "bob" });
const anonymous = appRouter.createCaller({ origin: null, host: null, userId: null });

function textDoc(text: string): Workflow {
  return {
    ...emptyWorkflow("Greeting"),
    nodes: [
      { id: "t", type: "input.text", typeVersion: 1, params: { text }, position: { x: 0, y: 0 } },
      { id: "tpl", type: "text.template", typeVersion: 1, params: { template: "{a}!" }, position: { x: 300, y: 0 } },
    ],
    edges: [{ id: "e1", source: "t", sourceSocket: "text", target: "tpl", targetSocket: "a" }],
    notes: [{ id: "n1", text: "# Read me\nA greeting.", position: { x: 0, y: -200 } }],
  };
}

async function rejects(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code: string; message: string };
    return { code: e.code, message: e.message };
  }
  throw new Error("expected a rejection");
}

async function addFinishedRun(workflowId: string, version: number, text: string, at: Date, status = "finished") {
  const id = randomBytes(6).toString("hex");
  await db().run.create({ data: { id, workflowId, workflowVersion: version, document: "{}", status, ownerId: "local", createdAt: at, finishedAt: at } });
  await db().nodeRun.create({
    data: { id: `${id}-n`, runId: id, nodeId: "tpl", nodeType: "text.template", status: "done", outputs: JSON.stringify({ text: { type: "text", headline: text, text } }) },
  });
  await db().nodeRun.create({
    data: { id: `${id}-i`, runId: id, nodeId: "t", nodeType: "input.text", status: "done", outputs: JSON.stringify({ image: { type: "image", file: `${id}.png` } }) },
  });
  return id;
}

describe("share links", () => {
  let wf: string;
  beforeAll(async () => {
    ({ id: wf } = await alice.workflow.create({ document: textDoc("hello") }));
    await addFinishedRun(wf, 1, "hello!", new Date(Date.now() - 60_000));
    await addFinishedRun(wf, 1, "newest but failed", new Date(), "failed");
  });

  it("creates an unguessable link; anyone with it sees the graph, notes and the last finished run's outputs", async () => {
    const a = await alice.share.create({ workflowId: wf });
    const b = await alice.share.create({ workflowId: wf });
    expect(a.token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes
    expect(Buffer.from(a.token, "base64url").length).toBe(32);
    expect(a.token).not.toBe(b.token);
    expect(a.path).toBe(`/s/${a.token}`);
    expect(a.status).toBe("active");

    const shared = await anonymous.share.resolve({ token: a.token });
    expect(shared.name).toBe("Greeting");
    expect(shared.version).toBe(1);
    expect(shared.document?.nodes.map((n) => n.id)).toEqual(["t", "tpl"]);
    expect(shared.notes[0]?.text).toContain("Read me");
    expect(shared.problems).toEqual([]);
    expect(shared.readError).toBeNull();
    const outputs = Object.fromEntries(shared.lastRun!.nodes.map((n) => [n.nodeId, n.outputs]));
    expect(outputs.tpl).toEqual({ text: { type: "text", headline: "hello!", text: "hello!" } }); // not the newer failed run
    expect((outputs.t as { image: { file: string } }).image.file).toMatch(/\.png$/);

    const listed = await alice.share.list({ workflowId: wf });
    expect(listed.map((l) => l.id).sort()).toEqual([a.id, b.id].sort());
  });

  it("a guessed, malformed, revoked or expired token is the same NOT_FOUND", async () => {
    const guessed = await rejects(anonymous.share.resolve({ token: randomBytes(32).toString("base64url") }));
    expect(guessed).toEqual({ code: "NOT_FOUND", message: NOT_SHARED });
    expect(await rejects(anonymous.share.resolve({ token: "../../etc" }))).toEqual(guessed);
    expect(await rejects(anonymous.share.resolve({ token: "" }))).toEqual(guessed);

    const link = await alice.share.create({ workflowId: wf });
    await anonymous.share.resolve({ token: link.token });
    const revoked = await alice.share.revoke({ id: link.id });
    expect(revoked.status).toBe("revoked");
    expect(await rejects(anonymous.share.resolve({ token: link.token }))).toEqual(guessed);
    expect(await rejects(alice.share.resolve({ token: link.token }))).toEqual(guessed); // even for the owner
    expect(await rejects(anonymous.share.fork({ token: link.token }))).toMatchObject({ code: "UNAUTHORIZED" });
    expect(await rejects(bob.share.fork({ token: link.token }))).toEqual(guessed);

    const soon = await alice.share.create({ workflowId: wf, expiresAt: new Date(Date.now() + 1200).toISOString() });
    expect((await anonymous.share.resolve({ token: soon.token })).expiresAt).toBe(soon.expiresAt);
    await new Promise((r) => setTimeout(r, 1300));
    expect(await rejects(anonymous.share.resolve({ token: soon.token }))).toEqual(guessed);
    expect((await alice.share.list({ workflowId: wf })).find((l) => l.id === soon.id)?.status).toBe("expired");

    expect(await rejects(alice.share.create({ workflowId: wf, expiresAt: new Date(Date.now() - 1000).toISOString() }))).toMatchObject({ code: "BAD_REQUEST" });
  });

  it("another user's private workflow cannot be reached: no link to guess, and no listing, sharing or revoking it", async () => {
    const { id: privateId } = await alice.workflow.create({ document: textDoc("secret") });
    // 200 guesses at random tokens; none finds anything.
    for (let i = 0; i < 200; i++) {
      expect((await rejects(anonymous.share.resolve({ token: randomBytes(32).toString("base64url") }))).code).toBe("NOT_FOUND");
    }
    const link = await alice.share.create({ workflowId: wf });
    expect(await rejects(bob.share.list({ workflowId: wf }))).toMatchObject({ code: "NOT_FOUND" });
    expect(await rejects(bob.share.create({ workflowId: privateId }))).toMatchObject({ code: "NOT_FOUND" });
    expect(await rejects(bob.share.revoke({ id: link.id }))).toMatchObject({ code: "NOT_FOUND" });
    expect(await rejects(bob.history.list({ workflowId: wf }))).toMatchObject({ code: "NOT_FOUND" });
    expect(await rejects(bob.history.restore({ workflowId: wf, version: 1 }))).toMatchObject({ code: "NOT_FOUND" });
    expect(await rejects(anonymous.share.list({ workflowId: wf }))).toMatchObject({ code: "UNAUTHORIZED" });
    expect((await anonymous.share.resolve({ token: link.token })).name).toBe("Greeting"); // bob's attempts left it alone
  });

  it("fork copies the shared workflow into the viewer's workspace and leaves the original unchanged", async () => {
    const link = await alice.share.create({ workflowId: wf });
    const before = await db().workflowVersion.findMany({ where: { workflowId: wf }, orderBy: { version: "asc" } });
    const fork = await bob.share.fork({ token: link.token });
    expect(fork.id).not.toBe(wf);
    const row = await db().workflow.findUniqueOrThrow({ where: { id: fork.id } });
    expect(row.ownerId).toBe("bob");
    expect(row.name).toBe("Greeting (fork)");
    const history = await bob.history.list({ workflowId: fork.id });
    expect(history.versions).toHaveLength(1);
    expect(history.versions[0]).toMatchObject({ version: 1, author: "bob" });
    expect(history.versions[0]!.message).toContain("Forked from a shared link");
    const forked = JSON.parse((await db().workflowVersion.findFirstOrThrow({ where: { workflowId: fork.id } })).document) as Workflow;
    expect(forked.nodes).toEqual((await anonymous.share.resolve({ token: link.token })).document!.nodes);
    expect(forked.notes).toHaveLength(1);
    // The original: same versions, same documents, same owner.
    expect(await db().workflowVersion.findMany({ where: { workflowId: wf }, orderBy: { version: "asc" } })).toEqual(before);
    expect((await db().workflow.findUniqueOrThrow({ where: { id: wf } })).ownerId).toBe("local");
    // Alice cannot see bob's fork.
    expect(await rejects(alice.history.list({ workflowId: fork.id }))).toMatchObject({ code: "NOT_FOUND" });
  });

  it("a link follows the latest version unless pinned; a trashed workflow is no longer shared", async () => {
    const { id } = await alice.workflow.create({ document: textDoc("v1") });
    const follow = await alice.share.create({ workflowId: id });
    const pinned = await alice.share.create({ workflowId: id, version: 1 });
    await alice.workflow.save({ id, baseVersion: 1, document: textDoc("v2"), message: "second" });
    expect((await anonymous.share.resolve({ token: follow.token })).document!.nodes[0]!.params.text).toBe("v2");
    const p = await anonymous.share.resolve({ token: pinned.token });
    expect(p.document!.nodes[0]!.params.text).toBe("v1");
    expect(p.pinned).toBe(true);
    expect(await rejects(alice.share.create({ workflowId: id, version: 9 }))).toMatchObject({ code: "NOT_FOUND" });
    await alice.workflow.trash({ id });
    expect(await rejects(anonymous.share.resolve({ token: follow.token }))).toMatchObject({ code: "NOT_FOUND", message: NOT_SHARED });
  });

  it("a run of unsaved edits is not the version's: a link pinned to it (or to none) does not show its outputs", async () => {
    const { id } = await alice.workflow.create({ document: textDoc("public text") });
    const pinned = await alice.share.create({ workflowId: id, version: 1 });
    const latest = await alice.share.create({ workflowId: id });
    const finished = async (runId: string) => {
      for (let i = 0; i < 600; i++) {
        const r = await alice.run.get({ runId });
        if (r.status === "finished") return r;
        if (r.status === "failed" || r.status === "cancelled") throw new Error(`run ${runId}: ${r.status}`);
        await new Promise((ok) => setTimeout(ok, 50));
      }
      throw new Error(`run ${runId} did not finish`);
    };
    // the saved version as it is, its nodes moved (layout is not what runs): a run of version 1
    const moved = textDoc("public text");
    moved.nodes = moved.nodes.map((n) => ({ ...n, position: { x: n.position.x + 40, y: 7 } }));
    const saved = await finished((await alice.run.start({ document: moved, workflowId: id, workflowVersion: 1 })).runId);
    expect(saved.workflowVersion).toBe(1);
    // then an unsaved edit (a private text in place of the public one), run from the editor still based on version 1
    const edited = await finished((await alice.run.start({ document: textDoc("PRIVATE draft"), workflowId: id, workflowVersion: 1 })).runId);
    expect(edited.workflowVersion).toBeNull();
    for (const token of [pinned.token, latest.token]) {
      const shared = await anonymous.share.resolve({ token });
      expect(shared.lastRun?.id).toBe(saved.id);
      expect(JSON.stringify(shared)).not.toContain("PRIVATE");
    }
  });

  it("a shared document is validated like an import: problems are listed, an unreadable one never crashes", async () => {
    const broken = textDoc("x");
    broken.nodes.push({ id: "mystery", type: "no.such.node", typeVersion: 1, params: {}, position: { x: 0, y: 300 } });
    const { id } = await alice.workflow.create({ document: broken });
    const link = await alice.share.create({ workflowId: id });
    const shared = await anonymous.share.resolve({ token: link.token });
    expect(shared.problems.some((p) => p.code === "unknown-node-type" && p.nodeId === "mystery")).toBe(true);

    // A stored version that no schema can read (written behind the app's back).
    await db().workflowVersion.create({ data: { id: "garbage-v2", workflowId: id, version: 2, schemaVersion: 99, document: '{"schemaVersion": 99, "nodes": 5}' } });
    await db().workflow.update({ where: { id }, data: { latestVersion: 2 } });
    const unreadable = await anonymous.share.resolve({ token: link.token });
    expect(unreadable.document).toBeNull();
    expect(unreadable.readError).toBeTruthy();
    expect(unreadable.lastRun).toBeNull();
    expect(await rejects(bob.share.fork({ token: link.token }))).toMatchObject({ code: "UNPROCESSABLE_CONTENT" });
  });
});

describe("version history", () => {
  it("lists versions, diffs two, and restore adds a new version leaving the old ones intact", async () => {
    const { id } = await alice.workflow.create({ document: textDoc("one"), message: "first" });
    const v2doc = textDoc("two");
    v2doc.nodes[1]!.position = { x: 400, y: 50 };
    v2doc.nodes.push({ id: "extra", type: "input.text", typeVersion: 1, params: { text: "more" }, position: { x: 0, y: 200 } });
    await alice.workflow.save({ id, baseVersion: 1, document: v2doc, message: "changed the text" });

    const listed = await alice.history.list({ workflowId: id });
    expect(listed.latestVersion).toBe(2);
    expect(listed.versions.map((v) => [v.version, v.message])).toEqual([[2, "changed the text"], [1, "first"]]);
    expect(Date.parse(listed.versions[0]!.createdAt)).toBeGreaterThan(0);

    const d = await alice.history.diff({ workflowId: id, from: 1, to: 2 });
    expect(d.diff.nodes.added.map((n) => n.id)).toEqual(["extra"]);
    const changed = Object.fromEntries(d.diff.nodes.changed.map((c) => [c.id, c]));
    expect(changed.t!.params).toEqual([{ key: "text", before: "one", after: "two" }]);
    expect(changed.t!.moved).toBe(false);
    expect(changed.tpl!.moved).toBe(true);
    expect(changed.tpl!.params).toEqual([]);
    expect(d.lines).toContain('~ node t: text "one" → "two"');

    const before = await db().workflowVersion.findMany({ where: { workflowId: id }, orderBy: { version: "asc" } });
    const restored = await alice.history.restore({ workflowId: id, version: 1 });
    expect(restored.version).toBe(3);
    const after = await db().workflowVersion.findMany({ where: { workflowId: id }, orderBy: { version: "asc" } });
    expect(after.slice(0, 2)).toEqual(before); // never rewritten
    expect(after[2]).toMatchObject({ version: 3, message: "Restored version 1", author: "local" });
    expect(JSON.parse(after[2]!.document)).toEqual(JSON.parse(before[0]!.document));
    const back = await alice.history.diff({ workflowId: id, from: 1, to: 3 });
    expect(back.lines).toEqual([]);
    const got = await alice.workflow.get({ id });
    expect(got.version).toBe(3);
    expect(got.document.nodes[0]!.params.text).toBe("one");

    expect(await rejects(alice.history.restore({ workflowId: id, version: 7 }))).toMatchObject({ code: "NOT_FOUND" });
    expect(await rejects(anonymous.history.list({ workflowId: id }))).toMatchObject({ code: "UNAUTHORIZED" });
  });
});
