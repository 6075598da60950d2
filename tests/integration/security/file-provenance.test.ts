import { randomBytes } from "node:crypto";
import sharp from "sharp";
import { TRPCError } from "@trpc/server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

// Who may read a stored file, end to end through the real routes (upload, files) and the tRPC router,
// accounts on: access follows where a file came from, never a file id written into a document.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
delete process.env.STUDIO_ARTIFACTS;
const upload = await import("@/app/api/upload/route");
const files = await import("@/app/api/files/[id]/route");
const { appRouter } = await import("@/app/server/routers");
const { createSession, createUser } = await import("@/app/server/auth");
const { runManager } = await import("@/app/server/runs");

const BASE = "http://studio.test:3000";
const caller = (userId: string) => appRouter.createCaller({ origin: null, host: "studio.test", userId });
type Caller = ReturnType<typeof caller>;

async function uploadPng(cookie: string, color: string): Promise<string> {
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: color } }).png().toBuffer();
  const res = await upload.POST(new Request(`${BASE}/api/upload?kind=image&filename=${color.slice(1)}.png`, { method: "POST", body: new Uint8Array(png), headers: { host: "studio.test:3000", origin: BASE, cookie, "content-type": "image/png" } }));
  expect(res.status).toBe(200);
  return ((await res.json()) as { id: string }).id;
}

async function fetchStatus(id: string, opts: { cookie?: string; share?: string } = {}): Promise<number> {
  const url = `${BASE}/api/files/${id}${opts.share ? `?share=${encodeURIComponent(opts.share)}` : ""}`;
  const res = await files.GET(new Request(url, { headers: { host: "studio.test:3000", ...(opts.cookie ? { cookie: opts.cookie } : {}) } }), { params: Promise.resolve({ id }) });
  return res.status;
}

const imageDoc = (file: string, description = "") => ({
  schemaVersion: 2,
  name: "uses an image",
  description,
  nodes: [
    { id: "img", type: "input.image", typeVersion: 1, params: { file }, position: { x: 0, y: 0 } },
    { id: "show", type: "output.preview", typeVersion: 1, params: {}, position: { x: 300, y: 0 } },
  ],
  edges: [{ id: "e1", source: "img", sourceSocket: "image", target: "show", targetSocket: "value" }],
});

async function runToEnd(c: Caller, document: unknown, workflowId?: string, workflowVersion?: number): Promise<string> {
  const { runId } = await c.run.start({ document, ...(workflowId ? { workflowId, workflowVersion } : {}) });
  await runManager().whenDone(runId);
  return runId;
}

async function refusal(p: Promise<unknown>): Promise<TRPCError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(TRPCError);
  return err as TRPCError;
}

