import path from "node:path";
import { fileIdsIn, DiskStorage, parseS3Url, S3Storage } from "@/engine/storage";
import type { FileAdoptingStorage } from "@/engine/uploads";
import { dataDir } from "@/prisma/url";
import { config } from "@/engine/config";

let storage: DiskStorage | S3Storage | undefined;

/**
 * Uploads and artifacts, content-addressed. STUDIO_ARTIFACTS picks where: unset = <data dir>/files,
 * a directory (e.g. a shared mount every worker sees), or s3://bucket/prefix (AWS_* credentials and
 * region from the environment as the AWS SDK reads them; STUDIO_S3_ENDPOINT for an S3-compatible server).
 */
export function fileStorage(): FileAdoptingStorage {
  storage ??= makeStorage(config().STUDIO_ARTIFACTS);
  return storage;
}

function makeStorage(where: string | undefined): DiskStorage | S3Storage {
  if (!where) return new DiskStorage(path.join(dataDir(), "files"));
  if (!where.startsWith("s3://")) return new DiskStorage(path.resolve(/*turbopackIgnore: true*/ where));
  const { bucket, prefix } = parseS3Url(where);
  // Loaded only when configured: most installs never touch S3.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const s3 = require("@aws-sdk/client-s3") as typeof import("@aws-sdk/client-s3");
  const endpoint = config().STUDIO_S3_ENDPOINT;
  const client = new s3.S3Client({ ...(endpoint ? { endpoint, forcePathStyle: true } : {}), region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1" });
  return new S3Storage(client, s3, bucket, prefix, path.join(dataDir(), "s3-cache"));
}

/** Brings a document's input files into this host's cache (S3 only), so nodes can read them by path. */
export async function prefetchFiles(document: unknown): Promise<void> {
  const store = fileStorage();
  if (!(store instanceof S3Storage)) return;
  for (const id of fileIdsIn(document)) {
    if (await store.exists(id)) await store.fetch(id);
  }
}

/** The path of a stored file on this host, fetched into the cache first under S3 (throws when there is no such file). */
export async function localFile(id: string): Promise<string> {
  const store = fileStorage();
  return store instanceof S3Storage ? store.fetch(id) : store.pathOf(id);
}
