import { randomBytes } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

// GET /api/files/<id>?share=<token> (the route handler itself, accounts on): a share link opens the files of the
// run its page shows, and nothing else of the owner's.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
delete process.env.STUDIO_ARTIFACTS;
const files = await import("@/app/api/files/[id]/route");
const { appRouter } = await import("@/app/server/routers");
const { db } = await import("@/app/server/db");
const { createUser } = await import("@/app/server/auth");
const { canReadArtifact, grantFiles, recordUploader } = await import("@/app/server/access");
const { fileStorage } = await import("@/app/server/storage");

const doc = {
  schemaVersion: 2,
  name: "Shared with outputs",
  nodes: [{ id: "img", type: "input.image", typeVersion: 1, params: {}, position: { x: 0, y: 0 } }],
  edges: [],
};

function fetchFile(id: string, share?: string, range?: string): Promise<Response> {
  const url = `http://studio.test:3000/api/files/${id}${share === undefined ? "" : `?share=${encodeURIComponent(share)}`}`;
  return files.GET(new Request(url, { headers: { host: "studio.test:3000", ...(range ? { range } : {}) } }), { params: Promise.resolve({ id }) });
}

/** A finished run of the workflow's `version`, created at `at`, whose node "img" wrote `file` (granted as the run host does). */
async function finishedRun(workflowId: string, ownerId: string, at: Date, file: string, version = 1): Promise<void> {
  const id = randomBytes(8).toString("hex");
  await db().run.create({ data: { id, workflowId, workflowVersion: version, ownerId, document: JSON.stringify(doc), status: "finished", createdAt: at, finishedAt: at } });
  await db().nodeRun.create({ data: { id: `${id}-img`, runId: id, nodeId: "img", nodeType: "input.image", status: "done", outputs: JSON.stringify({ image: { type: "image", file } }) } });
  await grantFiles([file], { runId: id });
}

describe("files behind a share link", () => {
  const bytes = { older: Buffer.from("older run's image"), last: Buffer.from("last run's image"), upload: Buffer.from("an upload never used") };
  let owner: string;
  let token: string;
  let olderOutput: string;
  let lastOutput: string;
  let upload: string;

  beforeAll(async () => {
    owner = (await createUser("owner", "owner-password")).id;
    const wf = (await appRouter.createCaller({ origin: null, host: "studio.test", userId: owner }).workflow.create({ document: doc })).id;
    const storage = fileStorage();
    olderOutput = await storage.write(bytes.older, "png");
    lastOutput = await storage.write(bytes.last, "png");
    upload = await storage.write(bytes.upload, "png");
    await recordUploader(owner, upload);
    await finishedRun(wf, owner, new Date(Date.now() - 60_000), olderOutput);
    await finishedRun(wf, owner, new Date(), lastOutput);
    token = (await appRouter.createCaller({ origin: null, host: "studio.test", userId: owner }).share.create({ workflowId: wf })).token;
  });

  it("serves an output of the run the shared page shows, with the token only", async () => {
    const res = await fetchFile(lastOutput, token);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(bytes.last);
    expect((await fetchFile(lastOutput)).status).toBe(404);
    expect((await fetchFile(lastOutput, randomBytes(32).toString("base64url"))).status).toBe(404);
  });

  it("streams the file with its length, and single byte ranges (206) for media seeking; 416 past the end", async () => {
    const whole = await fetchFile(lastOutput, token);
    expect(whole.headers.get("content-length")).toBe(String(bytes.last.length));
    expect(whole.headers.get("accept-ranges")).toBe("bytes");
    expect(Buffer.from(await whole.arrayBuffer())).toEqual(bytes.last);
    const part = await fetchFile(lastOutput, token, "bytes=4-8");
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 4-8/${bytes.last.length}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.last.subarray(4, 9));
    const tail = await fetchFile(lastOutput, token, "bytes=-5");
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(bytes.last.subarray(-5));
    const past = await fetchFile(lastOutput, token, `bytes=${bytes.last.length}-`);
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe(`bytes */${bytes.last.length}`);
    // a range does not open what the token does not
    expect((await fetchFile(olderOutput, token, "bytes=0-3")).status).toBe(404);
  });

  it("a valid token does not open files outside the shared run: an older run's output, an unused upload", async () => {
    for (const id of [olderOutput, upload]) {
      // Stored, and the owner's to read...
      expect(await fileStorage().exists(id)).toBe(true);
      expect(await canReadArtifact(owner, id)).toBe(true);
      // ...but not the link's.
      const res = await fetchFile(id, token);
      expect(res.status, id).toBe(404);
      // The same answer as for a file that does not exist.
      expect(await res.json()).toEqual({ error: `file ${id} does not exist` });
    }
  });
});

