/**
 * Applies prisma/postgres/migrations/<name>/migration.sql in name order, each once, each in a transaction,
 * recording them in "_studio_migrations". Why not `prisma migrate deploy`: with Prisma 6.19's JS schema
 * engine and @prisma/adapter-pg it stops with "Column type 'name' could not be deserialized from the
 * database" before applying anything (the engine binaries that would avoid it cannot be downloaded here).
 * The SQL itself is Prisma's: `prisma migrate diff --to-schema-datamodel prisma/postgres/schema.prisma --script`.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { Client } from "pg";
import { config } from "../../engine/config";

export const POSTGRES_MIGRATIONS = path.join(__dirname, "migrations");

export async function migratePostgres(url: string, log: (line: string) => void = console.log): Promise<string[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  const applied: string[] = [];
  try {
    // One migrator at a time (several workers may start together).
    await client.query("SELECT pg_advisory_lock(727274)");
    await client.query('CREATE TABLE IF NOT EXISTS "_studio_migrations" (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())');
    const done = new Set((await client.query<{ name: string }>('SELECT name FROM "_studio_migrations"')).rows.map((r) => r.name));
    const names = readdirSync(POSTGRES_MIGRATIONS, { withFileTypes: true }).filter((d) => d.isDirectory() && /^\d+_/.test(d.name)).map((d) => d.name).sort();
    for (const name of names) {
      if (done.has(name)) continue;
      const sql = readFileSync(path.join(POSTGRES_MIGRATIONS, name, "migration.sql"), "utf8");
      await client.query("BEGIN");
      try {
        await client.query(sql);
        await client.query('INSERT INTO "_studio_migrations" (name) VALUES ($1)', [name]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK");
        throw new Error(`PostgreSQL migration ${name} failed: ${(err as Error).message}`);
      }
      applied.push(name);
      log(`applied ${name}`);
    }
    if (!applied.length) log("PostgreSQL schema is up to date");
  } finally {
    await client.query("SELECT pg_advisory_unlock(727274)").catch(() => undefined);
    await client.end();
  }
  return applied;
}

if (require.main === module) {
  const url = config().DATABASE_URL;
  if (!url) {
    console.error("set DATABASE_URL=postgresql://…");
    process.exit(1);
  }
  migratePostgres(url).catch((err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  });
}
