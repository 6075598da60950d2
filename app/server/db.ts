import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaClient } from "@/prisma/generated/client";
import { databaseUrl } from "@/prisma/url";

const globalForPrisma = globalThis as unknown as { studioPrisma?: PrismaClient };

/** One PrismaClient per process (Next's dev server reloads modules; the global keeps it single). */
export function db(): PrismaClient {
  globalForPrisma.studioPrisma ??= new PrismaClient({ adapter: new PrismaBetterSQLite3({ url: databaseUrl() }) });
  return globalForPrisma.studioPrisma;
}
