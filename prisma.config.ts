import path from "node:path";
import { defineConfig } from "prisma/config";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";
import { PrismaPg } from "@prisma/adapter-pg";
import { databaseUrl, isPostgresUrl } from "./prisma/url";

// Prisma 6 with the JS engine: no engine binaries are downloaded (they cannot be, offline).
process.env.DATABASE_URL ??= databaseUrl();
// DATABASE_URL=postgresql://… picks the PostgreSQL schema (generated from schema.prisma) and its migrations.
// STUDIO_PRISMA_TARGET=sqlite|postgresql overrides that, for `npm run setup` generating both clients.
const target = process.env.STUDIO_PRISMA_TARGET;
const postgres = target ? target === "postgresql" : isPostgresUrl(databaseUrl());
const dir = postgres ? path.join("prisma", "postgres") : "prisma";

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: path.join(dir, "schema.prisma"),
  migrations: { path: path.join(dir, "migrations") },
  adapter: async () => (postgres ? new PrismaPg({ connectionString: databaseUrl() }) : new PrismaBetterSQLite3({ url: databaseUrl() })),
});
