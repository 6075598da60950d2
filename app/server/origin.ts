/**
 * Refuses cross-site state-changing requests: a POST (or any non-GET) must come from this app's own
 * origin. Browsers send Origin (and Sec-Fetch-Site) on every POST; tools like curl send none, and a
 * request without a browser's cookies cannot act for a logged-in user anyway.
 */
export function checkOrigin(req: Request): Response | null {
  if (req.method === "GET" || req.method === "HEAD" || req.method === "OPTIONS") return null;
  const origin = req.headers.get("origin");
  const fetchSite = req.headers.get("sec-fetch-site");
  if (!origin) {
    if (fetchSite === "cross-site") return refuse("a cross-site request (Sec-Fetch-Site: cross-site) refused");
    return null;
  }
  const host = req.headers.get("x-forwarded-host") ?? req.headers.get("host");
  try {
    if (origin !== "null" && new URL(origin).host === host) return null;
  } catch {
    // fall through: a malformed Origin is refused
  }
  return refuse(`cross-origin request from ${origin} refused`);
}

function refuse(error: string): Response {
  return new Response(JSON.stringify({ error }), { status: 403, headers: { "content-type": "application/json" } });
}
