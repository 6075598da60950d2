import { singleUserHostRefused } from "@/app/server/auth-mode";
import { db } from "@/app/server/db";

export const dynamic = "force-dynamic";

export async function GET(req?: Request): Promise<Response> {
  const badHost = req && singleUserHostRefused(req.headers.get("host"));
  if (badHost) return Response.json({ ok: false, error: badHost }, { status: 403 });
  try {
    await db().$queryRawUnsafe("SELECT 1");
    return Response.json({ ok: true });
  } catch (err) {
    return Response.json({ ok: false, error: (err as Error).message }, { status: 503 });
  }
}
