import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { canReadArtifact } from "@/app/server/access";
import { authEnabled, requestUserId, singleUserHostRefused } from "@/app/server/auth";
import { byteRange } from "@/app/server/byte-range";
import { localFile } from "@/app/server/storage";
import { BLOB_ID } from "@/engine/storage";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

const MIME: Record<string, string> = {
  png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", webp: "image/webp", gif: "image/gif",
  wav: "audio/wav", mp3: "audio/mpeg", ogg: "audio/ogg", flac: "audio/flac",
  mp4: "video/mp4", mov: "video/quicktime", webm: "video/webm", mkv: "video/x-matroska", avi: "video/x-msvideo",
  json: "application/json",
};

function notFound(id: string): Response {
  return Response.json({ error: `file ${id.slice(0, 80)} does not exist` }, { status: 404 });
}

/**
 * GET /api/files/<sha256>.<ext>[?share=<token>]: a stored upload or artifact, streamed from disk (a 1 GB video is
 * never held in memory; slow readers hold a file handle, not the file), with single byte ranges (206) for media
 * seeking. Ids are validated before they become paths; with accounts on, a file someone may not read is "not found",
 * like a missing one.
 */
export async function GET(req: Request, { params }: { params: Promise<{ id: string }> }): Promise<Response> {
  const badHost = singleUserHostRefused(req.headers.get("host"));
  if (badHost) return Response.json({ error: badHost }, { status: 403 });
  const { id } = await params;
  if (!BLOB_ID.test(id)) return Response.json({ error: `"${id.slice(0, 80)}" is not a valid file id` }, { status: 400 });
  const share = new URL(req.url).searchParams.get("share");
  if (!(await canReadArtifact(await requestUserId(req), id, share))) return notFound(id);
  let file: string;
  let size: number;
  try {
    file = await localFile(id);
    size = (await stat(file)).size;
  } catch {
    return notFound(id);
  }
  const ext = id.split(".")[1] ?? "";
  const headers: Record<string, string> = {
    "content-type": MIME[ext] ?? "application/octet-stream",
    // Content-addressed, so never stale; with accounts on, only the browser may keep it.
    "cache-control": `${authEnabled() ? "private" : "public"}, max-age=31536000, immutable`,
    "x-content-type-options": "nosniff",
    "accept-ranges": "bytes",
  };
  const range = byteRange(req.headers.get("range"), size);
  if (range === "unsatisfiable") return new Response(null, { status: 416, headers: { ...headers, "content-range": `bytes */${size}` } });
  const [start, end] = range ?? [0, size - 1];
  const body = size === 0 ? null : (Readable.toWeb(createReadStream(file, { start, end })) as ReadableStream<Uint8Array>);
  if (!range) return new Response(body, { headers: { ...headers, "content-length": String(size) } });
  return new Response(body, { status: 206, headers: { ...headers, "content-length": String(end - start + 1), "content-range": `bytes ${start}-${end}/${size}` } });
}
