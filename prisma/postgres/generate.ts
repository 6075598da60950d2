/**
 * prisma/schema.prisma is the one source of truth for the data model. This derives the PostgreSQL
 * variant from it (provider and client output swapped, nothing else), so the two can never drift:
 *   tsx prisma/postgres/generate.ts          writes prisma/postgres/schema.prisma
 *   tsx prisma/postgres/generate.ts --check  exits 1 when the file is out of date
 * A schema change then needs a migration for each database: see docs/scaling-and-deploy.md.
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const root = path.join(__dirname, "..");
export const SQLITE_SCHEMA = path.join(root, "schema.prisma");
export const POSTGRES_SCHEMA = path.join(__dirname, "schema.prisma");

export function postgresSchema(sqlite: string): string {
  let out = sqlite;
  const swap = (from: RegExp, to: string, what: string) => {
    if (!from.test(out)) throw new Error(`prisma/schema.prisma: cannot find ${what} to derive the PostgreSQL schema`);
    out = out.replace(from, to);
  };
  swap(/(datasource db \{[^}]*provider\s*=\s*)"sqlite"/, '$1"postgresql"', 'the sqlite datasource provider');
  swap(/(generator client \{[^}]*output\s*=\s*)"\.\/generated"/, '$1"./generated"', "the client output");
  return `// GENERATED from ../schema.prisma by prisma/postgres/generate.ts: do not edit; edit ../schema.prisma.\n${out}`;
}

if (require.main === module) {
  const want = postgresSchema(readFileSync(SQLITE_SCHEMA, "utf8"));
  let have = "";
  try {
    have = readFileSync(POSTGRES_SCHEMA, "utf8");
  } catch {
    // missing: written below, or reported by --check
  }
  if (process.argv.includes("--check")) {
    if (have !== want) {
      console.error("prisma/postgres/schema.prisma is out of date: run `npx tsx prisma/postgres/generate.ts`, then add a PostgreSQL migration");
      process.exit(1);
    }
  } else if (have !== want) {
    writeFileSync(POSTGRES_SCHEMA, want);
    console.log("wrote prisma/postgres/schema.prisma");
  }
}
