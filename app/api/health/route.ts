import { db } from "@/app/server/db";
import { runManager } from "@/app/server/runs";

export const dynamic = "force-dynamic";

/**
 * GET /api/health (open, for load balancers and compose healthchecks): the database, and in queue mode
 * (STUDIO_QUEUE) the queue's Redis or PostgreSQL and the workers heard from recently. 503 when the
 * database or the queue does not answer; no workers is reported, not an error (runs wait for one).
 */
export async function GET(): Promise<Response> {
  let database: { ok: boolean; error?: string };
  try {
    await db().$queryRawUnsafe("SELECT 1");
    database = { ok: true };
  } catch (err) {
    database = { ok: false, error: (err as Error).message };
  }
  const queue = await runManager()
    .queueHealth()
    .catch((err: unknown) => ({ mode: "distributed" as const, ok: false, backend: "?", error: (err as Error).message, workers: [] }));
  const ok = database.ok && (queue.mode === "embedded" || queue.ok);
  return Response.json({ ok, database, queue }, { status: ok ? 200 : 503 });
}
