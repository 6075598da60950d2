import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "@/prisma/generated/client";
import { PrismaClient as PostgresPrismaClient } from "@/prisma/postgres/generated/client";
import { databaseUrl, isPostgresUrl } from "@/prisma/url";

const globalForPrisma = globalThis as unknown as { studioPrisma?: PrismaClient };

/**
 * One PrismaClient per process (Next's dev server reloads modules; the global keeps it single).
 * DATABASE_URL=postgresql://… uses the client generated from prisma/postgres/schema.prisma (Prisma's
 * client is built per provider: its query compiler and the adapter must agree), otherwise SQLite.
 * Both come from the same models, so the PostgreSQL client is used through the SQLite client's type.
 */
export function db(): PrismaClient {
  globalForPrisma.studioPrisma ??= createClient(databaseUrl());
  return globalForPrisma.studioPrisma;
}

function createClient(url: string): PrismaClient {
  if (isPostgresUrl(url)) return new PostgresPrismaClient({ adapter: new PrismaPg({ connectionString: url }) }) as unknown as PrismaClient;
  return new PrismaClient({ adapter: new WalSqlite({ url }) });
}

/**
 * SQLite in write-ahead-log mode with `synchronous=NORMAL`: a commit appends to the log without an fsync (the log is
 * synced at checkpoints), so a run's progress rows cost microseconds each instead of an fsync'd rollback-journal
 * transaction each (~5–15 ms on this disk: a run of 1,000 trivial nodes took 21 s to record). A committed write
 * survives a crash of the process; only a power loss may take the last commits back. Readers no longer wait for
 * writers, which the CLI, workers and the web server sharing one file also need.
 */
export const SQLITE_PRAGMAS = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;";

class WalSqlite extends PrismaBetterSQLite3 {
  override async connect() {
    const adapter = await super.connect();
    await adapter.executeScript(SQLITE_PRAGMAS);
    return adapter;
  }
}

/**
 * Whether a database error is a unique-constraint violation (Prisma P2002) or a serializable transaction's
 * write conflict (Prisma P2034; PostgreSQL's driver adapter reports it as kind TransactionWriteConflict).
 */
export function isConflict(err: unknown): boolean {
  const e = err as { code?: unknown; cause?: { kind?: unknown } };
  return e.code === "P2002" || e.code === "P2034" || e.cause?.kind === "TransactionWriteConflict" || e.cause?.kind === "UniqueConstraintViolation";
}
