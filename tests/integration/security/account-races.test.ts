import { describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

// Concurrent requests to the account routes themselves (accounts on, a real SQLite database).
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
delete process.env.STUDIO_SIGNUP;
const signup = await import("@/app/api/auth/signup/route");
const login = await import("@/app/api/auth/login/route");
const { db } = await import("@/app/server/db");

const BASE = "http://studio.test:3000";
const post = (path: string, body: unknown) =>
  new Request(`${BASE}${path}`, { method: "POST", body: JSON.stringify(body), headers: { host: "studio.test:3000", origin: BASE, "content-type": "application/json" } });
const statuses = (responses: Response[]) => responses.map((r) => r.status).sort();

describe("account races are settled by the database", () => {
  it("concurrent first sign-ups while sign-up is closed: exactly one account is made, and it is the admin", async () => {
    const results = await Promise.all(["first1", "first2", "first3"].map((name) => signup.POST(post("/api/auth/signup", { name, password: "a long password" }))));
    expect(statuses(results)).toEqual([201, 403, 403]);
    const users = await db().user.findMany();
    expect(users.length).toBe(1);
    expect(users[0]!.role).toBe("admin");
  });

  it("sign-up closed with an account there: refused before any password work (40 at once: 40 × 403, none queued for argon2)", async () => {
    // before: each one was hashed first, so 32 waited for argon2 and 8 were told the server was busy (429)
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => signup.POST(post("/api/auth/signup", { name: `late${i}`, password: "a long password" }))));
    expect(statuses(results)).toEqual(Array(40).fill(403));
  });

  it("three sign-ups at once for dave, Dave and DAVE: one succeeds, two are told the name is taken", async () => {
    process.env.STUDIO_SIGNUP = "open";
    try {
      const results = await Promise.all(["dave", "Dave", "DAVE"].map((name) => signup.POST(post("/api/auth/signup", { name, password: "dave's password" }))));
      expect(statuses(results)).toEqual([201, 409, 409]);
      for (const r of results.filter((r) => r.status === 409)) expect((await r.json()).error).toMatch(/^the name "(dave|Dave|DAVE)" is taken$/);
      const daves = await db().user.findMany({ where: { name: { in: ["dave", "Dave", "DAVE"] } } });
      expect(daves.length).toBe(1);
    } finally {
      delete process.env.STUDIO_SIGNUP;
    }
  });

  it("25 parallel wrong logins get exactly 10 password checks; the rest are paused (429)", async () => {
    const name = (await db().user.findFirst({ where: { name: { in: ["dave", "Dave", "DAVE"] } } }))!.name;
    const results = await Promise.all(Array.from({ length: 25 }, (_, i) => login.POST(post("/api/auth/login", { name: i % 2 ? name.toUpperCase() : name, password: `wrong guess ${i}` }))));
    expect(statuses(results).filter((s) => s === 401).length).toBe(10);
    expect(statuses(results).filter((s) => s === 429).length).toBe(15);
    // The right password is paused too until the window passes.
    expect((await login.POST(post("/api/auth/login", { name, password: "dave's password" }))).status).toBe(429);
  });

  it("a success frees the name again; failures for other names are counted apart", async () => {
    const first = (await db().user.findFirst({ where: { role: "admin" } }))!.name;
    for (let i = 0; i < 9; i++) expect((await login.POST(post("/api/auth/login", { name: first, password: `nope ${i}` }))).status).toBe(401);
    expect((await login.POST(post("/api/auth/login", { name: first, password: "a long password" }))).status).toBe(200);
    expect(await db().loginThrottle.findUnique({ where: { key: first.toLowerCase() } })).toBeNull();
    expect((await login.POST(post("/api/auth/login", { name: first, password: "nope again" }))).status).toBe(401);
  });
});

describe("password checks are one at a time", () => {
  it("logins with made-up names queue for one argon2 check at a time; past 32 waiting they are told to retry (429)", async () => {
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => login.POST(post("/api/auth/login", { name: `nobody-${i}`, password: `guess ${i}` }))));
    expect(statuses(results)).toEqual([...Array(32).fill(401), ...Array(8).fill(429)]);
    const busy = results.find((r) => r.status === 429)!;
    expect(((await busy.json()) as { error: string }).error).toBe("the server is checking many passwords at once; try again in a moment");
    // the queue drains: a real login works afterwards
    const { createUser } = await import("@/app/server/auth");
    await createUser("erin", "erin's password");
    expect((await login.POST(post("/api/auth/login", { name: "erin", password: "erin's password" }))).status).toBe(200);
  }, 120_000);
});
