import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";

/** The loopback services .ci/run starts (tools/scale-services.sh); absent ones skip their tests. */
export const TEST_PG = process.env.STUDIO_TEST_DATABASE_URL;
export const TEST_REDIS = process.env.STUDIO_TEST_REDIS_URL;
export const root = path.join(__dirname, "../../..");

/** BullMQ 6 loads ioredis itself for redis://; it is an optional peer dependency. */
export function ioredisInstalled(): boolean {
  try {
    require.resolve("ioredis");
    return true;
  } catch {
    return false;
  }
}

export function skipMessage(): string | undefined {
  if (!TEST_PG) return "scale suite skipped: no STUDIO_TEST_DATABASE_URL (PostgreSQL could not be started; .ci/run starts it)";
  return undefined;
}

/** A new, empty database next to the test server's one; returns its URL. */
export async function freshPostgres(prefix: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
  const admin = new Client({ connectionString: TEST_PG });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const u = new URL(TEST_PG!);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new Client({ connectionString: TEST_PG });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await c.end();
    },
  };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface LogEntry {
  msg?: string;
  runId?: string;
  [field: string]: unknown;
}

/** Whether the worker logged `msg` about run `runId` (with these fields, if given). */
export function logged(w: WorkerProcess, msg: string, runId: string, fields: Record<string, unknown> = {}): boolean {
  return w.entries.some((e) => e.msg === msg && e.runId === runId && Object.entries(fields).every(([k, v]) => e[k] === v));
}

export interface WorkerProcess {
  child: ChildProcess;
  log: string[];
  /** The worker's log lines that are JSON objects (its logs are pino JSON lines: LOG_FORMAT=json). */
  entries: LogEntry[];
  /** Resolves once the worker says it takes runs. */
  ready: Promise<void>;
  exited: Promise<number | null>;
}

/** `tsx app/server/worker.ts` as a child process with the given environment. */
export function spawnWorker(env: Record<string, string>, name: string): WorkerProcess {
  // `node --import tsx` (not the tsx CLI, which runs the script in a grandchild): a SIGKILL must hit the worker itself.
  const child = spawn(process.execPath, ["--import", "tsx", "app/server/worker.ts"], {
    cwd: root,
    env: { ...process.env, LOG_FORMAT: "json", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log: string[] = [];
  const entries: LogEntry[] = [];
  let onReady: () => void;
  let onFail: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onFail = reject;
  });
  const take = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      if (!line) continue;
      log.push(line);
      try {
        const entry = JSON.parse(line) as unknown;
        if (entry && typeof entry === "object") entries.push(entry as LogEntry);
      } catch {
        // not a log line (a library writing plain text)
      }
      if (line.includes("taking runs")) onReady();
    }
  };
  child.stdout!.on("data", take);
  child.stderr!.on("data", take);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => {
    onFail(new Error(`worker ${name} exited (${code}) before it was ready:\n${log.join("\n")}`));
    resolve(code);
  }));
  return { child, log, entries, ready, exited };
}

export async function until<T>(check: () => T | undefined | false | Promise<T | undefined | false>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
