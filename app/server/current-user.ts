import { cookies } from "next/headers";
import { authEnabled, LOCAL_USER, SESSION_COOKIE, sessionUser } from "./auth";

export { isPublicPath } from "./auth-mode";

/** For server components: the logged-in user, { id: "local" } in single-user mode, or null. */
export async function currentUser(): Promise<{ id: string; name: string } | null> {
  if (!authEnabled()) return { id: LOCAL_USER, name: LOCAL_USER };
  return sessionUser((await cookies()).get(SESSION_COOKIE)?.value);
}

/** A same-site path to return to after logging in ("/" for anything else, so no open redirect). */
export function safeNext(next: unknown): string {
  if (typeof next !== "string" || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\") || next.length > 2000) return "/";
  return next.startsWith("/login") ? "/" : next;
}
