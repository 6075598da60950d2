/** What every /api/v1 route checks first: the Host (single-user mode), the Origin (state changes), who is asking. */
import { requestUserId, singleUserHostRefused } from "./auth";
import { checkOrigin } from "./origin";
import { redactPaths } from "./redact";
import { log } from "@/engine/log";

export async function apiCaller(req: Request): Promise<{ userId: string } | Response> {
  const badHost = singleUserHostRefused(req.headers.get("host"));
  if (badHost) return Response.json({ message: badHost, code: "FORBIDDEN" }, { status: 403 });
  const refused = checkOrigin(req);
  if (refused) return refused;
  const userId = await requestUserId(req);
  if (!userId) return Response.json({ message: "send a personal API token as Authorization: Bearer mst_… (or log in)", code: "UNAUTHORIZED" }, { status: 401 });
  return { userId };
}

/** A TRPCError's code as the HTTP status trpc-to-openapi would give it. */
export function errorResponse(err: unknown): Response {
  const code = (err as { code?: string }).code;
  const status = code === "NOT_FOUND" ? 404 : code === "BAD_REQUEST" ? 400 : code === "UNAUTHORIZED" ? 401 : code === "FORBIDDEN" ? 403 : 500;
  if (status === 500) log().error({ err }, "API request failed");
  return Response.json({ message: status === 500 ? "internal error" : redactPaths((err as Error).message), code: code ?? "INTERNAL_SERVER_ERROR" }, { status });
}
