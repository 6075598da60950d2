import { rm } from "node:fs/promises";
import { receiveToFile, storeUploadedFile, UploadError, uploadLimitBytes } from "@/engine/uploads";
import { recordUploader } from "@/app/server/access";
import { requestUserId, singleUserHostRefused } from "@/app/server/auth";
import { takeUploadSlot } from "@/app/server/limits";
import { checkOrigin } from "@/app/server/origin";
import { redactPaths } from "@/app/server/redact";
import { fileStorage } from "@/app/server/storage";

export const runtime = "nodejs";
export const dynamic = "force-dynamic";

const KINDS = ["image", "audio", "video"] as const;
type Kind = (typeof KINDS)[number];

function fail(status: number, error: string): Response {
  return Response.json({ error }, { status });
}

/**
 * POST /api/upload?kind=image&filename=cat.png with the raw file (exactly one) as the body. The body
 * streams straight to a file in the store's own folder (counted, and refused with 413 as soon as it
 * passes the limit; hashed on the way), is checked there, and is moved into the store: nothing in
 * between buffers it (proxy.ts does not run for /api/, see there).
 */
export async function POST(req: Request): Promise<Response> {
  const refused = checkOrigin(req);
  if (refused) return refused;
  const badHost = singleUserHostRefused(req.headers.get("host"));
  if (badHost) return fail(403, badHost);
  const userId = await requestUserId(req);
  if (!userId) return fail(401, "log in to upload files");
  if (/^multipart\//i.test(req.headers.get("content-type") ?? "")) return fail(400, "send one file per request, as the raw request body (not a multipart form)");
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
  const slot = takeUploadSlot(userId);
  if (!slot.ok) return fail(429, `you have uploaded ${slot.limit} files in the last hour, the limit; try again in ${slot.retryMinutes} min`);
  const store = fileStorage();
  const incoming = store.incomingPath();
  try {
    const received = await receiveToFile(req.body, incoming, limit, filename);
    if (Number.isFinite(declared) && received.bytes !== declared) return fail(400, `${filename} arrived cut short: ${received.bytes} of the ${declared} bytes announced`);
    const stored = await storeUploadedFile(store, incoming, { filename, expectedKind: kind, ...received });
    await recordUploader(userId, stored.id);
    return Response.json(stored);
  } catch (err) {
    if (err instanceof UploadError) return fail(err.code === "too-large" ? 413 : 422, err.message);
    console.error("upload failed", err);
    return fail(500, redactPaths(`could not store ${filename}: ${(err as Error).message}`));
  } finally {
    await rm(incoming, { force: true });
  }
}
