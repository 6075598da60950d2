// Free of the database, so the request proxy (proxy.ts) can use it.
import { config } from "@/engine/config";

/** The cookie that carries a login session's token. */
export const SESSION_COOKIE = "studio_session";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK.has(hostname.toLowerCase());
}

/**
 * Accounts are on when STUDIO_AUTH=on, or when the server binds anything but a loopback address
 * (HOST, as `npm start` passes it to `next start -H`). STUDIO_AUTH=off forces single-user mode.
 */
export function authEnabled(): boolean {
  const { STUDIO_AUTH: setting, HOST: host } = config();
  if (setting) return setting === "on";
  return !!host && !isLoopbackHost(host);
}

/**
 * Single-user mode answers only requests addressed to a loopback name: a page of another site that
 * resolves its own name to 127.0.0.1 (DNS rebinding) gets nothing, and neither does a server that was
 * started on a public address without HOST (where accounts would be on).
 */
export function singleUserHostRefused(hostHeader: string | null): string | null {
  if (authEnabled() || !hostHeader) return null;
  let hostname: string;
  try {
    hostname = new URL(`http://${hostHeader}`).hostname;
  } catch {
    return `bad Host header "${hostHeader}"`;
  }
  if (isLoopbackHost(hostname)) return null;
  return `this single-user MoE Studio answers only on 127.0.0.1/localhost (the request was for "${hostname}"); to serve other addresses, start it with HOST=<address> or STUDIO_AUTH=on so that it requires login`;
}

/** Paths anyone may open with accounts on: the login page, read-only share pages and /metrics (STUDIO_METRICS_TOKEN guards it). */
export function isPublicPath(pathname: string): boolean {
  return pathname === "/login" || pathname === "/metrics" || pathname.startsWith("/login/") || pathname.startsWith("/s/");
}