describe("a link to the latest version", () => {
  it("shows runs of what its version computes: not an older version's that computed something else, nor its files", async () => {
    const owner = (await createUser("editor", "editor-password")).id;
    const caller = appRouter.createCaller({ origin: null, host: "studio.test", userId: owner });
    const guest = appRouter.createCaller({ origin: null, host: "studio.test", userId: null });
    const wf = (await caller.workflow.create({ document: doc })).id;
    const privateOutput = await fileStorage().write(Buffer.from("v1's private image"), "png");
    await finishedRun(wf, owner, new Date(), privateOutput, 1);
    const token = (await caller.share.create({ workflowId: wf })).token;
    // v2 renames the workflow and moves the node: it computes what v1 did, so v1's run is still the one shown
    await caller.workflow.save({ id: wf, baseVersion: 1, document: { ...doc, name: "renamed", nodes: [{ ...doc.nodes[0]!, position: { x: 50, y: 50 } }] }, message: "v2" });
    expect((await guest.share.resolve({ token })).lastRun?.workflowVersion).toBe(1);
    expect((await fetchFile(privateOutput, token)).status).toBe(200);
    // v3 computes something else (the owner replaced the graph): v1's run and its files leave the link
    const changed = { ...doc, nodes: [...doc.nodes, { id: "txt", type: "input.text", typeVersion: 1, params: { text: "public" }, position: { x: 0, y: 200 } }] };
    await caller.workflow.save({ id: wf, baseVersion: 2, document: changed, message: "v3" });
    const shared = await guest.share.resolve({ token });
    expect(shared.version).toBe(3);
    expect(shared.lastRun).toBeNull();
    expect((await fetchFile(privateOutput, token)).status).toBe(404);
    // a link pinned to version 2 shows the run that computed it, as before
    const pinned = (await caller.share.create({ workflowId: wf, version: 2 })).token;
    expect((await guest.share.resolve({ token: pinned })).lastRun?.workflowVersion).toBe(1);
    expect((await fetchFile(privateOutput, pinned)).status).toBe(200);
  });
});

describe("files a link serves carry no unsaved words", () => {
  it("a run labelled with a version (same computation) embeds the document without its name, description, notes or labels", async () => {
    const { runManager } = await import("@/app/server/runs");
    const { readWorkflowFromWav } = await import("@/engine/provenance");
    const owner = (await createUser("speaker", "speaker-password")).id;
    const caller = appRouter.createCaller({ origin: null, host: "studio.test", userId: owner });
    const guest = appRouter.createCaller({ origin: null, host: "studio.test", userId: null });
    const speech = {
      schemaVersion: 2,
      name: "speech",
      nodes: [
        { id: "say", type: "input.text", typeVersion: 1, params: { text: "hi" }, position: { x: 0, y: 0 } },
        { id: "tts", type: "generate.tts", typeVersion: 1, params: { maxSeconds: 0.2 }, position: { x: 300, y: 0 } },
      ],
      edges: [{ id: "e1", source: "say", sourceSocket: "text", target: "tts", targetSocket: "text" }],
    };
    const wf = await caller.workflow.create({ document: speech });
    // the owner types words and runs without saving: the run computes version 1, so it is labelled with it
    const unsaved = {
      ...speech,
      name: "SECRET-NAME",
      description: "SECRET-DESCRIPTION",
      notes: [{ id: "n1", text: "SECRET-NOTE", position: { x: 0, y: 300 } }],
      nodes: speech.nodes.map((n) => ({ ...n, label: "SECRET-LABEL" })),
    };
    const { runId } = await caller.run.start({ document: unsaved, workflowId: wf.id, workflowVersion: wf.version });
    await runManager().whenDone(runId);
    const token = (await caller.share.create({ workflowId: wf.id })).token;
    const shared = await guest.share.resolve({ token });
    expect(shared.lastRun?.id).toBe(runId);
    const tts = shared.lastRun!.nodes.find((n) => n.nodeId === "tts")!;
    const file = (tts.outputs as { speech: { file: string } }).speech.file;
    const res = await fetchFile(file, token);
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(Buffer.from(bytes).toString("latin1")).not.toContain("SECRET");
    // the file still carries what it computes: dropping it into the editor restores the graph
    const embedded = readWorkflowFromWav(bytes) as typeof speech;
    expect(embedded.nodes.map((n) => [n.id, n.type, n.params])).toEqual(speech.nodes.map((n) => [n.id, n.type, n.params]));
    expect(embedded.edges).toEqual(speech.edges);
  }, 120_000);
});
