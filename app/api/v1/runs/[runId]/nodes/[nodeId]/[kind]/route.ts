import { apiCaller, errorResponse } from "@/app/server/api-http";
import { EXPORT_FORMATS, runExport, type ExportFormat } from "@/app/server/exports";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

/** GET /api/v1/runs/{runId}/nodes/{nodeId}/{trace|aggregate}?format=json|csv|safetensors */
export async function GET(req: Request, { params }: { params: Promise<{ runId: string; nodeId: string; kind: string }> }): Promise<Response> {
  const caller = await apiCaller(req);
  if (caller instanceof Response) return caller;
  const { runId, nodeId, kind } = await params;
  const format = new URL(req.url).searchParams.get("format") ?? "json";
  if (kind !== "trace" && kind !== "aggregate") return Response.json({ message: `"${kind.slice(0, 40)}" is not trace or aggregate`, code: "NOT_FOUND" }, { status: 404 });
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) return Response.json({ message: `format must be one of ${EXPORT_FORMATS.join(", ")}`, code: "BAD_REQUEST" }, { status: 400 });
  try {
    const file = await runExport(caller.userId, runId, nodeId, kind, format as ExportFormat);
    return new Response(file.body as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": file.contentType, "content-disposition": `attachment; filename="${file.filename}"`, "x-content-type-options": "nosniff", "cache-control": "private, no-store" },
    });
  } catch (err) {
    return errorResponse(err);
  }
}
