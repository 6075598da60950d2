import { NextRequest } from "next/server";
import { afterEach, describe, expect, it } from "vitest";
import { unstable_doesMiddlewareMatch } from "next/experimental/testing/server";
import { config, proxy } from "@/proxy";

const saved = process.env.STUDIO_AUTH;
afterEach(() => {
  if (saved === undefined) delete process.env.STUDIO_AUTH;
  else process.env.STUDIO_AUTH = saved;
});

const req = (url: string, headers: Record<string, string> = {}) => new NextRequest(url, { headers: { host: new URL(url).host, ...headers } });

describe("proxy.ts (in front of every page and API request)", () => {
  it("with accounts on, pages without a session cookie redirect to /login?next=…; /login, /s/…, /api/… pass", () => {
    process.env.STUDIO_AUTH = "on";
    const res = proxy(req("http://studio.example/w/abc?tab=json"));
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("http://studio.example/login?next=%2Fw%2Fabc%3Ftab%3Djson");
    for (const open of ["http://studio.example/login", "http://studio.example/s/tok123", "http://studio.example/api/health", "http://studio.example/api/trpc/workflow.list"]) {
      expect(proxy(req(open)).headers.get("location"), open).toBeNull();
    }
    // With a cookie the page goes on (the layout checks the session itself), carrying its path.
    const withCookie = proxy(req("http://studio.example/w/abc", { cookie: "studio_session=t" }));
    expect(withCookie.headers.get("location")).toBeNull();
    expect(withCookie.headers.get("x-middleware-request-x-studio-path")).toBe("/w/abc");
  });

  it("single-user mode refuses non-loopback Host names and lets loopback ones through", async () => {
    process.env.STUDIO_AUTH = "off";
    const rebound = proxy(req("http://attacker.example:3000/"));
    expect(rebound.status).toBe(403);
    expect(await rebound.text()).toMatch(/answers only on 127\.0\.0\.1/);
    for (const ok of ["http://127.0.0.1:3000/", "http://localhost:3000/w/x", "http://[::1]:3000/"]) expect(proxy(req(ok)).status, ok).toBe(200);
  });

  it("does not run for /api/ (Next would buffer and cut request bodies at 10 MB for it), and runs for pages", () => {
    const matches = (url: string) => unstable_doesMiddlewareMatch({ config, url });
    for (const api of ["/api/upload?kind=video&filename=a.mp4", "/api/trpc/workflow.create", "/api/files/ab.png", "/api/auth/login", "/api/health"]) expect(matches(api), api).toBe(false);
    for (const page of ["/", "/w/abc", "/login?next=/w/x", "/s/tok", "/models"]) expect(matches(page), page).toBe(true);
  });

  it("every page gets a Content-Security-Policy with a fresh nonce, no inline script or eval, framed only by this origin; Next sees the same policy", () => {
    process.env.STUDIO_AUTH = "off";
    const policies = ["http://127.0.0.1:3000/", "http://127.0.0.1:3000/w/abc"].map((url) => {
      const res = proxy(req(url));
      const csp = res.headers.get("content-security-policy")!;
      // Next reads the nonce from the request's copy and puts it on its own scripts.
      expect(res.headers.get("x-middleware-request-content-security-policy"), url).toBe(csp);
      return csp;
    });
    const directives = (csp: string) => Object.fromEntries(csp.split(";").map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k!, v]));
    const [a, b] = policies.map(directives);
    const nonce = (d: Record<string, string[]>) => d["script-src"]!.find((v) => v.startsWith("'nonce-"))!;
    expect(nonce(a!)).toMatch(/^'nonce-[A-Za-z0-9+/]{22}=='$/);
    expect(nonce(a!)).not.toBe(nonce(b!));
    expect(a!["script-src"]).not.toContain("'unsafe-inline'");
    expect(a!["script-src"]).not.toContain("'unsafe-eval'");
    expect(a!["frame-ancestors"]).toEqual(["'self'"]);
    expect(a!["object-src"]).toEqual(["'none'"]);
    expect(a!["base-uri"]).toEqual(["'self'"]);
  });
});
