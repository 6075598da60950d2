import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

process.env.STUDIO_DATA_DIR = freshDataDir();
const auth = await import("@/app/server/auth");
const { db } = await import("@/app/server/db");

const saved = { HOST: process.env.HOST, STUDIO_AUTH: process.env.STUDIO_AUTH };
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe("auth mode", () => {
  it("is off on loopback binds with no configuration, on for any other bind, and STUDIO_AUTH decides when set", () => {
    delete process.env.STUDIO_AUTH;
    delete process.env.HOST;
    expect(auth.authEnabled()).toBe(false);
    for (const host of ["127.0.0.1", "localhost", "::1"]) {
      process.env.HOST = host;
      expect(auth.authEnabled()).toBe(false);
    }
    for (const host of ["0.0.0.0", "192.168.1.5", "::", "studio.example.com"]) {
      process.env.HOST = host;
      expect(auth.authEnabled()).toBe(true);
    }
    process.env.STUDIO_AUTH = "off";
    expect(auth.authEnabled()).toBe(false);
    process.env.HOST = "127.0.0.1";
    process.env.STUDIO_AUTH = "on";
    expect(auth.authEnabled()).toBe(true);
  });
});

describe("passwords", () => {
  it("are hashed with argon2id (salted: the same password hashes differently) and verify only with the right password", async () => {
    const h1 = await auth.hashPassword("correct horse battery");
    const h2 = await auth.hashPassword("correct horse battery");
    expect(h1).toMatch(/^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$/);
    expect(h1).not.toBe(h2);
    expect(await auth.verifyPassword(h1, "correct horse battery")).toBe(true);
    expect(await auth.verifyPassword(h1, "correct horse batterY")).toBe(false);
    expect(await auth.verifyPassword("not a hash", "x")).toBe(false);
  });

  it("accounts: names and passwords are checked, the hash is stored, credentials are checked", async () => {
    await expect(auth.createUser("../evil", "long enough")).rejects.toThrow(/user name/);
    await expect(auth.createUser("local", "long enough")).rejects.toThrow(/reserved/);
    await expect(auth.createUser("erin", "short")).rejects.toThrow(/at least 8/);
    const erin = await auth.createUser("erin", "erin's password");
    const row = await db().user.findUnique({ where: { id: erin.id } });
    expect(row!.passwordHash).toMatch(/^\$argon2id\$/);
    expect(row!.passwordHash).not.toContain("erin's password");
    expect(await auth.checkCredentials("erin", "erin's password")).toEqual(erin);
    expect(await auth.checkCredentials("erin", "wrong")).toBeNull();
    expect(await auth.checkCredentials("nobody", "erin's password")).toBeNull();
  });
});

describe("sessions", () => {
  it("store only sha256(token), expire, and are deleted when seen expired or revoked", async () => {
    const user = await auth.createUser("frank", "frank's password");
    const now = new Date("2026-01-01T00:00:00Z");
    const { token, expiresAt } = await auth.createSession(user.id, now);
    expect(Buffer.from(token, "base64url").length).toBe(32);
    expect(expiresAt.getTime() - now.getTime()).toBe(30 * 24 * 3600 * 1000);
    const id = createHash("sha256").update(token).digest("hex");
    expect(await db().session.findUnique({ where: { id } })).not.toBeNull();
    expect(await db().session.findUnique({ where: { id: token } })).toBeNull();
    expect(await auth.sessionUser(token, new Date(expiresAt.getTime() - 1000))).toEqual(user);
    // Expired: refused, and the row is gone.
    expect(await auth.sessionUser(token, new Date(expiresAt.getTime() + 1))).toBeNull();
    expect(await db().session.findUnique({ where: { id } })).toBeNull();
    // Revoked.
    const second = await auth.createSession(user.id);
    expect(await auth.sessionUser(second.token)).toEqual(user);
    await auth.revokeSession(second.token);
    expect(await auth.sessionUser(second.token)).toBeNull();
    expect(await auth.sessionUser("")).toBeNull();
    expect(await auth.sessionUser("x".repeat(500))).toBeNull();
  });

  it("requestUserId: the session's user with accounts on, 'local' with them off", async () => {
    const user = await auth.createUser("gina", "gina's password");
    const { token } = await auth.createSession(user.id);
    const req = (cookie?: string) => new Request("http://x/", { headers: cookie ? { cookie } : {} });
    process.env.STUDIO_AUTH = "on";
    expect(await auth.requestUserId(req(`a=b; studio_session=${token}; c=d`))).toBe(user.id);
    expect(await auth.requestUserId(req())).toBeNull();
    expect(await auth.requestUserId(req("studio_session=forged"))).toBeNull();
    process.env.STUDIO_AUTH = "off";
    expect(await auth.requestUserId(req())).toBe("local");
  });
});
