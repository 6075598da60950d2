import { describe, expect, it, vi } from "vitest";
import { freshDataDir } from "../fresh-db";

process.env.STUDIO_DATA_DIR = freshDataDir();
const { main } = await import("@/app/server/cli");
const userCommand = (argv: string[]) => main(["user", ...argv]);
const { createUser, checkCredentials } = await import("@/app/server/auth");
const { db } = await import("@/app/server/db");

function quiet<T>(fn: () => Promise<T>): Promise<T> {
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  const err = vi.spyOn(console, "error").mockImplementation(() => {});
  return fn().finally(() => {
    log.mockRestore();
    err.mockRestore();
  });
}

describe("npm run cli -- user …", () => {
  it("adopt-local gives the single-user install's workflows and runs to an account; remove deletes the account and its sessions", async () => {
    await db().workflow.create({ data: { id: "w-old", name: "made before login" } });
    await db().run.create({ data: { id: "r-old", document: "{}", status: "finished" } });
    const zed = await createUser("zed", "zed-password");
    expect(await quiet(() => userCommand(["adopt-local", "zed"]))).toBe(0);
    expect((await db().workflow.findUnique({ where: { id: "w-old" } }))!.ownerId).toBe(zed.id);
    expect((await db().run.findUnique({ where: { id: "r-old" } }))!.ownerId).toBe(zed.id);
    expect(await quiet(() => userCommand(["adopt-local", "nobody"]))).toBe(2);
    await db().session.create({ data: { id: "s1", userId: zed.id, expiresAt: new Date(Date.now() + 1e6) } });
    expect(await quiet(() => userCommand(["remove", "zed"]))).toBe(0);
    expect(await checkCredentials("zed", "zed-password")).toBeNull();
    expect(await db().session.count({ where: { userId: zed.id } })).toBe(0);
    expect(await quiet(() => userCommand(["remove", "zed"]))).toBe(2);
  });

  it("removing a user revokes their share links (nobody could revoke them afterwards); another user's stay", async () => {
    const { appRouter } = await import("@/app/server/routers");
    const doc = { schemaVersion: 2, name: "shared", nodes: [], edges: [] };
    const share = async (name: string) => {
      const user = await createUser(name, `${name}-password`);
      const caller = appRouter.createCaller({ origin: null, host: "studio.test", userId: user.id });
      const wf = await caller.workflow.create({ document: doc });
      return (await caller.share.create({ workflowId: wf.id })).token;
    };
    const [carol, dave] = [await share("carol"), await share("dave")];
    const guest = appRouter.createCaller({ origin: null, host: "studio.test", userId: null });
    expect(await quiet(() => userCommand(["remove", "carol"]))).toBe(0);
    await expect(guest.share.resolve({ token: carol })).rejects.toThrow();
    expect((await guest.share.resolve({ token: dave })).name).toBe("shared");
  });

  it("bad usage is exit 2", async () => {
    expect(await quiet(() => userCommand([]))).toBe(2);
    expect(await quiet(() => userCommand(["frobnicate"]))).toBe(2);
    expect(await quiet(() => userCommand(["add"]))).toBe(2);
    expect(await quiet(() => userCommand(["add", "x", "--password-file", "p"]))).toBe(2);
  });
});
