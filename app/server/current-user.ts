import { cookies } from "next/headers";
import { authEnabled, LOCAL_USER, SESSION_COOKIE, sessionUser } from "./auth";

export { isPublicPath } from "./auth-mode";

/** For server components: the logged-in user, { id: "local" } in single-user mode, or null. */
export async function currentUser(): Promise<{ id: string; name: string } | null> {
  if (!authEnabled()) return { id: LOCAL_USER, name: LOCAL_USER };
  return sessionUser((await cookies()).get(SESSION_COOKIE)?.value);
}

const BASE = new URL("http://studio.invalid/");

/**
 * A same-origin path to return to after logging in, "/" for anything else (no open redirect). `next` is
 * resolved the way a browser resolves it (which drops tabs and newlines and reads "\\" as "/"), and the
 * normalised path is resolved once more, so what goes to the browser can only lead back to this origin.
 */
export function safeNext(next: unknown): string {
  if (typeof next !== "string" || next.length > 2000) return "/";
  let path: string;
  try {
    const url = new URL(next, BASE);
    if (url.origin !== BASE.origin) return "/";
    path = `${url.pathname}${url.search}${url.hash}`;
    if (new URL(path, BASE).origin !== BASE.origin) return "/";
  } catch {
    return "/";
  }
  return path === "/login" || path.startsWith("/login/") || path.startsWith("/login?") ? "/" : path;
}
