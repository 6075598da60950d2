// The project's import graph, read with TypeScript's own parser (no bundler, no extra dependency).
import fs from "node:fs";
import path from "node:path";
import ts from "typescript";

export type ImportKind = "import" | "export" | "dynamic" | "type";
export interface ImportEdge { from: string; to: string; specifier: string; line: number; kind: ImportKind }

const SOURCE = /\.tsx?$/;
const CANDIDATES = ["", ".ts", ".tsx", "/index.ts", "/index.tsx"];

/** Every .ts/.tsx file under the given folders of `root`, as root-relative paths with "/" separators. */
export function sourceFiles(root: string, dirs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = `${rel}/${e.name}`;
      if (e.isDirectory()) walk(child);
      else if (e.isFile() && SOURCE.test(e.name)) out.push(child);
    }
  };
  for (const d of dirs) walk(d);
  return out.sort();
}

/** The module specifiers a file names: `import … from`, `export … from`, `import("…")` and `import("…")` types. */
export function importsOf(fileName: string, text: string): { specifier: string; line: number; kind: ImportKind }[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, fileName.endsWith(".tsx") ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
  const found: { specifier: string; line: number; kind: ImportKind }[] = [];
  const add = (lit: ts.Node | undefined, kind: ImportKind) => {
    if (lit && ts.isStringLiteralLike(lit)) found.push({ specifier: lit.text, line: sf.getLineAndCharacterOfPosition(lit.getStart(sf)).line + 1, kind });
  };
  const visit = (n: ts.Node) => {
    if (ts.isImportDeclaration(n)) add(n.moduleSpecifier, "import");
    else if (ts.isExportDeclaration(n)) add(n.moduleSpecifier, "export");
    else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) add(n.arguments[0], "dynamic");
    else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) add(n.argument.literal, "type");
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return found;
}

/**
 * The root-relative file an import names, or null for a package. `@/x` is the project root (tsconfig `paths`).
 * A project path that names no file returns `{ missing }` so a typo cannot hide an edge.
 */
export function resolveImport(root: string, fromFile: string, specifier: string): string | null | { missing: string } {
  let base: string;
  if (specifier.startsWith("@/")) base = specifier.slice(2);
  else if (specifier.startsWith("./") || specifier.startsWith("../") || specifier === "." || specifier === "..") base = path.posix.join(path.posix.dirname(fromFile), specifier);
  else return null;
  for (const ext of CANDIDATES) {
    const p = path.join(root, base + ext);
    if (fs.existsSync(p) && fs.statSync(p).isFile()) return base + ext;
  }
  return { missing: base };
}

/** Non-trivial strongly connected components (Tarjan), each as a list of files. */
export function stronglyConnected(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>(), stack: string[] = [];
  const out: string[][] = [];
  const strong = (v: string) => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) { strong(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); comp.push(w); } while (w !== v);
      if (comp.length > 1 || graph.get(v)?.has(v)) out.push(comp.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) strong(v);
  return out;
}

/** A shortest cycle through the first file of a component, as a path that starts and ends on that file. */
export function cyclePath(graph: Map<string, Set<string>>, component: string[]): string[] {
  const inside = new Set(component);
  const start = component[0]!;
  const prev = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i]!;
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const p: string[] = [];
        for (let x: string | undefined = v; x !== undefined && x !== start; x = prev.get(x)) p.unshift(x);
        return [start, ...p, start];
      }
      if (!prev.has(w)) { prev.set(w, v); queue.push(w); }
    }
  }
  return component;
}

/** Cycles among `files`: per tangle (strongly connected set), its size and one shortest loop with the line of each import on it. */
export function importCycles(files: readonly string[], edges: readonly ImportEdge[]): string[] {
  const graph = new Map<string, Set<string>>(files.map((f) => [f, new Set<string>()]));
  for (const e of edges) graph.get(e.from)?.add(e.to);
  return stronglyConnected(graph).map((component) => {
    const cycle = cyclePath(graph, component);
    const steps = cycle.slice(0, -1).map((from, i) => `${from}:${edges.find((e) => e.from === from && e.to === cycle[i + 1])!.line}`);
    return `${component.length} file${component.length === 1 ? "" : "s"} in a cycle, e.g. ${[...steps, cycle[0]].join(" → ")}`;
  });
}
