import { singleUserHostRefused } from "@/app/server/auth-mode";
import { db } from "@/app/server/db";
import { redactPaths } from "@/app/server/redact";
import { runManager } from "@/app/server/runs";

export const dynamic = "force-dynamic";

/**
 * GET /api/health (open, for load balancers and compose healthchecks): the database, and in queue mode
 * (STUDIO_QUEUE) the queue's Redis or PostgreSQL and the workers heard from recently. 503 when the
 * database or the queue does not answer; no workers is reported, not an error (runs wait for one).
 */
export async function GET(req?: Request): Promise<Response> {
  const badHost = req && singleUserHostRefused(req.headers.get("host"));
  if (badHost) return Response.json({ ok: false, error: badHost }, { status: 403 });
  let database: { ok: boolean; error?: string };
  try {
    await db().$queryRawUnsafe("SELECT 1");
    database = { ok: true };
  } catch (err) {
    database = { ok: false, error: redactPaths((err as Error).message) };
  }
  const queue = await runManager()
    .queueHealth()
    .catch((err: unknown) => ({ mode: "distributed" as const, ok: false, backend: "?", error: (err as Error).message, workers: [] }));
  const ok = database.ok && (queue.mode === "embedded" || queue.ok);
  return Response.json({ ok, database, queue }, { status: ok ? 200 : 503 });
}
