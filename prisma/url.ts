import { mkdirSync } from "node:fs";
import path from "node:path";
import { config, dataDir as configDataDir } from "../engine/config";

/** The data directory (uploads, artifacts, the SQLite file): STUDIO_DATA_DIR or ./data. */
export function dataDir(): string {
  const dir = configDataDir();
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** DATABASE_URL, or a SQLite file in the data directory. */
export function databaseUrl(): string {
  return config().DATABASE_URL ?? `file:${path.join(dataDir(), "studio.db")}`;
}

/** postgresql://… (or postgres://…) selects PostgreSQL; anything else is a SQLite file. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//.test(url);
}
