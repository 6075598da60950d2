import { createOpenApiFetchHandler } from "trpc-to-openapi";
import { apiCaller } from "@/app/server/api-http";
import { DOCUMENT_LIMITS } from "@/app/server/document-guard";
import { bodyLimitFor, readBodyLimited } from "@/app/server/limits";
import { appRouter } from "@/app/server/routers";
import { jsonTextProblem } from "@/engine/json-limits";
import { bearerToken } from "@/app/server/tokens";
import { withRequestScope } from "@/app/server/large-documents";

// A body holds a document one level down ({"document": …}), with room for a wrapper or two.
const API_WRAPPER_DEPTH = 2;

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/** The REST API (docs/cli-and-api.md "HTTP API"; /api/v1/openapi.json describes it): the procedures of routers/api.ts. */
async function handler(req: Request): Promise<Response> {
  const caller = await apiCaller(req);
  if (caller instanceof Response) return caller;
  let request = req;
  if (req.method !== "GET" && req.method !== "HEAD") {
    const limit = bodyLimitFor([]);
    const body = await readBodyLimited(req, limit.bytes);
    if (!body.ok) return Response.json({ message: `the request body is too large; the limit is ${limit.label}`, code: "PAYLOAD_TOO_LARGE" }, { status: 413 });
    // Counted before anything parses it, as on /api/trpc (a huge array would block every request).
    const problem = jsonTextProblem(new TextDecoder().decode(body.bytes), DOCUMENT_LIMITS, API_WRAPPER_DEPTH);
    if (problem) return Response.json({ message: `the request body is refused: ${problem}`, code: "PAYLOAD_TOO_LARGE" }, { status: 413 });
    request = new Request(req.url, { method: req.method, headers: req.headers, body: body.bytes, signal: req.signal });
  }
  // One procedure per request; the scope gives its large-document work the caller's place in the copies lane.
  return withRequestScope(caller.userId, () => createOpenApiFetchHandler({
    endpoint: "/api/v1",
    req: request,
    router: appRouter,
    createContext: () => ({ origin: req.headers.get("origin"), host: req.headers.get("host"), userId: caller.userId, viaToken: bearerToken(req) !== undefined }),
    onError({ error, path }) {
      if (error.code === "INTERNAL_SERVER_ERROR") console.error(`API ${path}:`, error);
    },
  }));
}

export { handler as GET, handler as POST };
