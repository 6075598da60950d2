import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { TRPCError } from "@trpc/server";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { writeFamilyCheckpoint } from "../../unit/import/family-checkpoints";
import { freshDataDir } from "../fresh-db";

// The model procedures through the real tRPC router, accounts on; the first account is the admin.
const DATA = freshDataDir();
process.env.STUDIO_DATA_DIR = DATA;
process.env.STUDIO_AUTH = "on";
delete process.env.STUDIO_MODELS_DIR;
delete process.env.STUDIO_CHECKPOINTS_DIR;
delete process.env.STUDIO_IMPORT_ROOTS;
const { appRouter } = await import("@/app/server/routers");
const { createSession, createUser } = await import("@/app/server/auth");
const trpcRoute = await import("@/app/api/trpc/[trpc]/route");
const { db } = await import("@/app/server/db");
const { userCli } = await import("@/app/server/cli-user");
const { importCheckpoint } = await import("@/models/import/import");
const { runManager } = await import("@/app/server/runs");

const caller = (userId: string) => appRouter.createCaller({ origin: null, host: "studio.test", userId });
async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    expect(err).toBeInstanceOf(TRPCError);
    return (err as TRPCError).code;
  }
}
/** Every absolute path of this machine that could leak: the data dir, the repository, the temp dir. */
const LEAKS = [DATA, process.cwd(), path.dirname(DATA)];
const noServerPaths = (value: unknown) => {
  const text = JSON.stringify(value);
  for (const p of LEAKS) expect(text, `an answer holds ${p}`).not.toContain(p);
  expect(text).not.toMatch(/"\/(tmp|home|root|work|var)\//);
};

describe("the admin role: models are managed by admins; defaults are per user otherwise", () => {
  let admin: ReturnType<typeof caller>;
  let bob: ReturnType<typeof caller>;
  let bobId: string;
  const CKPT = path.join(DATA, "checkpoints", "tiny-mixtral");

  beforeAll(async () => {
    admin = caller((await createUser("root-admin", "admin password")).id);
    bobId = (await createUser("bob", "bob's password")).id;
    bob = caller(bobId);
    await writeFamilyCheckpoint(CKPT, "mixtral", { seed: 3 });
    vi.spyOn(console, "log").mockImplementation(() => {});
    await importCheckpoint(CKPT, { name: "mx" });
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    vi.restoreAllMocks();
    await runManager().runtime.close();
  });

  it("the first account is an admin; later ones are not, unless made with `cli user add --admin`", async () => {
    const roles = Object.fromEntries((await db().user.findMany({ select: { name: true, role: true } })).map((u) => [u.name, u.role]));
    expect(roles).toEqual({ "root-admin": "admin", bob: "user" });
    vi.spyOn(console, "log").mockImplementation(() => {});
    const stdin = process.stdin;
    try {
      Object.defineProperty(process, "stdin", { value: (async function* () { yield Buffer.from("carol's password\n"); })(), configurable: true });
      expect(await userCli.run(["add", "carol", "--admin", "--password-stdin"])).toBe(0);
    } finally {
      Object.defineProperty(process, "stdin", { value: stdin, configurable: true });
      vi.restoreAllMocks();
    }
    expect((await db().user.findUnique({ where: { name: "carol" } }))!.role).toBe("admin");
  });

  it("user add --password-stdin takes one line: two lines are refused (the password held both)", async () => {
    const { UsageError } = await import("@/app/server/cli-args");
    const stdin = process.stdin;
    try {
      Object.defineProperty(process, "stdin", { value: (async function* () { yield Buffer.from("first line\nsecond line\n"); })(), configurable: true });
      await expect(userCli.run(["add", "frank", "--password-stdin"])).rejects.toThrow(UsageError);
    } finally {
      Object.defineProperty(process, "stdin", { value: stdin, configurable: true });
    }
    expect(await db().user.findUnique({ where: { name: "frank" } })).toBeNull();
  });

  it("user add --password-stdin stops reading past a password's length (< /dev/zero read forever)", async () => {
    const { UsageError } = await import("@/app/server/cli-args");
    const stdin = process.stdin;
    let chunks = 0;
    try {
      const endless = (async function* () {
        for (;;) {
          chunks++;
          yield Buffer.alloc(64 * 1024);
        }
      })();
      Object.defineProperty(process, "stdin", { value: endless, configurable: true });
      await expect(userCli.run(["add", "gina", "--password-stdin"])).rejects.toThrow(new UsageError("--password-stdin: the input is longer than a password may be (at most 1024 characters)"));
    } finally {
      Object.defineProperty(process, "stdin", { value: stdin, configurable: true });
    }
    expect(chunks).toBe(1);
    expect(await db().user.findUnique({ where: { name: "gina" } })).toBeNull();
  });

  it("a user who is not an admin cannot list server folders, inspect, import or delete models, or set the server's defaults", async () => {
    expect(await code(bob.models.browse())).toBe("FORBIDDEN");
    expect(await code(bob.models.inspect({ dir: "checkpoints/tiny-mixtral" }))).toBe("FORBIDDEN");
    expect(await code(bob.models.import({ dir: "checkpoints/tiny-mixtral", name: "stolen" }))).toBe("FORBIDDEN");
    expect(await code(bob.models.importStatus({ jobId: "x" }))).toBe("FORBIDDEN");
    expect(await code(bob.models.delete({ ref: "mixtral/mx" }))).toBe("FORBIDDEN");
    expect(await code(bob.models.setDefault({ nodeType: "model.moe-llm", ref: "mixtral/mx", scope: "server" }))).toBe("FORBIDDEN");
    // a placement check builds a graph and loads it in a child process: an admin's tool
    expect(await code(bob.models.placement({ graph: "decoder:uni-moe-tiny/tiny", provider: "cpu" }))).toBe("FORBIDDEN");
    expect((await bob.models.list()).map((m) => m.ref)).toContain("mixtral/mx");
    // The admin can; and what it sees names folders by their import folder, not by server path.
    const folders = await admin.models.browse();
    expect(folders).toEqual([{ dir: "checkpoints/tiny-mixtral", modelType: "mixtral" }]);
    expect((await admin.models.inspect({ dir: "checkpoints/tiny-mixtral" })).family).toBe("mixtral");
    expect(await code(admin.models.inspect({ dir: "checkpoints/../../" }))).toBe("FORBIDDEN");
    expect(await code(admin.models.inspect({ dir: "/etc" }))).toBe("BAD_REQUEST");
  });

  it("a user's default model is their own; the admin's is the server's, for everybody who has not chosen one", async () => {
    const llmDefault = async (c: ReturnType<typeof caller>) => (await c.catalog()).nodes.find((n) => n.type === "model.moe-llm")!.defaults.model;
    const file = path.join(DATA, "models", "defaults.json");
    await bob.models.setDefault({ nodeType: "model.moe-llm", ref: "mixtral/mx" });
    expect(existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {}).toEqual({});
    expect(await llmDefault(bob)).toBe("mixtral/mx");
    expect(await llmDefault(admin)).toBe("uni-moe-tiny/tiny");
    expect((await bob.models.installed()).ownDefaults).toEqual(["model.moe-llm"]);

    await admin.models.setDefault({ nodeType: "model.moe-llm", ref: "uni-moe-tiny/small" });
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ "model.moe-llm": "uni-moe-tiny/small" });
    expect(await llmDefault(admin)).toBe("uni-moe-tiny/small");
    expect(await llmDefault(bob)).toBe("mixtral/mx"); // his own wins
    await bob.models.setDefault({ nodeType: "model.moe-llm", ref: null });
    expect(await llmDefault(bob)).toBe("uni-moe-tiny/small");
  });

  it("no answer or error carries an absolute server path", async () => {
    for (const c of [admin, bob]) {
      const installed = await c.models.installed();
      noServerPaths(installed);
      expect(installed.importRoots).toEqual(["checkpoints"]);
      expect(installed.models.find((m) => m.ref === "mixtral/mx")).toMatchObject({ source: "checkpoints/tiny-mixtral" });
    }
    noServerPaths(await admin.models.browse());
    // Errors as the browser gets them (through the route: tRPC's error formatter).
    const { token } = await createSession((await db().user.findUnique({ where: { name: "root-admin" } }))!.id);
    const headers = { host: "studio.test", origin: "http://studio.test", cookie: `studio_session=${token}`, "content-type": "application/json" };
    const query = (p: string, input: unknown) => trpcRoute.GET(new Request(`http://studio.test/api/trpc/${p}?input=${encodeURIComponent(JSON.stringify(input))}`, { headers }));
    const mutation = (p: string, input: unknown) => trpcRoute.POST(new Request(`http://studio.test/api/trpc/${p}`, { method: "POST", body: JSON.stringify(input), headers }));
    for (const res of [await query("models.inspect", { dir: "checkpoints/nope" }), await query("models.info", { ref: "mixtral/does-not-exist" }), await mutation("models.delete", { ref: "mixtral/does-not-exist" })]) {
      expect(res.status).toBeGreaterThanOrEqual(400);
      const body = await res.json();
      expect(body.error.message.length).toBeGreaterThan(0);
      noServerPaths(body);
    }
    // The admin deletes the model: it is nobody's default any more.
    await bob.models.setDefault({ nodeType: "model.moe-llm", ref: "mixtral/mx" });
    await admin.models.delete({ ref: "mixtral/mx" });
    expect((await bob.models.installed()).ownDefaults).toEqual([]);
  });

  it("the MoE-TTS model and codec for new nodes follow the same rule: a user sets their own, only an admin the server's", async () => {
    const file = path.join(DATA, "models", "defaults.json");
    const tts = (await bob.models.tts()).model;
    expect(await code(bob.models.setTtsDefaults({ model: tts, scope: "server" }))).toBe("FORBIDDEN");
    const before = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Record<string, string>) : {};
    await bob.models.setTtsDefaults({ model: tts });
    expect(existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {}).toEqual(before);
    expect((await bob.models.installed()).ownDefaults).toEqual(["generate.tts"]);
    await admin.models.setTtsDefaults({ model: tts });
    expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ "generate.tts": tts });
  });

  it("an admin sees every user's queued and running runs and may cancel any; a user sees none and cancels only their own", async () => {
    // a Script that keeps the one run slot busy until it is cancelled, and a second run queued behind it
    const busy = { schemaVersion: 2, name: "busy", nodes: [{ id: "s", type: "utility.script", typeVersion: 1, params: { code: "for (;;) {}", timeoutMs: 30000 }, position: { x: 0, y: 0 } }], edges: [] };
    const first = (await bob.run.start({ document: busy })).runId;
    const second = (await bob.run.start({ document: { ...busy, name: "busy 2" } })).runId;
    const mine = (await admin.run.start({ document: { ...busy, name: "admin's" } })).runId;
    const view = await admin.run.serverQueue();
    expect(view.admin).toBe(true);
    const byId = new Map(view.runs.map((r) => [r.id, r]));
    expect(byId.get(first)).toMatchObject({ owner: "bob", mine: false });
    expect(byId.get(second)).toMatchObject({ owner: "bob", mine: false, status: "queued" });
    expect(byId.get(mine)).toMatchObject({ owner: "root-admin", mine: true, status: "queued" });
    expect(JSON.stringify(view)).not.toContain("busy 2"); // no document, no workflow name
    // bob: no view, and the admin's run is not his to cancel (NOT_FOUND, as a missing run)
    expect(await bob.run.serverQueue()).toEqual({ admin: false, runs: [] });
    expect(await code(bob.run.cancel({ runId: mine }))).toBe("NOT_FOUND");
    // the admin cancels bob's queued run at once, and his running one between two turns of its loop
    expect(await admin.run.cancel({ runId: second })).toEqual({ cancelled: true });
    expect(await admin.run.cancel({ runId: first })).toEqual({ cancelled: true });
    expect((await runManager().whenDone(first)).type).toBe("cancelled");
    expect((await db().run.findUniqueOrThrow({ where: { id: second } })).status).toBe("cancelled");
    expect(await bob.run.cancel({ runId: first })).toEqual({ cancelled: false }); // his own, already over
    expect(await admin.run.cancel({ runId: mine })).toEqual({ cancelled: true });
    await runManager().whenDone(mine);
    expect((await admin.run.serverQueue()).runs.filter((r) => [first, second, mine].includes(r.id))).toEqual([]);
  }, 60_000);

  it("a run's errors reach the browser without server paths", async () => {
    const doc = {
      schemaVersion: 2,
      name: "missing model",
      nodes: [
        { id: "t", type: "input.text", typeVersion: 1, params: { text: "hi" }, position: { x: 0, y: 0 } },
        { id: "p", type: "prompt.builder", typeVersion: 1, params: {}, position: { x: 200, y: 0 } },
        { id: "llm", type: "model.moe-llm", typeVersion: 1, params: { model: "mixtral/gone" }, position: { x: 400, y: 0 } },
      ],
      edges: [
        { id: "e1", source: "t", sourceSocket: "text", target: "p", targetSocket: "text" },
        { id: "e2", source: "p", sourceSocket: "sequence", target: "llm", targetSocket: "sequence" },
      ],
    };
    const { runId } = await bob.run.start({ document: doc });
    const events: unknown[] = [];
    const stop = runManager().subscribe(runId, (e) => events.push(e));
    await runManager().whenDone(runId);
    stop?.();
    const run = await bob.run.get({ runId });
    expect(run.status).toBe("failed");
    const failed = run.nodes.find((n) => n.status === "error")!;
    console.log(`node error as stored: ${failed.error}`);
    noServerPaths(run);
    noServerPaths(events);
  });
});