describe("file access follows provenance", () => {
  let alice: Caller, bob: Caller;
  let aliceCookie: string, bobCookie: string;
  let bobsImage: string;

  beforeAll(async () => {
    await runManager().ready;
    const a = await createUser("alice", "alice password");
    const b = await createUser("bob", "bob's password");
    alice = caller(a.id);
    bob = caller(b.id);
    aliceCookie = `studio_session=${(await createSession(a.id)).token}`;
    bobCookie = `studio_session=${(await createSession(b.id)).token}`;
    bobsImage = await uploadPng(bobCookie, "#c0ffee");
  });
  afterAll(() => runManager().runtime.close());

  it("the uploader reads an upload; another user does not, and 'not yours' looks exactly like 'does not exist'", async () => {
    expect(await fetchStatus(bobsImage, { cookie: bobCookie })).toBe(200);
    expect(await fetchStatus(bobsImage, { cookie: aliceCookie })).toBe(404);
    const nowhere = `${randomBytes(32).toString("hex")}.png`;
    expect(await fetchStatus(nowhere, { cookie: aliceCookie })).toBe(404);
  });

  it("writing another user's file id into your own workflow (description, a file param) opens nothing", async () => {
    const wf = await alice.workflow.create({ document: imageDoc(bobsImage, `see ${bobsImage}`) });
    await alice.workflow.save({ id: wf.id, baseVersion: wf.version, document: imageDoc(bobsImage, `again ${bobsImage}`) });
    expect(await fetchStatus(bobsImage, { cookie: aliceCookie })).toBe(404);
  });

  it("a run may not read a file its owner may not read: refused as if the file did not exist", async () => {
    const err = await refusal(alice.run.start({ document: imageDoc(bobsImage) }));
    expect(err.code).toBe("BAD_REQUEST");
    expect(err.message).toBe(`node "img": the file ${bobsImage} does not exist; upload it again`);
    const nowhere = `${randomBytes(32).toString("hex")}.png`;
    expect((await refusal(alice.run.start({ document: imageDoc(nowhere) }))).message).toBe(`node "img": the file ${nowhere} does not exist; upload it again`);
    expect(await fetchStatus(bobsImage, { cookie: aliceCookie })).toBe(404);
  });

  it("a Script that returns another user's file id as an 'image' output does not open it", async () => {
    const forge = {
      schemaVersion: 2,
      name: "forge",
      nodes: [
        { id: "s", type: "utility.script", typeVersion: 1, params: { code: `return { kind: "image", file: ${JSON.stringify(bobsImage)}, mime: "image/png", width: 8, height: 8 }` }, position: { x: 0, y: 0 } },
        { id: "show", type: "output.preview", typeVersion: 1, params: {}, position: { x: 300, y: 0 } },
      ],
      edges: [{ id: "e1", source: "s", sourceSocket: "result", target: "show", targetSocket: "value" }],
    };
    const runId = await runToEnd(alice, forge);
    const run = await alice.run.get({ runId });
    expect(run.status).toBe("finished");
    expect(JSON.stringify(run.nodes.find((n) => n.nodeId === "show")!.outputs)).toContain(bobsImage); // the id is in the outputs…
    expect(await fetchStatus(bobsImage, { cookie: aliceCookie })).toBe(404); // …and opens nothing
  });

  it("a share link opens the shared files only while it is active; copying their ids elsewhere keeps nothing open", async () => {
    const wf = await bob.workflow.create({ document: imageDoc(bobsImage) });
    await runToEnd(bob, imageDoc(bobsImage), wf.id, 1);
    const link = await bob.share.create({ workflowId: wf.id });
    expect(await fetchStatus(bobsImage, { share: link.token })).toBe(200);
    // Alice, who saw the link, writes the id into a workflow of her own…
    const mine = await alice.workflow.create({ document: imageDoc(bobsImage, `copied from ${link.path}`) });
    expect(mine.version).toBe(1);
    await bob.share.revoke({ id: link.id });
    // …the link is revoked, and nothing she typed keeps the file open.
    expect(await fetchStatus(bobsImage, { share: link.token })).toBe(404);
    expect(await fetchStatus(bobsImage, { cookie: aliceCookie })).toBe(404);
  });

  it("a pinned share shows the last finished run of its version and its files, never a later version's", async () => {
    const green = await uploadPng(bobCookie, "#00ff00");
    const red = await uploadPng(bobCookie, "#ff0000");
    const wf = await bob.workflow.create({ document: imageDoc(green) });
    const v1Run = await runToEnd(bob, imageDoc(green), wf.id, 1);
    await bob.workflow.save({ id: wf.id, baseVersion: 1, document: imageDoc(red) });
    const v2Run = await runToEnd(bob, imageDoc(red), wf.id, 2);
    const pinned = await bob.share.create({ workflowId: wf.id, version: 1 });
    const latest = await bob.share.create({ workflowId: wf.id });

    const shownPinned = await alice.share.resolve({ token: pinned.token });
    expect(shownPinned.version).toBe(1);
    expect(shownPinned.lastRun?.id).toBe(v1Run);
    expect(JSON.stringify(shownPinned.lastRun)).not.toContain(red);
    expect(await fetchStatus(green, { share: pinned.token })).toBe(200);
    expect(await fetchStatus(red, { share: pinned.token })).toBe(404);

    const shownLatest = await alice.share.resolve({ token: latest.token });
    expect(shownLatest.lastRun?.id).toBe(v2Run);
    expect(await fetchStatus(red, { share: latest.token })).toBe(200);

    // A version with no finished run of its own shows none.
    await bob.workflow.save({ id: wf.id, baseVersion: 2, document: imageDoc(green, "v3") });
    const pinned3 = await bob.share.create({ workflowId: wf.id, version: 3 });
    expect((await alice.share.resolve({ token: pinned3.token })).lastRun).toBeNull();
  });

  it("the owner keeps reading everything of their own: uploads, run inputs and outputs, files of their versions", async () => {
    for (const id of [bobsImage]) expect(await fetchStatus(id, { cookie: bobCookie })).toBe(200);
    // A fork made through an active link may use the shared files (the link allowed reading them).
    const wf = await bob.workflow.create({ document: imageDoc(bobsImage) });
    const link = await bob.share.create({ workflowId: wf.id });
    const fork = await alice.share.fork({ token: link.token });
    expect((await alice.workflow.get({ id: fork.id })).document.nodes[0]!.params.file).toBe(bobsImage);
    expect(await fetchStatus(bobsImage, { cookie: aliceCookie })).toBe(200);
  });
});
