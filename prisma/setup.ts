/**
 * `npm run setup`: checks that prisma/postgres/schema.prisma still matches schema.prisma, generates the
 * Prisma client for SQLite and for PostgreSQL (the app imports both; DATABASE_URL picks one at run time),
 * then applies the migrations of the database DATABASE_URL names (SQLite: `prisma migrate deploy`;
 * PostgreSQL: prisma/postgres/migrate.ts, see there why), then gives data from before stored files had
 * grants its grants.
 */
import "../app/server/load-env";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { POSTGRES_SCHEMA, postgresSchema, SQLITE_SCHEMA } from "./postgres/generate";
import { migratePostgres } from "./postgres/migrate";
import { databaseUrl, isPostgresUrl } from "./url";

function prisma(args: string[], env: Record<string, string> = {}): void {
  const r = spawnSync("npx", ["prisma", ...args], { stdio: "inherit", env: { ...process.env, ...env } });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (readFileSync(POSTGRES_SCHEMA, "utf8") !== postgresSchema(readFileSync(SQLITE_SCHEMA, "utf8"))) {
  console.error("prisma/postgres/schema.prisma is out of date with prisma/schema.prisma: run `npx tsx prisma/postgres/generate.ts` and add a PostgreSQL migration (docs/scaling-and-deploy.md)");
  process.exit(1);
}
// generate never connects; a DATABASE_URL of the other provider makes it try to download engines, so each gets its own kind.
prisma(["generate"], { STUDIO_PRISMA_TARGET: "sqlite", DATABASE_URL: "file:generate-only.db" });
prisma(["generate"], { STUDIO_PRISMA_TARGET: "postgresql", DATABASE_URL: "postgresql://generate-only@127.0.0.1/none" });
/** Data made before stored files had grants gets them (app/server/file-grants-backfill.ts; idempotent). */
async function backfill(): Promise<void> {
  const { backfillFileGrants } = await import("../app/server/file-grants-backfill");
  const n = await backfillFileGrants();
  if (n.uploads + n.runs + n.versions) console.log(`file grants for earlier data: ${n.uploads} upload(s), ${n.runs} run file(s), ${n.versions} version file(s)`);
}

(isPostgresUrl(databaseUrl()) ? migratePostgres(databaseUrl()).then(() => undefined) : Promise.resolve(prisma(["migrate", "deploy"])))
  .then(backfill)
  .then(
    () => process.exit(0),
    (err: unknown) => {
      console.error((err as Error).message);
      process.exit(1);
    },
  );
