/**
 * The configuration tables of the docs, rendered from the schema in engine/config.ts:
 *   npx tsx tools/config-docs.ts          # print every section
 *   npx tsx tools/config-docs.ts --write  # replace the blocks between <!-- config:<section> --> markers in README.md and docs/*.md
 * tests/unit/config/config.test.ts fails when a marked block differs from what this renders.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { configTable, type ConfigSection } from "@/engine/config";

export const SECTIONS: ConfigSection[] = ["general", "accounts", "scale"];
const BLOCK = /(<!-- config:(\w+) -->\n)([\s\S]*?\n)?(<!-- \/config:\2 -->)/g;

/** `text` with every marked block re-rendered; `found` lists the sections it had. */
export function renderBlocks(text: string): { text: string; found: string[] } {
  const found: string[] = [];
  const out = text.replace(BLOCK, (_m, open: string, section: string, _old: string, close: string) => {
    found.push(section);
    return `${open}${configTable(section as ConfigSection)}\n${close}`;
  });
  return { text: out, found };
}

/** The documentation files that may hold marked blocks, relative to `root`: README.md and docs/*.md. */
export function docFiles(root: string): string[] {
  return ["README.md", ...readdirSync(path.join(root, "docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];
}

if (process.argv[1] && /config-docs\.ts$/.test(process.argv[1])) {
  if (process.argv.includes("--write")) {
    for (const file of docFiles(".")) {
      const old = readFileSync(file, "utf8");
      const { text } = renderBlocks(old);
      if (text !== old) writeFileSync(file, text);
    }
  } else for (const s of SECTIONS) console.log(`<!-- config:${s} -->\n${configTable(s)}\n<!-- /config:${s} -->\n`);
}
