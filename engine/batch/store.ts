/**
 * The persistent per-record result store of batch runs: one small JSON file per finished record under
 * `<root>/<workflow fingerprint>/records/<aa>/<record hash>.json`, written to a temporary name and
 * renamed, so a killed process leaves either a whole entry or none. It is the resume ledger (a restart
 * skips every record with an entry) and the per-record cache (adding records runs only the new ones).
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import type { AggregateJSON } from "../routing/aggregate";

export interface RecordEntry {
  v: 1;
  record: string;
  /** Wall time of the record's run when it executed. */
  ms: number;
  aggregate: AggregateJSON;
  /** Teacher-forced NLL of the record's scored tokens (Σ nats, count), when its trace was scored. */
  score?: { sum: number; tokens: number };
}

const HASH = /^[0-9a-f]{64}$/;

export class RecordStore {
  readonly dir: string;

  constructor(root: string, readonly workflowFingerprint: string) {
    if (!HASH.test(workflowFingerprint)) throw new Error(`bad workflow fingerprint "${workflowFingerprint}"`);
    this.dir = path.join(root, workflowFingerprint);
  }

  private file(recordHash: string): string {
    if (!HASH.test(recordHash)) throw new Error(`bad record hash "${recordHash}"`);
    return path.join(this.dir, "records", recordHash.slice(0, 2), `${recordHash}.json`);
  }

  /** The entry of a record, or undefined (missing or unreadable entries count as not done). */
  async get(recordHash: string): Promise<RecordEntry | undefined> {
    try {
      const e = JSON.parse(await readFile(this.file(recordHash), "utf8")) as RecordEntry;
      return e.v === 1 && e.record === recordHash ? e : undefined;
    } catch {
      return undefined;
    }
  }

  async put(entry: RecordEntry): Promise<void> {
    await this.putText(entry.record, JSON.stringify(entry));
  }

  /** Writes an entry already serialised (JSON of a RecordEntry for `recordHash`). */
  async putText(recordHash: string, text: string): Promise<void> {
    const file = this.file(recordHash);
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await this.writeInShard(path.dirname(file), tmp, text);
    await rename(tmp, file);
  }

  /** Shard directories made by this store: each is created once, not once per record. */
  private readonly shards = new Set<string>();

  private async writeInShard(dir: string, tmp: string, text: string): Promise<void> {
    if (!this.shards.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.shards.add(dir);
    }
    try {
      await writeFile(tmp, text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      // The directory went away meanwhile (e.g. the store was cleared): make it again.
      await mkdir(dir, { recursive: true });
      await writeFile(tmp, text);
    }
  }

  /** Writes a file beside the records (e.g. the last aggregate), atomically. */
  async writeFile(name: string, text: string): Promise<string> {
    const file = path.join(this.dir, name);
    await mkdir(this.dir, { recursive: true });
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`; // two batches of one workflow may write at once
    await writeFile(tmp, text);
    await rename(tmp, file);
    return file;
  }
}
