import { checkCredentials } from "@/app/server/auth";
import { loggedIn, readCredentials } from "../session";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/** POST { name, password } → a session cookie, or 401 without saying which of the two was wrong. */
export async function POST(req: Request): Promise<Response> {
  const creds = await readCredentials(req);
  if (creds instanceof Response) return creds;
  const user = await checkCredentials(String(creds.name ?? ""), typeof creds.password === "string" ? creds.password : "");
  if (!user) return Response.json({ error: "wrong user name or password" }, { status: 401 });
  return loggedIn(req, user);
}
