import Database from "better-sqlite3";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** A new data directory whose SQLite file has every migration in prisma/migrations applied (as `migrate deploy` would). */
export function freshDataDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "studio-test-"));
  const sqlite = new Database(path.join(dir, "studio.db"));
  const root = path.join(__dirname, "../../prisma/migrations");
  for (const m of readdirSync(root).filter((d) => /^\d+_/.test(d)).sort()) sqlite.exec(readFileSync(path.join(root, m, "migration.sql"), "utf8"));
  sqlite.close();
  return dir;
}
