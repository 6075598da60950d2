import { randomBytes } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

// GET /api/v1/runs/{run}/nodes/{node}/{trace|aggregate} (the route handler, accounts on) reads the stored file its
// node's outputs name. Those outputs are not trusted: a Script node's JSON result can claim to be a routing report
// with any file id in it. The route serves a file only when the run's owner may read it (a file their run wrote, an
// upload of theirs), so a file id seen elsewhere (a shared page, an exported workflow) does not open another user's file.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
const exportRoute = await import("@/app/api/v1/runs/[runId]/nodes/[nodeId]/[kind]/route");
const { db } = await import("@/app/server/db");
const { createUser } = await import("@/app/server/auth");
const { createToken } = await import("@/app/server/tokens");
const { grantFiles, recordUploader } = await import("@/app/server/access");
const { fileStorage } = await import("@/app/server/storage");

const doc = { schemaVersion: 2, name: "script", nodes: [{ id: "s", type: "utility.script", typeVersion: 1, params: {}, position: { x: 0, y: 0 } }], edges: [] };

/** A finished run of `ownerId` whose node "s" output `outputs` (as a Script node may: any JSON), granted `granted`. */
async function runWithOutputs(ownerId: string, outputs: unknown, granted: string[] = []): Promise<string> {
  const id = randomBytes(8).toString("hex");
  await db().run.create({ data: { id, ownerId, document: JSON.stringify(doc), status: "finished", finishedAt: new Date() } });
  await db().nodeRun.create({ data: { id: `${id}-s`, runId: id, nodeId: "s", nodeType: "utility.script", status: "done", outputs: JSON.stringify(outputs) } });
  await grantFiles(granted, { runId: id });
  return id;
}

function download(token: string, runId: string, kind: "trace" | "aggregate", format = "json"): Promise<Response> {
  const url = `http://studio.test:3000/api/v1/runs/${runId}/nodes/s/${kind}?format=${format}`;
  return exportRoute.GET(new Request(url, { headers: { host: "studio.test:3000", authorization: `Bearer ${token}` } }), { params: Promise.resolve({ runId, nodeId: "s", kind }) });
}

describe("trace and aggregate exports serve only files the run's owner may read", () => {
  const secret = Buffer.from('{"kind":"victim","text":"a private upload"}');
  let victimFile: string;
  let ownFile: string;
  let malloryToken: string;

  beforeAll(async () => {
    const victim = await createUser("victim", "victim-password");
    const mallory = await createUser("mallory", "mallory-password");
    malloryToken = (await createToken(mallory.id, "cli")).token;
    victimFile = await fileStorage().write(secret, "json");
    await recordUploader(victim.id, victimFile);
    ownFile = await fileStorage().write(Buffer.from('{"kind":"mine"}'), "json");
    await recordUploader(mallory.id, ownFile);
  });

  it("a forged routing report naming another user's file: 404, the bytes never leave", async () => {
    const me = (await db().user.findUnique({ where: { name: "mallory" } }))!.id;
    const trace = await runWithOutputs(me, { result: { kind: "routing-report", model: "m", traceFile: victimFile, tokens: 1, layers: 1 } });
    const aggregate = await runWithOutputs(me, { result: { type: "routing-aggregate", file: victimFile, csvFile: victimFile } });
    for (const [runId, kind] of [[trace, "trace"], [aggregate, "aggregate"]] as const) {
      for (const format of ["json", "csv"]) {
        const res = await download(malloryToken, runId, kind, format);
        expect(res.status, `${kind} ${format}`).toBe(404);
        const body = Buffer.from(await res.arrayBuffer()).toString("utf8");
        expect(body).not.toContain("a private upload");
      }
    }
  });

  it("the owner's own files export as before (a file the run was granted, an upload of theirs)", async () => {
    const me = (await db().user.findUnique({ where: { name: "mallory" } }))!.id;
    const written = await fileStorage().write(Buffer.from('{"kind":"written by the run"}'), "json");
    const byRun = await runWithOutputs(me, { result: { kind: "routing-report", traceFile: written } }, [written]);
    const res = await download(malloryToken, byRun, "trace");
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).toString("utf8")).toBe('{"kind":"written by the run"}');
    const upload = await runWithOutputs(me, { result: { kind: "routing-report", traceFile: ownFile } });
    expect((await download(malloryToken, upload, "trace")).status).toBe(200);
  });

  it("a file of another kind is not a trace, even the owner's own: a WAV upload named as one was read and parsed whole per GET", async () => {
    const me = (await db().user.findUnique({ where: { name: "mallory" } }))!.id;
    const wav = await fileStorage().write(Buffer.from("RIFF....WAVEfmt "), "wav");
    await recordUploader(me, wav);
    const trace = await runWithOutputs(me, { result: { kind: "routing-report", model: "m", traceFile: wav, tokens: 1, layers: 1 } });
    const aggregate = await runWithOutputs(me, { result: { type: "routing-aggregate", file: ownFile, csvFile: wav } });
    for (const [runId, kind] of [[trace, "trace"], [aggregate, "aggregate"]] as const) {
      for (const format of ["json", "csv"]) {
        const res = await download(malloryToken, runId, kind, format);
        expect(res.status, `${kind} ${format}`).toBe(404);
        expect(await res.text()).toContain("which is not a stored");
      }
    }
  });
});
