import path from "node:path";
import { DiskStorage } from "@/engine/storage";
import { dataDir } from "@/prisma/url";

let storage: DiskStorage | undefined;

/** Uploads and artifacts, content-addressed under <data dir>/files. */
export function fileStorage(): DiskStorage {
  storage ??= new DiskStorage(path.join(dataDir(), "files"));
  return storage;
}
