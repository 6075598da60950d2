import { describe, expect, it } from "vitest";
import type { RunEvent } from "@/engine/events";
import { TERMINAL_EVENTS } from "@/engine/events";
import { freshDataDir } from "./fresh-db";

// /metrics scraped after real runs (embedded queue, real database and engine), and /api/health.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_EP = "cpu";
delete process.env.STUDIO_QUEUE;
delete process.env.STUDIO_METRICS_TOKEN;
const { runManager } = await import("@/app/server/runs");
const metricsRoute = await import("@/app/metrics/route");
const health = await import("@/app/api/health/route");
const { EXAMPLES } = await import("@/app/examples");

async function runToEnd(document: unknown): Promise<RunEvent> {
  const m = runManager();
  const runId = await m.start({ document: document as never });
  return new Promise((resolve) => m.subscribe(runId, (e) => TERMINAL_EVENTS.has(e.type) && resolve(e)));
}

/** `name{labels} value` lines of the Prometheus text format. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ""} `) || (labels === "" && l.startsWith(`${name}{`) === false && l.startsWith(`${name} `)));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

describe("/metrics and /api/health", () => {
  it("after a run and an unchanged re-run: runs by status, node time histogram by type, cache hits, queue depth, RSS", async () => {
    const doc = structuredClone(EXAMPLES.find((e) => e.id === "moe-llm-routing")!.document);
    doc.nodes.find((n) => n.id === "llm")!.params = { maxNewTokens: 2 };
    expect((await runToEnd(doc)).type).toBe("finished");
    expect((await runToEnd(doc)).type).toBe("finished"); // every node cached
    const res = await metricsRoute.GET(new Request("http://127.0.0.1/metrics"));
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(sample(text, "studio_runs", 'status="finished"')).toBe(2);
    expect(sample(text, "studio_runs_ended_total", 'status="finished"')).toBe(2);
    expect(sample(text, "studio_node_duration_seconds_count", 'node_type="model.moe-llm"')).toBe(1);
    expect(sample(text, "studio_node_duration_seconds_bucket", 'le="+Inf",node_type="inspect.routing"')).toBe(1);
    expect(sample(text, "studio_nodes_total", 'outcome="executed"')).toBe(4);
    expect(sample(text, "studio_nodes_total", 'outcome="cached"')).toBe(4);
    expect(sample(text, "studio_cache_hits_total")).toBe(4);
    expect(sample(text, "studio_queue_depth")).toBe(0);
    expect(sample(text, "studio_output_cache_entries")).toBeGreaterThan(0);
    expect(sample(text, "process_resident_memory_bytes")).toBeGreaterThan(10e6);
    console.log(text.split("\n").filter((l) => l.startsWith("studio_") && !l.includes("_bucket")).join("\n"));
  }, 120_000);

  it("STUDIO_METRICS_TOKEN guards /metrics", async () => {
    process.env.STUDIO_METRICS_TOKEN = "s3cret";
    try {
      expect((await metricsRoute.GET(new Request("http://127.0.0.1/metrics"))).status).toBe(401);
      expect((await metricsRoute.GET(new Request("http://127.0.0.1/metrics", { headers: { authorization: "Bearer s3cret" } }))).status).toBe(200);
    } finally {
      delete process.env.STUDIO_METRICS_TOKEN;
    }
  });

  it("with accounts on and no STUDIO_METRICS_TOKEN, only an admin's login reads /metrics (it was open to anyone)", async () => {
    const { createUser, createSession, SESSION_COOKIE } = await import("@/app/server/auth");
    process.env.STUDIO_AUTH = "on";
    try {
      const admin = await createUser("metrics-admin", "admin password", { admin: true });
      const user = await createUser("metrics-user", "user password");
      const as = async (id?: string) => metricsRoute.GET(new Request("http://127.0.0.1/metrics", id ? { headers: { cookie: `${SESSION_COOKIE}=${(await createSession(id)).token}` } } : {}));
      expect((await as()).status).toBe(401);
      expect((await as(user.id)).status).toBe(401);
      expect((await as(admin.id)).status).toBe(200);
    } finally {
      delete process.env.STUDIO_AUTH;
    }
  });

  it("/api/health reports the database (embedded: no queue to check)", async () => {
    const res = await health.GET();
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, database: { ok: true }, queue: { mode: "embedded" } });
  });
});
