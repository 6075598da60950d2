import { authEnabled, isAdmin, requestUserId } from "@/app/server/auth";
import { db } from "@/app/server/db";
import { metrics, registerLiveGauges } from "@/app/server/metrics";
import { runManager } from "@/app/server/runs";
import { config } from "@/engine/config";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/**
 * GET /metrics: Prometheus text format (app/server/metrics.ts). With STUDIO_METRICS_TOKEN set, only with that bearer
 * token; with accounts on and no token, only for an admin's session (the figures tell what everyone runs, and when).
 */
export async function GET(req: Request): Promise<Response> {
  const token = config().STUDIO_METRICS_TOKEN;
  if (token && req.headers.get("authorization") !== `Bearer ${token}`) return new Response("metrics need Authorization: Bearer <STUDIO_METRICS_TOKEN>\n", { status: 401 });
  if (!token && authEnabled() && !(await isAdmin(await requestUserId(req)))) return new Response("with accounts on, metrics need STUDIO_METRICS_TOKEN (scrape with Authorization: Bearer <it>) or an admin's login\n", { status: 401 });
  const manager = runManager();
  registerLiveGauges({
    runsByStatus: async () => Object.fromEntries((await db().run.groupBy({ by: ["status"], _count: { _all: true } })).map((g) => [g.status, g._count._all])),
    queueDepth: async () => (await manager.queue()).filter((r) => r.status === "queued").length,
    cache: () => manager.cache.stats(),
  });
  const { registry } = metrics();
  return new Response(await registry.metrics(), { headers: { "content-type": registry.contentType, "cache-control": "no-store" } });
}
