import { openApiDocument } from "@/app/server/openapi";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/** The OpenAPI 3 document of /api/v1 (open to anyone: it describes the API, it holds no data). */
export function GET(req: Request): Response {
  return Response.json(openApiDocument(`${new URL(req.url).origin}/api/v1`));
}
