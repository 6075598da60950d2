/** Request limits shared by the tRPC route and the upload route. */
import { config } from "@/engine/config";
import { db, isConflict } from "./db";

const MB = 1024 * 1024;


/** Procedures that carry a whole media file as base64 (reading a workflow out of a PNG/WAV). */
const MEDIA_PROCEDURES = new Set(["provenance.fromMedia"]);

/** The body limit of a tRPC request (a batch gets the largest limit of its procedures). */
export function bodyLimitFor(procedures: string[]): { bytes: number; label: string } {
  const { STUDIO_MAX_MEDIA_BODY_MB: mediaMb, STUDIO_MAX_BODY_MB: jsonMb } = config();
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
  return config().STUDIO_MAX_RUNS_PER_USER;
}

/** Uploads one user may store per hour (each upload request carries exactly one file). */
export function maxUploadsPerHour(): number {
  return config().STUDIO_MAX_UPLOADS_PER_HOUR;
}

/** Events per key within a sliding window (per server process: a restart forgets them). */
export class SlidingWindow {
  private readonly times = new Map<string, number[]>();
  constructor(private readonly windowMs: number) {}

  private recent(key: string, now: number): number[] {
    const kept = (this.times.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (kept.length) this.times.set(key, kept);
    else this.times.delete(key);
    return kept;
  }

  count(key: string, now = Date.now()): number {
    return this.recent(key, now).length;
  }

  add(key: string, now = Date.now()): void {
    this.times.set(key, [...this.recent(key, now), now]);
  }

  /** Minutes until the oldest event in the window leaves it. */
  minutesUntilFree(key: string, now = Date.now()): number {
    const oldest = this.recent(key, now)[0];
    return oldest === undefined ? 0 : Math.max(1, Math.ceil((oldest + this.windowMs - now) / 60_000));
  }

  clear(key: string): void {
    this.times.delete(key);
  }
}

const uploads = new SlidingWindow(60 * 60 * 1000);

/** Counts an upload against the user's hourly quota; when it is used up, says when the next one is allowed. */
export function takeUploadSlot(userId: string, now = Date.now()): { ok: true } | { ok: false; retryMinutes: number; limit: number } {
  const limit = maxUploadsPerHour();
  if (uploads.count(userId, now) >= limit) return { ok: false, retryMinutes: uploads.minutesUntilFree(userId, now), limit };
  uploads.add(userId, now);
  return { ok: true };
}

/** Failed logins per account name before logins to it pause (argon2 makes each guess cost; this caps the guesses). */
export const MAX_FAILED_LOGINS = 10;
const LOGIN_WINDOW_MS = 15 * 60 * 1000;

/**
 * Takes one of an account name's login attempts before its password is checked (case-insensitive; in the
 * database, so every web process counts together). The slot is taken by one conditional UPDATE (failures
 * below the cap → +1), so 25 parallel attempts get exactly 10 password checks, never more. The window
 * starts at the first failure and lasts 15 minutes; `loginSucceeded` frees the name again.
 */
export async function takeLoginAttempt(name: string, now = new Date()): Promise<{ ok: true } | { ok: false; retryMinutes: number }> {
  const key = name.toLowerCase();
  const expired = new Date(now.getTime() - LOGIN_WINDOW_MS);
  await db().loginThrottle.deleteMany({ where: { windowStart: { lt: expired } } });
  try {
    await db().loginThrottle.create({ data: { key, failures: 0, windowStart: now } });
  } catch (err) {
    if (!isConflict(err)) throw err; // otherwise: already counting
  }
  const taken = await db().loginThrottle.updateMany({ where: { key, failures: { lt: MAX_FAILED_LOGINS } }, data: { failures: { increment: 1 } } });
  if (taken.count === 1) return { ok: true };
  const row = await db().loginThrottle.findUnique({ where: { key } });
  const left = row ? row.windowStart.getTime() + LOGIN_WINDOW_MS - now.getTime() : 0;
  return { ok: false, retryMinutes: Math.max(1, Math.ceil(left / 60_000)) };
}

/** A correct password: the name's failures are forgotten. */
export async function loginSucceeded(name: string): Promise<void> {
  await db().loginThrottle.deleteMany({ where: { key: name.toLowerCase() } });
}
