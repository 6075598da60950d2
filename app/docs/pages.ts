/**
 * The documentation pages the app serves at /docs: README.md at /docs and docs/<name>.md at /docs/<name>.
 * A page name is looked up in the list of files docs/ holds (never joined into a path as given), so no
 * name reaches the file system except one of those.
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

/** The names of the docs pages (docs/<name>.md), sorted. */
export function docPageNames(): string[] {
  return readdirSync(path.join(process.cwd(), "docs"))
    .filter((f) => /^[a-z0-9-]+\.md$/.test(f))
    .map((f) => f.slice(0, -3))
    .sort();
}

export interface DocPage {
  /** null for the README (the docs' front page). */
  name: string | null;
  title: string;
  markdown: string;
}

/** The README (name null) or one docs page; null for any other name. */
export function readDocPage(name: string | null): DocPage | null {
  let markdown: string;
  if (name === null) markdown = readFileSync(path.join(process.cwd(), "README.md"), "utf8");
  else {
    const known = docPageNames().find((n) => n === name);
    if (known === undefined) return null;
    // Paths spelled out from process.cwd() so the build traces docs/ only (not the whole project).
    markdown = readFileSync(path.join(process.cwd(), "docs", `${known}.md`), "utf8");
  }
  const title = /^# (.+)$/m.exec(markdown)?.[1]?.trim() ?? name ?? "MoE Studio";
  return { name, title, markdown };
}

/** Where an image of a page is served: files under public/ at their path below it; anything else gets no source. */
export function docSrc(src: string, from: string | null): string | undefined {
  const resolved = path.posix.normalize(path.posix.join(from === null ? "." : "docs", src));
  return /^public\/[\w/.-]+\.(?:png|jpg|svg)$/.test(resolved) && !resolved.includes("..") ? `/${resolved.slice("public/".length)}` : undefined;
}

/**
 * Where a link in a page goes in the app: README.md → /docs, docs/<name>.md → /docs/<name> (with its #anchor),
 * "#anchor" and absolute URLs unchanged; undefined for a link to another file of the repository (shown as text).
 * `from` is the page the link is in (null: the README).
 */
export function docHref(href: string, from: string | null): string | undefined {
  if (href.startsWith("#") || /^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith("/")) return href;
  const [target = "", hash = ""] = href.split(/(?=#)/);
  const resolved = path.posix.normalize(path.posix.join(from === null ? "." : "docs", target));
  if (resolved === "README.md") return `/docs${hash}`;
  const m = /^docs\/([a-z0-9-]+)\.md$/.exec(resolved);
  return m ? `/docs/${m[1]}${hash}` : undefined;
}
