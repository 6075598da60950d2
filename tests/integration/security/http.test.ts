import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

// The route handlers themselves (tRPC, accounts, upload, files) with real Requests, accounts on.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_AUTH = "on";
process.env.STUDIO_MAX_UPLOAD_MB = "1";
process.env.STUDIO_MAX_BODY_MB = "1";
delete process.env.STUDIO_SIGNUP;
const trpcRoute = await import("@/app/api/trpc/[trpc]/route");
const signup = await import("@/app/api/auth/signup/route");
const login = await import("@/app/api/auth/login/route");
const logout = await import("@/app/api/auth/logout/route");
const upload = await import("@/app/api/upload/route");
const files = await import("@/app/api/files/[id]/route");
const { db } = await import("@/app/server/db");

const BASE = "http://studio.test:3000";
const SAME = { origin: BASE, host: "studio.test:3000" };

function post(path: string, body: BodyInit | null, headers: Record<string, string> = {}): Request {
  return new Request(`${BASE}${path}`, { method: "POST", body, headers: { host: SAME.host, origin: SAME.origin, "content-type": "application/json", ...headers } });
}
function get(path: string, headers: Record<string, string> = {}): Request {
  return new Request(`${BASE}${path}`, { headers: { host: SAME.host, ...headers } });
}
const json = (v: unknown) => JSON.stringify(v);
const cookieOf = (res: Response) => res.headers.get("set-cookie")!.split(";")[0]!;

async function trpcMutation(path: string, input: unknown, cookie?: string, headers: Record<string, string> = {}) {
  return trpcRoute.POST(post(`/api/trpc/${path}`, json(input), { ...(cookie ? { cookie } : {}), ...headers }));
}
async function trpcQuery(path: string, input: unknown, cookie?: string) {
  return trpcRoute.GET(get(`/api/trpc/${path}?input=${encodeURIComponent(json(input))}`, cookie ? { cookie } : {}));
}
const fileParams = (id: string) => ({ params: Promise.resolve({ id }) });

const doc = { schemaVersion: 2, name: "Mine", nodes: [], edges: [] };

