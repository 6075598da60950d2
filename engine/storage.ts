import { createHash, randomUUID } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import type { Readable } from "node:stream";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Storage } from "./node";

/** A stored file's id: its sha256, then an optional extension. */
export const BLOB_ID = /^[0-9a-f]{64}(\.[a-z0-9]{1,8})?$/;

/**
 * Content-addressed blobs on local disk: `<root>/<aa>/<sha256>.<ext>`. Ids are validated before they
 * become paths, so a crafted id can never reach outside the root.
 */
export class DiskStorage implements Storage {
  constructor(readonly root: string) {}

  pathOf(id: string): string {
    if (!BLOB_ID.test(id)) throw new Error(`"${id}" is not a valid file id`);
    return path.join(this.root, id.slice(0, 2), id);
  }

  async read(id: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`file ${id} is missing from the data directory`);
      throw err;
    }
  }

  async exists(id: string): Promise<boolean> {
    try {
      await stat(this.pathOf(id));
      return true;
    } catch {
      return false;
    }
  }

  async write(bytes: Uint8Array, ext: string): Promise<string> {
    const cleanExt = ext.replace(/^\./, "").toLowerCase();
    if (cleanExt && !/^[a-z0-9]{1,8}$/.test(cleanExt)) throw new Error(`bad file extension "${ext}"`);
    const hash = createHash("sha256").update(bytes).digest("hex");
    const id = cleanExt ? `${hash}.${cleanExt}` : hash;
    const file = this.pathOf(id);
    if (await this.exists(id)) return id;
    await mkdir(path.dirname(file), { recursive: true });
    // Write then rename, so a crash never leaves a half-written blob under its final name.
    const tmp = `${file}.${randomUUID()}.tmp`; // two writes of the same new content at once each rename their own
    await writeFile(tmp, bytes);
    await rename(tmp, file);
    return id;
  }

  /** A new path for an upload being received, inside the root (so adopting it is a rename). */
  incomingPath(): string {
    return path.join(this.root, ".incoming", `${randomUUID()}.part`);
  }

  /** Moves a finished file (under incomingPath) into the store as `<sha256>.<ext>`; a copy already there wins. */
  async adopt(file: string, ext: string, sha256: string): Promise<string> {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error("adopt: not a sha256");
    const id = ext ? `${sha256}.${ext}` : sha256;
    const target = this.pathOf(id);
    if (await this.exists(id)) {
      await rm(file, { force: true });
      return id;
    }
    await mkdir(path.dirname(target), { recursive: true });
    await rename(file, target);
    return id;
  }
}

/** Where S3 blobs live: `s3://bucket/prefix` (prefix optional). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new Error(`"${url}" is not an s3://bucket/prefix address`);
  return { bucket: m[1]!, prefix: (m[2] ?? "").replace(/^\/+|\/+$/g, "") };
}

/** The part of @aws-sdk/client-s3 this store uses (the client is created by the caller). */
export interface S3Like {
  send(command: unknown): Promise<unknown>;
}

/**
 * Content-addressed blobs in an S3-compatible bucket, with a local DiskStorage as a write-through cache:
 * nodes that hand a file to another program (ffmpeg) need a local path, so `pathOf` answers from the
 * cache, and `fetch` brings a blob into it first (a run's input files are fetched before it starts).
 */
export class S3Storage implements Storage {
  readonly local: DiskStorage;

  constructor(
    private readonly client: S3Like,
    private readonly commands: {
      GetObjectCommand: new (input: { Bucket: string; Key: string }) => unknown;
      PutObjectCommand: new (input: { Bucket: string; Key: string; Body: Uint8Array | Readable; ContentLength?: number; ContentType?: string }) => unknown;
      HeadObjectCommand: new (input: { Bucket: string; Key: string }) => unknown;
    },
    readonly bucket: string,
    readonly prefix: string,
    cacheDir: string,
  ) {
    this.local = new DiskStorage(cacheDir);
  }

  private key(id: string): string {
    this.local.pathOf(id); // validates the id
    return this.prefix ? `${this.prefix}/${id.slice(0, 2)}/${id}` : `${id.slice(0, 2)}/${id}`;
  }

  pathOf(id: string): string {
    const file = this.local.pathOf(id);
    if (!existsSync(file)) throw new Error(`file ${id} is in s3://${this.bucket} but not yet in this host's cache (fetch it first)`);
    return file;
  }

  /** Brings a blob into the local cache (no-op when it is there) and returns its path. */
  async fetch(id: string): Promise<string> {
    if (!(await this.local.exists(id))) {
      const bytes = await this.download(id);
      const stored = await this.local.write(bytes, id.split(".")[1] ?? "");
      if (stored !== id) throw new Error(`file ${id} in s3://${this.bucket} does not match its content hash`);
    }
    return this.local.pathOf(id);
  }

  private async download(id: string): Promise<Buffer> {
    try {
      const out = (await this.client.send(new this.commands.GetObjectCommand({ Bucket: this.bucket, Key: this.key(id) }))) as { Body?: { transformToByteArray(): Promise<Uint8Array> } };
      if (!out.Body) throw new Error("empty response");
      return Buffer.from(await out.Body.transformToByteArray());
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === "NoSuchKey" || name === "NotFound") throw new Error(`file ${id} is missing from s3://${this.bucket}/${this.prefix}`);
      throw err;
    }
  }

  async read(id: string): Promise<Buffer> {
    await this.fetch(id);
    return this.local.read(id);
  }

  async exists(id: string): Promise<boolean> {
    return (await this.local.exists(id)) || (await this.remoteHas(id));
  }

  incomingPath(): string {
    return this.local.incomingPath();
  }

  async adopt(file: string, ext: string, sha256: string): Promise<string> {
    const id = await this.local.adopt(file, ext, sha256);
    if (!(await this.remoteHas(id))) {
      const size = (await stat(this.local.pathOf(id))).size;
      await this.client.send(new this.commands.PutObjectCommand({ Bucket: this.bucket, Key: this.key(id), Body: createReadStream(this.local.pathOf(id)), ContentLength: size }));
    }
    return id;
  }

  async write(bytes: Uint8Array, ext: string): Promise<string> {
    const id = await this.local.write(bytes, ext);
    // Content-addressed: an object already under this key holds these very bytes.
    if (!(await this.remoteHas(id))) {
      await this.client.send(new this.commands.PutObjectCommand({ Bucket: this.bucket, Key: this.key(id), Body: bytes }));
    }
    return id;
  }

  private async remoteHas(id: string): Promise<boolean> {
    try {
      await this.client.send(new this.commands.HeadObjectCommand({ Bucket: this.bucket, Key: this.key(id) }));
      return true;
    } catch {
      return false;
    }
  }
}

/** Every string in a document that is a stored file id (inputs name their uploads by id). */
export function fileIdsIn(value: unknown, out = new Set<string>()): Set<string> {
  if (typeof value === "string") {
    if (BLOB_ID.test(value)) out.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) fileIdsIn(v, out);
  } else if (value && typeof value === "object") {
    for (const v of Object.values(value)) fileIdsIn(v, out);
  }
  return out;
}
