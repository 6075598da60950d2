import { fetchRequestHandler } from "@trpc/server/adapters/fetch";
import { appRouter } from "@/app/server/routers";
import { requestUserId, singleUserHostRefused } from "@/app/server/auth";
import { bodyLimitFor, readBodyLimited } from "@/app/server/limits";
import { checkOrigin } from "@/app/server/origin";
import { DOCUMENT_LIMITS } from "@/app/server/document-guard";
import { jsonTextProblem } from "@/engine/json-limits";
import { MAX_BATCH } from "@/app/lib/trpc-batch";
import { bearerToken } from "@/app/server/tokens";
import { withRequestScope } from "@/app/server/large-documents";

// A batch wraps each input ({"0": {"document": …}}): the document's own depth limit plus these levels.
const TRPC_WRAPPER_DEPTH = 4;

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

async function handler(req: Request) {
  const refused = checkOrigin(req);
  if (refused) return refused;
  const badHost = singleUserHostRefused(req.headers.get("host"));
  if (badHost) return Response.json({ error: badHost }, { status: 403 });
  let request = req;
  // Counted on the path as tRPC reads it: decoded, so `a%2Cb` is the two procedures it will run, not one.
  let path: string;
  try {
    path = decodeURIComponent(new URL(req.url).pathname.replace(/^\/api\/trpc\/?/, ""));
  } catch {
    return Response.json({ error: "the procedure path is not valid percent-encoding" }, { status: 400 });
  }
  const procedures = path.split(",");
  if (procedures.length > MAX_BATCH) return Response.json({ error: `a request may batch at most ${MAX_BATCH} procedures (this one has ${procedures.length})` }, { status: 413 });
  // The public read of a shared workflow answers with the whole document: once per request (anyone may call it).
  if (procedures.filter((p) => p === "share.resolve").length > 1) return Response.json({ error: "a request may ask for share.resolve once" }, { status: 413 });
  if (req.method === "POST") {
    // Big bodies are refused before anything parses them.
    const limit = bodyLimitFor(procedures);
    const body = await readBodyLimited(req, limit.bytes);
    if (!body.ok) return Response.json({ error: `the request body is ${body.declared ? `${body.declared} bytes` : "too large"}; the limit for ${path || "this request"} is ${limit.label}` }, { status: 413 });
    // Counted before anything parses it: JSON.parse of a 3-million-element array would block every request.
    const problem = jsonTextProblem(new TextDecoder().decode(body.bytes), DOCUMENT_LIMITS, TRPC_WRAPPER_DEPTH);
    if (problem) return Response.json({ error: `the request body is refused: ${problem}` }, { status: 413 });
    request = new Request(req.url, { method: "POST", headers: req.headers, body: body.bytes, signal: req.signal });
  }
  const userId = await requestUserId(req);
  // The batch's procedures share one count of large-document work (app/server/large-documents.ts).
  return withRequestScope(userId, () => fetchRequestHandler({
    endpoint: "/api/trpc",
    req: request,
    router: appRouter,
    maxBatchSize: MAX_BATCH, // and tRPC holds the same limit itself, however the path was written
    createContext: () => ({ origin: req.headers.get("origin"), host: req.headers.get("host"), userId, viaToken: bearerToken(req) !== undefined }),
    onError({ error, path }) {
      if (error.code === "INTERNAL_SERVER_ERROR") console.error(`tRPC ${path}:`, error);
    },
  }));
}

export { handler as GET, handler as POST };
