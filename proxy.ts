import { NextResponse, type NextRequest } from "next/server";
import { authEnabled, isPublicPath, SESSION_COOKIE, singleUserHostRefused } from "@/app/server/auth-mode";
import { contentSecurityPolicy, newNonce } from "@/app/server/csp";

/**
 * In front of every page request (not static assets, not /api/):
 * - single-user mode answers only loopback Host names;
 * - with accounts on, a page request without a session cookie goes to /login?next=… at once. The
 *   session itself is checked against the database where it is used: the root layout (pages), tRPC,
 *   and each API route, which answer 401/404 on their own. /login and /s/<token> pass.
 * - every page gets a Content-Security-Policy with a fresh nonce (app/server/csp.ts); Next reads the
 *   nonce from the request's copy of the header and puts it on its scripts (so pages render per request).
 * The path is handed on in x-studio-path for the layout's redirect.
 *
 * /api/ is not matched: for every request the proxy runs on, Next clones the body and buffers it, cut
 * at experimental.proxyClientMaxBodySize (10 MB), so uploads and large tRPC bodies arrived truncated.
 * API routes check the Host, origin and session themselves and read their bodies as they stream.
 */
export function proxy(request: NextRequest) {
  const refused = singleUserHostRefused(request.headers.get("host"));
  if (refused) return new NextResponse(refused, { status: 403, headers: { "content-type": "text/plain; charset=utf-8" } });
  const { pathname, search } = request.nextUrl;
  const headers = new Headers(request.headers);
  headers.set("x-studio-path", `${pathname}${search}`);
  const csp = contentSecurityPolicy(newNonce());
  headers.set("content-security-policy", csp);
  if (authEnabled() && !pathname.startsWith("/api/") && !isPublicPath(pathname) && !request.cookies.get(SESSION_COOKIE)?.value) {
    const login = new URL("/login", request.url);
    login.searchParams.set("next", `${pathname}${search}`);
    return NextResponse.redirect(login, 303);
  }
  const response = NextResponse.next({ request: { headers } });
  response.headers.set("content-security-policy", csp);
  return response;
}

export const config = {
  // Static files by their folders only (Next's build output, the one public folder): a page path that merely ends in
  // ".png" or ".js" (/w/abc.png) is a page, and gets its CSP. /icon.svg is the app's icon (app/icon.svg), shown on the
  // login page too.
  matcher: ["/((?!api/|_next/static/|_next/image|favicon.ico$|icon.svg$|docs/[^/]+\\.png$).*)"],
};