describe("accounts over HTTP", () => {
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    const first = await signup.POST(post("/api/auth/signup", json({ name: "alice", password: "correct horse" })));
    expect(first.status).toBe(201);
    alice = cookieOf(first);
  });

  it("the session cookie is http-only and SameSite=Lax, Secure behind https; the database keeps only a hash", async () => {
    const res = await login.POST(post("/api/auth/login", json({ name: "alice", password: "correct horse" })));
    expect(res.status).toBe(200);
    const cookie = res.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^studio_session=[A-Za-z0-9_-]{43};/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).not.toMatch(/Secure/);
    const token = cookie.split(";")[0]!.split("=")[1]!;
    expect(await db().session.findUnique({ where: { id: token } })).toBeNull();
    const secure = await login.POST(post("/api/auth/login", json({ name: "alice", password: "correct horse" }), { "x-forwarded-proto": "https" }));
    expect(secure.headers.get("set-cookie")).toMatch(/; Secure/);
  });

  it("sign-up after the first account is closed unless STUDIO_SIGNUP=open", async () => {
    const closed = await signup.POST(post("/api/auth/signup", json({ name: "bob", password: "bob's password" })));
    expect(closed.status).toBe(403);
    expect((await closed.json()).error).toMatch(/sign-up is closed/);
    process.env.STUDIO_SIGNUP = "open";
    try {
      const open = await signup.POST(post("/api/auth/signup", json({ name: "bob", password: "bob's password" })));
      expect(open.status).toBe(201);
      bob = cookieOf(open);
      const taken = await signup.POST(post("/api/auth/signup", json({ name: "bob", password: "another password" })));
      expect(taken.status).toBe(409);
      const weak = await signup.POST(post("/api/auth/signup", json({ name: "carol", password: "short" })));
      expect(weak.status).toBe(400);
      expect((await weak.json()).error).toMatch(/at least 8/);
    } finally {
      delete process.env.STUDIO_SIGNUP;
    }
  });

  it("a wrong password and an unknown name get the same 401", async () => {
    const wrong = await login.POST(post("/api/auth/login", json({ name: "alice", password: "wrong password" })));
    const unknown = await login.POST(post("/api/auth/login", json({ name: "nobody", password: "wrong password" })));
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(await wrong.json()).toEqual(await unknown.json());
  });

  it("names no account can have and passwords that are not well-formed text: the same 401 at login, no throttle row; 400 at sign-up", async () => {
    const expected = await (await login.POST(post("/api/auth/login", json({ name: "nobody", password: "wrong password" })))).json();
    const rows = await db().loginThrottle.count();
    for (const creds of [
      { name: "bob\ud800", password: "whatever1" }, // a lone surrogate: Prisma refused the throttle row (500)
      { name: `${"a".repeat(63)}\u{1f600}`, password: "whatever1" }, // cut at 64 UTF-16 units, it made one
      { name: "x".repeat(65), password: "whatever1" },
      { name: 42, password: "whatever1" },
      { name: "alice", password: "\ud800correct horse" },
    ]) {
      const res = await login.POST(post("/api/auth/login", json(creds)));
      expect(res.status, JSON.stringify(creds)).toBe(401);
      expect(await res.json()).toEqual(expected);
    }
    expect(await db().loginThrottle.count()).toBe(rows);
    const lone = await signup.POST(post("/api/auth/signup", json({ name: "eve", password: "\ud800Pw-eve-12345678" })));
    expect(lone.status).toBe(400);
    expect((await lone.json()).error).toMatch(/well-formed text/);
  });

  it("after 10 failed logins for a name, logins to it pause with 429 (the right password too)", async () => {
    process.env.STUDIO_SIGNUP = "open";
    try {
      expect((await signup.POST(post("/api/auth/signup", json({ name: "target", password: "target-password" })))).status).toBe(201);
    } finally {
      delete process.env.STUDIO_SIGNUP;
    }
    for (let i = 0; i < 10; i++) expect((await login.POST(post("/api/auth/login", json({ name: "target", password: `guess-${i}-xx` })))).status).toBe(401);
    const paused = await login.POST(post("/api/auth/login", json({ name: "Target", password: "target-password" })));
    expect(paused.status).toBe(429);
    expect((await paused.json()).error).toMatch(/too many failed logins for "Target"; try again in 15 min/);
    // Names are unique regardless of case, so "Target" cannot be made as a look-alike.
    process.env.STUDIO_SIGNUP = "open";
    try {
      const lookalike = await signup.POST(post("/api/auth/signup", json({ name: "TARGET", password: "target-password" })));
      expect(lookalike.status).toBe(409);
    } finally {
      delete process.env.STUDIO_SIGNUP;
    }
    // Other accounts are not affected.
    expect((await login.POST(post("/api/auth/login", json({ name: "alice", password: "correct horse" })))).status).toBe(200);
  });

  it("unauthenticated tRPC calls and uploads get 401", async () => {
    const res = await trpcQuery("workflow.list", {});
    expect(res.status).toBe(401);
    expect(JSON.stringify(await res.json())).toMatch(/log in/);
    expect((await trpcMutation("workflow.create", { document: doc })).status).toBe(401);
    expect((await upload.POST(post("/api/upload?kind=image&filename=a.png", new Uint8Array(10), { "content-type": "image/png" }))).status).toBe(401);
    expect((await trpcQuery("workflow.list", {}, "studio_session=made-up-token")).status).toBe(401);
  });

  it("a logged-in user gets their own data", async () => {
    const created = await trpcMutation("workflow.create", { document: doc }, alice);
    expect(created.status).toBe(200);
    const list = await (await trpcQuery("workflow.list", {}, alice)).json();
    expect(list.result.data.map((w: { name: string }) => w.name)).toEqual(["Mine"]);
    const bobs = await (await trpcQuery("workflow.list", {}, bob)).json();
    expect(bobs.result.data).toEqual([]);
  });

  it("cross-origin mutations are refused with 403 (tRPC, upload, login, logout)", async () => {
    const evil = { origin: "https://evil.example" };
    const res = await trpcMutation("workflow.create", { document: doc }, alice, evil);
    expect(res.status).toBe(403);
    expect((await res.json()).error).toMatch(/cross-origin request from https:\/\/evil\.example refused/);
    expect((await trpcMutation("workflow.create", { document: doc }, alice, { origin: "null" })).status).toBe(403);
    expect((await trpcMutation("workflow.create", { document: doc }, alice, { origin: "", "sec-fetch-site": "cross-site" })).status).toBe(403);
    expect((await upload.POST(post("/api/upload?kind=image&filename=a.png", new Uint8Array(10), { ...evil, cookie: alice }))).status).toBe(403);
    expect((await login.POST(post("/api/auth/login", json({ name: "alice", password: "correct horse" }), evil))).status).toBe(403);
    expect((await logout.POST(post("/api/auth/logout", null, { ...evil, cookie: alice }))).status).toBe(403);
    // Nothing was created by the refused calls.
    const list = await (await trpcQuery("workflow.list", {}, alice)).json();
    expect(list.result.data.length).toBe(1);
  });

  it("request bodies over the limit are refused with 413 before parsing", async () => {
    const big = json({ document: { ...doc, description: "x".repeat(1.5 * 1024 * 1024) } });
    const res = await trpcRoute.POST(post("/api/trpc/workflow.create", big, { cookie: alice }));
    expect(res.status).toBe(413);
    expect((await res.json()).error).toMatch(/limit for workflow\.create is 1 MB/);
    const declared = await trpcRoute.POST(post("/api/trpc/workflow.create", "{}", { cookie: alice, "content-length": String(1e9) }));
    expect(declared.status).toBe(413);
    expect((await declared.json()).error).toMatch(/1000000000 bytes/);
    // A body that does not declare its length is counted as it streams.
    const chunk = new Uint8Array(256 * 1024).fill(32);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent++ < 8) c.enqueue(chunk);
        else c.close();
      },
    });
    const streamed = await trpcRoute.POST(new Request(`${BASE}/api/trpc/workflow.create`, { method: "POST", body: stream, duplex: "half", headers: { ...SAME, cookie: alice } } as RequestInit));
    expect(streamed.status).toBe(413);
    expect(sent).toBeLessThanOrEqual(6);
  });

  it("an oversized upload is refused with 413 and a message naming the file and the limit", async () => {
    const declared = await upload.POST(post("/api/upload?kind=image&filename=huge.png", new Uint8Array(2 * 1024 * 1024), { cookie: alice, "content-type": "image/png", "content-length": String(2 * 1024 * 1024) }));
    expect(declared.status).toBe(413);
    expect((await declared.json()).error).toMatch(/huge\.png is 2 MB; the limit for image uploads is 1 MB/);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 8; i++) c.enqueue(new Uint8Array(256 * 1024));
        c.close();
      },
    });
    const streamed = await upload.POST(new Request(`${BASE}/api/upload?kind=image&filename=sneaky.png`, { method: "POST", body: stream, duplex: "half", headers: { ...SAME, cookie: alice } } as RequestInit));
    expect(streamed.status).toBe(413);
    expect((await streamed.json()).error).toMatch(/sneaky\.png is larger than the 1 MB limit/);
    const multi = await upload.POST(post("/api/upload?kind=image&filename=a.png", "--x", { cookie: alice, "content-type": "multipart/form-data; boundary=x" }));
    expect(multi.status).toBe(400);
    expect((await multi.json()).error).toMatch(/one file per request/);
  });

  it("files: the uploader reads an upload, another user gets 404, traversal ids get 400", async () => {
    const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#f00" } }).png().toBuffer();
    const res = await upload.POST(post("/api/upload?kind=image&filename=red.png", new Uint8Array(png), { cookie: alice, "content-type": "image/png" }));
    expect(res.status).toBe(200);
    const { id } = (await res.json()) as { id: string };
    const mine = await files.GET(get(`/api/files/${id}`, { cookie: alice }), fileParams(id));
    expect(mine.status).toBe(200);
    expect(Buffer.from(await mine.arrayBuffer()).equals(png)).toBe(true);
    expect(mine.headers.get("cache-control")).toMatch(/^private/);
    expect((await files.GET(get(`/api/files/${id}`, { cookie: bob }), fileParams(id))).status).toBe(404);
    expect((await files.GET(get(`/api/files/${id}`), fileParams(id))).status).toBe(404);
    for (const bad of ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", `${"a".repeat(64)}/../../x`, "/etc/passwd", `${"a".repeat(64)}.png\0.txt`, "."]) {
      expect((await files.GET(get(`/api/files/x`, { cookie: alice }), fileParams(bad))).status).toBe(400);
    }
  });

  it("logout revokes the session: the old cookie no longer works", async () => {
    const res = await login.POST(post("/api/auth/login", json({ name: "alice", password: "correct horse" })));
    const cookie = cookieOf(res);
    expect((await trpcQuery("workflow.list", {}, cookie)).status).toBe(200);
    const out = await logout.POST(post("/api/auth/logout", null, { cookie }));
    expect(out.status).toBe(303);
    expect(out.headers.get("location")).toBe("/login");
    expect(out.headers.get("set-cookie")).toMatch(/studio_session=;.*Max-Age=0/);
    expect((await trpcQuery("workflow.list", {}, cookie)).status).toBe(401);
  });

  it("a tRPC request batches at most 8 procedures, GET or POST (a GET URL held 150 history diffs of 90 MB each)", async () => {
    const cookie = cookieOf(await login.POST(post("/api/auth/login", json({ name: "alice", password: "correct horse" }))));
    const batch = (n: number) => `/api/trpc/${Array(n).fill("workflow.list").join(",")}?batch=1&input=${encodeURIComponent(json(Object.fromEntries(Array.from({ length: n }, (_, i) => [i, {}]))))}`;
    expect((await trpcRoute.GET(get(batch(8), { cookie }))).status).toBe(200);
    const refused = await trpcRoute.GET(get(batch(9), { cookie }));
    expect(refused.status).toBe(413);
    expect((await refused.json()).error).toBe("a request may batch at most 8 procedures (this one has 9)");
    const posted = await trpcRoute.POST(post(`/api/trpc/${Array(9).fill("workflow.create").join(",")}?batch=1`, json({}), { cookie }));
    expect(posted.status).toBe(413);
    // the public read of a shared workflow (the whole document) once per request: 8 of a 15 MB one stalled everyone
    const input = (n: number) => encodeURIComponent(json(Object.fromEntries(Array.from({ length: n }, (_, i) => [i, { token: "x".repeat(43) }]))));
    const twice = await trpcRoute.GET(get(`/api/trpc/share.resolve,share.resolve?batch=1&input=${input(2)}`));
    expect(twice.status).toBe(413);
    expect((await twice.json()).error).toBe("a request may ask for share.resolve once");
    expect((await trpcRoute.GET(get(`/api/trpc/share.resolve,workflow.list?batch=1&input=${input(2)}`, { cookie }))).status).not.toBe(413);
    // tRPC decodes the path before it splits it: `%2C` is a comma to it, so it is one to the limits too
    // (32 share.resolve written so made one anonymous GET answer 496 MB)
    const encoded = await trpcRoute.GET(get(`/api/trpc/${Array(9).fill("workflow.list").join("%2C")}?batch=1&input=${encodeURIComponent(json(Object.fromEntries(Array.from({ length: 9 }, (_, i) => [i, {}]))))}`, { cookie }));
    expect(encoded.status).toBe(413);
    expect((await encoded.json()).error).toBe("a request may batch at most 8 procedures (this one has 9)");
    const resolveTwice = await trpcRoute.GET(get(`/api/trpc/share.resolve%2Cshare%2Eresolve?batch=1&input=${input(2)}`));
    expect(resolveTwice.status).toBe(413);
    expect((await resolveTwice.json()).error).toBe("a request may ask for share.resolve once");
    expect((await trpcRoute.GET(get(`/api/trpc/workflow.list%2?batch=1&input=${input(1)}`, { cookie }))).status).toBe(400);
  });

  it("a malformed session cookie is no session: 401, not a 500 from every route", async () => {
    const res = await trpcQuery("workflow.list", {}, "studio_session=%E0%A4%A");
    expect(res.status).toBe(401);
  });

  it("single-user mode answers loopback Host names only", async () => {
    process.env.STUDIO_AUTH = "off";
    try {
      const local = await trpcRoute.GET(new Request("http://127.0.0.1:3000/api/trpc/workflow.list?input=%7B%7D", { headers: { host: "127.0.0.1:3000" } }));
      expect(local.status).toBe(200);
      const rebound = await trpcRoute.GET(new Request("http://evil.example:3000/api/trpc/workflow.list?input=%7B%7D", { headers: { host: "evil.example:3000" } }));
      expect(rebound.status).toBe(403);
      expect((await rebound.json()).error).toMatch(/answers only on 127\.0\.0\.1/);
    } finally {
      process.env.STUDIO_AUTH = "on";
    }
  });
});
