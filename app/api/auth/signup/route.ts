import { createUser, openSignup } from "@/app/server/auth";
import { accountError, loggedIn, readCredentials } from "../session";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/** POST { name, password } → a new account, logged in. Open for the first account, then only with STUDIO_SIGNUP=open. */
export async function POST(req: Request): Promise<Response> {
  const creds = await readCredentials(req);
  if (creds instanceof Response) return creds;
  try {
    // Closed sign-up still lets the first account in: decided with the insert, so only one can be first.
    const user = await createUser(creds.name as string, creds.password as string, { onlyFirst: !openSignup() });
    return await loggedIn(req, user, 201);
  } catch (err) {
    return accountError(err);
  }
}
