/**
 * Distributed queue load test (`npm run bench -- queue`), loopback only: 200 runs of a small workflow
 * (text → MoE-LLM, 2 greedy tokens on uni-moe-tiny/tiny, a distinct prompt each so nothing is cached)
 * queued at once through BullMQ (on Redis when STUDIO_TEST_REDIS_URL is set, else on PostgreSQL) to two worker
 * processes; PostgreSQL holds the runs.
 * Reports throughput and p50/p95 latency (start() → "finished" event), and checks that no run was lost or
 * executed twice. Needs STUDIO_TEST_DATABASE_URL (tools/scale-services.sh starts one); skips without it.
 */
import path from "node:path";
import type { RunEvent } from "../../engine/events";
import { emptyWorkflow, type Workflow } from "../../engine/workflow/schema";
import { freshPostgres, ioredisInstalled, spawnWorker, tempDir, TEST_PG, TEST_REDIS, type WorkerProcess } from "../integration/scale/services";

export interface QueueBenchResult {
  runs: number;
  workers: number;
  backend: string;
  finished: number;
  lost: number;
  duplicated: number;
  wallSeconds: number;
  runsPerSecond: number;
  p50LatencyMs: number;
  p95LatencyMs: number;
}

function doc(i: number): Workflow {
  return {
    ...emptyWorkflow(`bench ${i}`),
    nodes: [
      { id: "text", type: "input.text", typeVersion: 1, params: { text: `bench prompt ${i}` }, position: { x: 0, y: 0 } },
      { id: "llm", type: "model.moe-llm", typeVersion: 1, params: { model: "uni-moe-tiny/tiny", maxNewTokens: 2, temperature: 0 }, position: { x: 200, y: 0 } },
    ],
    edges: [{ id: "e", source: "text", sourceSocket: "text", target: "llm", targetSocket: "prompt" }],
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function benchQueue(options: { runs?: number; log?: (s: string) => void } = {}): Promise<QueueBenchResult | { skipped: string }> {
  const log = options.log ?? console.log;
  const runs = options.runs ?? 200;
  if (!TEST_PG) return { skipped: "no STUDIO_TEST_DATABASE_URL: start PostgreSQL on loopback with `eval \"$(bash tools/scale-services.sh start)\"`" };
  const pg = await freshPostgres("bench");
  const { migratePostgres } = await import("../../prisma/postgres/migrate");
  await migratePostgres(pg.url, () => {});
  const onRedis = !!TEST_REDIS && ioredisInstalled();
  if (onRedis) {
    const { default: IORedis } = await import("ioredis");
    const redis = new IORedis(TEST_REDIS!);
    await redis.flushdb(); // a fresh queue
    redis.disconnect();
  }
  const queueUrl = onRedis ? TEST_REDIS! : pg.url;
  const data = tempDir("studio-bench-queue-");
  const env = {
    DATABASE_URL: pg.url,
    STUDIO_QUEUE: queueUrl,
    STUDIO_ARTIFACTS: path.join(data, "shared"),
    STUDIO_MODELS_DIR: path.join(data, "models"),
    STUDIO_WORKER_CONCURRENCY: "1",
    STUDIO_WORKER_HANDOFF_MS: "0",
    STUDIO_THREADS: "1",
  };
  Object.assign(process.env, env, { STUDIO_DATA_DIR: path.join(data, "web") });
  const { RunManager } = await import("../../app/server/runs");
  const { db } = await import("../../app/server/db");
  const { resolveModel } = await import("../../models/moe-llm/moe-llm-model");
  await resolveModel("uni-moe-tiny/tiny");
  const workers: WorkerProcess[] = [0, 1].map((i) => spawnWorker({ ...env, STUDIO_DATA_DIR: path.join(data, `w${i}`) }, `w${i}`));
  const manager = new RunManager({ recoverInterrupted: true });
  try {
    await Promise.all(workers.map((w) => w.ready));
    await manager.ready;
    const warm = await Promise.all([-1, -2].map((i) => manager.start({ document: doc(i) })));
    await Promise.all(warm.map((id) => manager.whenDone(id)));

    const t0 = performance.now();
    const startedAt = new Map<string, number>();
    const terminal = new Map<string, { type: string; ms: number }>();
    const startedEvents = new Map<string, number>();
    const done = new Promise<void>((resolve) => {
      const watch = (id: string) =>
        manager.subscribe(id, (e: RunEvent) => {
          if (e.type === "started") startedEvents.set(id, (startedEvents.get(id) ?? 0) + 1);
          if (e.type === "finished" || e.type === "failed" || e.type === "cancelled") {
            terminal.set(id, { type: e.type, ms: performance.now() - startedAt.get(id)! });
            if (terminal.size === runs) resolve();
          }
        });
      void (async () => {
        for (let i = 0; i < runs; i++) {
          const before = performance.now();
          const id = await manager.start({ document: doc(i) });
          startedAt.set(id, before);
          watch(id);
        }
      })();
    });
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`queue bench: not done after 10 minutes (${terminal.size}/${runs})`)), 600_000));
    await Promise.race([done, timeout]);
    const wallSeconds = (performance.now() - t0) / 1000;

    const ids = [...startedAt.keys()];
    const rows = await db().run.findMany({ where: { id: { in: ids } }, select: { id: true, status: true } });
    const finished = rows.filter((r) => r.status === "finished").length;
    const executions = new Map<string, number>();
    for (const w of workers) for (const line of w.log) {
      const m = /^run (\S+): started \(attempt/.exec(line);
      if (m && startedAt.has(m[1]!)) executions.set(m[1]!, (executions.get(m[1]!) ?? 0) + 1);
    }
    const lost = ids.filter((id) => terminal.get(id)?.type !== "finished" || !executions.has(id)).length;
    const duplicated = ids.filter((id) => (executions.get(id) ?? 0) > 1 || (startedEvents.get(id) ?? 0) > 1).length;
    const latencies = ids.map((id) => terminal.get(id)!.ms).sort((a, b) => a - b);
    const perWorker = workers.map((w) => w.log.filter((l) => /: started \(attempt/.test(l)).length - 1); // less the warm-up
    const result: QueueBenchResult = {
      runs,
      workers: workers.length,
      backend: onRedis ? "BullMQ on Redis" : "BullMQ on PostgreSQL",
      finished,
      lost,
      duplicated,
      wallSeconds,
      runsPerSecond: runs / wallSeconds,
      p50LatencyMs: percentile(latencies, 50),
      p95LatencyMs: percentile(latencies, 95),
    };
    log(`${runs} runs (text → MoE-LLM 2 tokens) through ${workers.length} workers on ${result.backend}: ${finished} finished, ${lost} lost, ${duplicated} duplicated (runs per worker: ${perWorker.join(" / ")})`);
    log(`throughput ${result.runsPerSecond.toFixed(1)} runs/s (${wallSeconds.toFixed(1)} s wall); latency queue→finished p50 ${result.p50LatencyMs.toFixed(0)} ms, p95 ${result.p95LatencyMs.toFixed(0)} ms`);
    return result;
  } finally {
    for (const w of workers) w.child.kill("SIGTERM");
    await Promise.all(workers.map((w) => w.exited));
    await manager.close();
    await db().$disconnect();
    await pg.drop();
  }
}

if (require.main === module) {
  benchQueue().then((r) => console.log(JSON.stringify(r)), (err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
