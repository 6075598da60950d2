import { createUser, signupAllowed } from "@/app/server/auth";
import { accountError, loggedIn, readCredentials } from "../session";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/** POST { name, password } → a new account, logged in. Open for the first account, then only with STUDIO_SIGNUP=open. */
export async function POST(req: Request): Promise<Response> {
  const creds = await readCredentials(req);
  if (creds instanceof Response) return creds;
  if (!(await signupAllowed())) {
    return Response.json({ error: "sign-up is closed on this server; ask its admin for an account (npm run cli -- user add <name>)" }, { status: 403 });
  }
  try {
    const user = await createUser(creds.name as string, creds.password as string);
    return await loggedIn(req, user, 201);
  } catch (err) {
    return accountError(err);
  }
}
