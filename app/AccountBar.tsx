import { headers } from "next/headers";
import { redirect } from "next/navigation";
import { authEnabled } from "@/app/server/auth";
import { currentUser, isPublicPath } from "@/app/server/current-user";
import "./account.css";

/**
 * With accounts on: sends a visitor without a live session to /login (the proxy only sees whether a
 * cookie is there; this checks it), and shows who is logged in with a way to log out.
 */
export async function AccountBar() {
  // Read the request first: that renders every page per request, so the mode chosen when the server
  // starts (not when it was built) decides.
  const path = (await headers()).get("x-studio-path") ?? "/";
  if (!authEnabled()) return null;
  const user = await currentUser();
  if (!user) {
    if (isPublicPath(path.split("?")[0]!)) return null;
    redirect(`/login?next=${encodeURIComponent(path)}`);
  }
  return (
    <div className="account-bar" data-testid="account-bar">
      <span>
        Logged in as <strong data-testid="account-name">{user.name}</strong>
      </span>
      <form action="/api/auth/logout" method="post">
        <button type="submit">Log out</button>
      </form>
    </div>
  );
}
