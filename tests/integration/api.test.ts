import { beforeAll, describe, expect, it, vi } from "vitest";
import { freshDataDir } from "./fresh-db";

// The HTTP API's route handlers with real Requests against a real database and engine, accounts on:
// personal API tokens (hashed, scoped, revocable), a run driven with a token only, the OpenAPI document.
// (tests/e2e/api.spec.ts drives the same through the production server with fetch.)
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
process.env.STUDIO_EP = "cpu";
const { db } = await import("@/app/server/db");
const { createUser } = await import("@/app/server/auth");
const { createWorkflowFor } = await import("@/app/server/workflows");
const { main } = await import("@/app/server/cli");
const { EXAMPLES } = await import("@/app/examples");
const { decodeSafetensors } = await import("@/engine/safetensors");
const rest = await import("@/app/api/v1/[...trpc]/route");
const events = await import("@/app/api/v1/runs/[runId]/events/route");
const exportRoute = await import("@/app/api/v1/runs/[runId]/nodes/[nodeId]/[kind]/route");
const openapi = await import("@/app/api/v1/openapi.json/route");
const files = await import("@/app/api/files/[id]/route");

const BASE = "http://studio.test:3000";
const call = (method: string, path: string, token?: string, body?: unknown) =>
  new Request(`${BASE}${path}`, { method, headers: { host: "studio.test:3000", ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
const api = (method: "GET" | "POST", path: string, token?: string, body?: unknown) => (method === "GET" ? rest.GET : rest.POST)(call(method, `/api/v1${path}`, token, body));

async function cliOut(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "", err = "";
  const log = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void (out += `${a.join(" ")}\n`));
  const error = vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void (err += `${a.join(" ")}\n`));
  try {
    return { code: await main(argv), out, err };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

const example = EXAMPLES.find((e) => e.id === "moe-llm-routing")!.document;
let alice: { id: string };
let token: string;
let workflowId: string;

beforeAll(async () => {
  alice = await createUser("alice", "alice-password");
  await createUser("bob", "bob-password");
  workflowId = (await createWorkflowFor(alice.id, example)).id;
});

describe("personal API tokens", () => {
  it("cli token add prints the token once; the database keeps its SHA-256 and prefix only", async () => {
    const r = await cliOut("token", "add", "notebook", "--user", "alice");
    expect(r.code, r.err).toBe(0);
    token = r.out.trim();
    expect(token).toMatch(/^mst_[A-Za-z0-9_-]{43}$/);
    const row = (await db().apiToken.findFirst({ where: { ownerId: alice.id } }))!;
    expect(JSON.stringify(row)).not.toContain(token.slice(4));
    expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(row.prefix).toBe(token.slice(0, 10));
    expect((await cliOut("token", "add", "notebook", "--user", "alice")).err).toContain('already have a token named "notebook"');
    expect((await cliOut("token", "add", "x")).err).toContain("say whose token with --user");
    const list = await cliOut("token", "list", "--user", "alice");
    expect(list.out).toContain(`${token.slice(0, 10)}…  notebook`);
    expect(list.out).toContain("last used never");
  });

  it("without a token, with a wrong or malformed one: 401; with its token: 200", async () => {
    expect((await api("GET", "/workflows")).status).toBe(401);
    expect((await api("GET", "/workflows", `mst_${"A".repeat(43)}`)).status).toBe(401);
    expect((await api("GET", "/workflows", "not-a-token")).status).toBe(401);
    const ok = await api("GET", "/workflows", token);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual([expect.objectContaining({ id: workflowId, name: example.name, latestVersion: 1 })]);
  });

  it("drives a run with the token only: start with param overrides, follow the SSE events, read status and outputs, download the trace", async () => {
    const started = await api("POST", "/runs", token, { workflowId, params: [{ nodeId: "llm", param: "maxNewTokens", value: 2 }, { nodeId: "prompt", param: "text", value: "Hello API" }] });
    expect(started.status, await started.clone().text()).toBe(200);
    const { runId } = (await started.json()) as { runId: string };
    const sse = await events.GET(call("GET", `/api/v1/runs/${runId}/events`, token), { params: Promise.resolve({ runId }) });
    expect(sse.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const text = await sse.text(); // ends with the terminal event
    const seen = text.split("\n\n").filter(Boolean).map((f) => JSON.parse(f.replace(/^data: /, "")) as { type: string; nodeId?: string });
    expect(seen[0]!.type).toBe("queued");
    expect(seen.at(-1)!.type).toBe("finished");
    expect(seen.filter((e) => e.type === "node-done").map((e) => e.nodeId).sort()).toEqual(["answer", "llm", "prompt", "routing"]);
    const status = (await (await api("GET", `/runs/${runId}`, token)).json()) as { status: string; nodes: { nodeId: string; outputs: Record<string, { headline?: string }> | null }[] };
    expect(status.status).toBe("finished");
    const run = await db().run.findUnique({ where: { id: runId } });
    expect(JSON.parse(run!.document).nodes.find((n: { id: string }) => n.id === "llm").params.maxNewTokens).toBe(2);
    expect(status.nodes.find((n) => n.nodeId === "routing")!.outputs!.report!.headline).toMatch(/^routing of \d+ tokens × 8 layers$/);
    const download = (format: string) => exportRoute.GET(call("GET", `/api/v1/runs/${runId}/nodes/routing/trace?format=${format}`, token), { params: Promise.resolve({ runId, nodeId: "routing", kind: "trace" }) });
    const st = await download("safetensors");
    expect(st.status).toBe(200);
    expect(st.headers.get("content-disposition")).toBe('attachment; filename="routing-trace.safetensors"');
    const { tensors, metadata } = decodeSafetensors(new Uint8Array(await st.arrayBuffer()));
    const json = (await (await download("json")).json()) as { tokens: unknown[]; layers: { k: number[] }[] };
    expect(tensors.get("k")!.shape).toEqual([8, json.tokens.length]);
    expect(Array.from(tensors.get("k")!.data.subarray(0, json.tokens.length))).toEqual(json.layers[0]!.k);
    expect(metadata.model).toBe("uni-moe-tiny/tiny");
    expect(metadata.workflow_fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect((await (await download("csv")).text()).split("\n")[0]).toMatch(/^token,text,modality,phase,layer,k,top_expert,w:/);
    // The trace file itself through /api/files with the token (the run's outputs refer to it).
    const traceFile = (status.nodes.find((n) => n.nodeId === "routing")!.outputs!.report as { traceFile?: string }).traceFile!;
    expect((await files.GET(call("GET", `/api/files/${traceFile}`, token), { params: Promise.resolve({ id: traceFile }) })).status).toBe(200);
    expect((await cliOut("token", "list", "--user", "alice")).out).not.toContain("last used never");
  }, 120_000);

  it("a token is scoped to its owner: bob's token sees none of alice's runs or workflows", async () => {
    const bobToken = (await cliOut("token", "add", "bobs", "--user", "bob")).out.trim();
    const run = await db().run.findFirst({ where: { ownerId: alice.id } });
    expect((await api("GET", `/runs/${run!.id}`, bobToken)).status).toBe(404);
    expect(await (await api("GET", "/workflows", bobToken)).json()).toEqual([]);
    expect((await api("POST", "/runs", bobToken, { workflowId })).status).toBe(404);
    const sse = await events.GET(call("GET", `/api/v1/runs/${run!.id}/events`, bobToken), { params: Promise.resolve({ runId: run!.id }) });
    expect(sse.status).toBe(404);
    const dl = await exportRoute.GET(call("GET", `/api/v1/runs/${run!.id}/nodes/routing/trace`, bobToken), { params: Promise.resolve({ runId: run!.id, nodeId: "routing", kind: "trace" }) });
    expect(dl.status).toBe(404);
  });

  it("a token cannot mint or revoke tokens (it would outlive its own expiry and revocation); it may list them", async () => {
    const trpc = await import("@/app/api/trpc/[trpc]/route");
    const before = await db().apiToken.count({ where: { ownerId: alice.id } });
    const mint = await trpc.POST(call("POST", "/api/trpc/tokens.create", token, { name: "minted", days: 3650 }));
    expect(mint.status).toBe(403);
    expect(await mint.text()).toContain("managed from a login session");
    const own = (await db().apiToken.findFirst({ where: { ownerId: alice.id } }))!;
    expect((await trpc.POST(call("POST", "/api/trpc/tokens.revoke", token, { id: own.id }))).status).toBe(403);
    expect(await db().apiToken.count({ where: { ownerId: alice.id } })).toBe(before);
    expect((await trpc.GET(call("GET", "/api/trpc/tokens.list", token))).status).toBe(200);
  });

  it("bad overrides are 400 naming the node; a dataset needs a Dataset node", async () => {
    const bad = await api("POST", "/runs", token, { workflowId, params: [{ nodeId: "llm", param: "nope", value: 1 }] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('node "llm" (model.moe-llm) has no param "nope"');
    const ds = await api("POST", "/runs", token, { workflowId, dataset: "examples/sample/records.jsonl" });
    expect(ds.status).toBe(400);
    expect(((await ds.json()) as { message: string }).message).toContain("exactly one Dataset node");
  });

  it("revoked and expired tokens stop working; removing a user removes their tokens", async () => {
    expect((await cliOut("token", "revoke", "notebook", "--user", "alice")).code).toBe(0);
    expect((await api("GET", "/workflows", token)).status).toBe(401);
    const short = (await cliOut("token", "add", "short", "--user", "alice", "--days=0.00000001")).out.trim();
    await new Promise((r) => setTimeout(r, 10));
    expect((await api("GET", "/workflows", short)).status).toBe(401);
    expect(await db().apiToken.count({ where: { ownerId: alice.id } })).toBe(0); // the expired one was deleted when seen
    expect((await cliOut("user", "remove", "bob")).code).toBe(0);
    expect(await db().apiToken.count()).toBe(0);
  });

  it("the OpenAPI document describes every endpoint from the procedures' zod schemas", async () => {
    const doc = (await (await openapi.GET(call("GET", "/api/v1/openapi.json"))).json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } }>>; components: { securitySchemes: unknown } };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths).sort()).toEqual(["/runs", "/runs/{runId}", "/runs/{runId}/cancel", "/runs/{runId}/events", "/runs/{runId}/nodes/{nodeId}/{kind}", "/workflows"]);
    expect(Object.keys(doc.paths["/runs"]!.post!.requestBody!.content["application/json"]!.schema.properties).sort()).toEqual(["dataset", "params", "targetNodeId", "version", "workflowId"]);
    expect(doc.components.securitySchemes).toEqual({ Authorization: expect.objectContaining({ type: "http", scheme: "bearer" }) });
  });
});
