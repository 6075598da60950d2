/**
 * Refuses cross-site state-changing requests: a POST must come from this app's own origin.
 * (Browsers send Origin on cross-site POSTs; same-origin fetches and tools like curl send their own or none.)
 */
export function checkOrigin(req: Request): Response | null {
  if (req.method === "GET" || req.method === "HEAD") return null;
  const origin = req.headers.get("origin");
  if (!origin) return null;
  const host = req.headers.get("x-forwarded-host") ?? req.headers.get("host");
  try {
    if (new URL(origin).host === host) return null;
  } catch {
    // fall through: a malformed Origin is refused
  }
  return new Response(JSON.stringify({ error: `cross-origin request from ${origin} refused` }), {
    status: 403,
    headers: { "content-type": "application/json" },
  });
}
