import { storeUpload, UploadError, uploadLimitBytes } from "@/engine/uploads";
import { checkOrigin } from "@/app/server/origin";
import { fileStorage } from "@/app/server/storage";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

const KINDS = ["image", "audio", "video"] as const;
type Kind = (typeof KINDS)[number];

function fail(status: number, error: string): Response {
  return Response.json({ error }, { status });
}

/** Reads the body while counting, and stops as soon as it passes the limit (a 2 GB upload is never buffered). */
async function readLimited(req: Request, limit: number): Promise<Uint8Array | null> {
  if (!req.body) return new Uint8Array();
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** POST /api/upload?kind=image&filename=cat.png with the raw file as the body. */
export async function POST(req: Request): Promise<Response> {
  const refused = checkOrigin(req);
  if (refused) return refused;
  const url = new URL(req.url);
  const kind = url.searchParams.get("kind") as Kind | null;
  const filename = (url.searchParams.get("filename") ?? "upload").slice(0, 200);
  if (!kind || !KINDS.includes(kind)) return fail(400, `kind must be one of ${KINDS.join(", ")}`);
  const limit = uploadLimitBytes(kind);
  const declared = Number(req.headers.get("content-length") ?? "NaN");
  const mb = (n: number) => `${Math.round(n / 1e6)} MB`;
  if (Number.isFinite(declared) && declared > limit) {
    return fail(413, `${filename} is ${mb(declared)}; the limit for ${kind} uploads is ${mb(limit)}`);
  }
  const bytes = await readLimited(req, limit);
  if (!bytes) return fail(413, `${filename} is larger than the ${mb(limit)} limit for ${kind} uploads`);
  try {
    const stored = await storeUpload(fileStorage(), bytes, { filename, expectedKind: kind });
    return Response.json(stored);
  } catch (err) {
    if (err instanceof UploadError) return fail(err.code === "too-large" ? 413 : 422, err.message);
    console.error("upload failed", err);
    return fail(500, `could not store ${filename}: ${(err as Error).message}`);
  }
}
