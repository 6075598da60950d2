/** Request limits shared by the tRPC route and the upload route. */

const MB = 1024 * 1024;

function envNumber(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/** Procedures that carry a whole media file as base64 (reading a workflow out of a PNG/WAV). */
const MEDIA_PROCEDURES = new Set(["provenance.fromMedia"]);

/** The body limit of a tRPC request (a batch gets the largest limit of its procedures). */
export function bodyLimitFor(procedures: string[]): { bytes: number; label: string } {
  const mediaMb = envNumber("STUDIO_MAX_MEDIA_BODY_MB", 96);
  const jsonMb = envNumber("STUDIO_MAX_BODY_MB", 16);
  const mb = procedures.some((p) => MEDIA_PROCEDURES.has(p)) ? mediaMb : jsonMb;
  return { bytes: mb * MB, label: `${mb} MB` };
}

/**
 * Reads a request body while counting and stops as soon as it passes `limit`, so an oversized body is
 * never buffered whole; a Content-Length over the limit is refused before reading anything.
 */
export async function readBodyLimited(req: Request, limit: number): Promise<{ ok: true; bytes: Uint8Array<ArrayBuffer> } | { ok: false; declared: number | null }> {
  const declared = Number(req.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > limit) return { ok: false, declared };
  if (!req.body) return { ok: true, bytes: new Uint8Array() };
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      return { ok: false, declared: null };
    }
    chunks.push(value);
  }
  return { ok: true, bytes: new Uint8Array(Buffer.concat(chunks)) };
}

/** Concurrent runs (queued + running) one user may have. */
export function maxRunsPerUser(): number {
  return Math.floor(envNumber("STUDIO_MAX_RUNS_PER_USER", 4));
}

/** Uploads one user may store per hour (each upload request carries exactly one file). */
export function maxUploadsPerHour(): number {
  return Math.floor(envNumber("STUDIO_MAX_UPLOADS_PER_HOUR", 300));
}

const uploadTimes = new Map<string, number[]>();

/**
 * Counts an upload against the user's hourly quota; returns the minutes until the next one is
 * allowed when the quota is used up. (Per server process: a restart forgets the counts.)
 */
export function takeUploadSlot(userId: string, now = Date.now()): { ok: true } | { ok: false; retryMinutes: number; limit: number } {
  const hour = 60 * 60 * 1000;
  const limit = maxUploadsPerHour();
  const recent = (uploadTimes.get(userId) ?? []).filter((t) => now - t < hour);
  if (recent.length >= limit) {
    uploadTimes.set(userId, recent);
    return { ok: false, retryMinutes: Math.max(1, Math.ceil((recent[0]! + hour - now) / 60_000)), limit };
  }
  recent.push(now);
  uploadTimes.set(userId, recent);
  return { ok: true };
}
