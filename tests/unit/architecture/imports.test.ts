/**
 * The import map of ARCHITECTURE.md, checked: no import cycle among the files of engine/, models/, nodes/ and app/,
 * and imports point down only (engine ← models ← nodes ← app). Tests (*.test.ts) are leaves and are not checked.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { importCycles, importsOf, resolveImport, sourceFiles, type ImportEdge } from "./import-graph";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const LAYERS = ["engine", "models", "nodes", "app"] as const;
type Layer = (typeof LAYERS)[number];
/** What each layer may import from the project; app (the host) may also import prisma/ and the rest. */
const MAY_IMPORT: Record<Layer, readonly string[] | "anything"> = {
  engine: ["engine"],
  models: ["engine", "models"],
  nodes: ["engine", "models", "nodes"],
  app: "anything",
};
/** Packages only the app layer may use (DESIGN.md: engine/ is framework-free; nodes/ never reach the UI or database). */
const FRAMEWORK = /^(react|react-dom|next|@xyflow\/|zustand|@trpc\/|@tanstack\/|@prisma\/|\.prisma)(\/|$)/;

function readGraph() {
  const files = sourceFiles(root, LAYERS).filter((f) => !/\.test\.tsx?$/.test(f));
  const edges: ImportEdge[] = [];
  const packages: { from: string; specifier: string; line: number }[] = [];
  const missing: string[] = [];
  for (const from of files) {
    for (const imp of importsOf(from, fs.readFileSync(path.join(root, from), "utf8"))) {
      const to = resolveImport(root, from, imp.specifier);
      if (to === null) packages.push({ from, specifier: imp.specifier, line: imp.line });
      else if (typeof to === "string") edges.push({ from, to, ...imp });
      else missing.push(`${from}:${imp.line} "${imp.specifier}"`);
    }
  }
  return { files, edges, packages, missing };
}

const layerOf = (file: string) => file.split("/")[0] as Layer;
const where = (e: { from: string; line: number }) => `${e.from}:${e.line}`;

describe("import graph", () => {
  const { files, edges, packages, missing } = readGraph();

  it("reads every layer and resolves every project import", () => {
    for (const layer of LAYERS) expect(files.some((f) => layerOf(f) === layer), layer).toBe(true);
    expect(edges.length).toBeGreaterThan(files.length);
    expect(missing, "imports that name no file (a typo would hide an edge)").toEqual([]);
  });

  it("has no import cycle", () => {
    expect(importCycles(files, edges)).toEqual([]);
  });

  it("imports point down only: engine ← models ← nodes ← app", () => {
    const upward = edges
      .filter((e) => {
        const allowed = MAY_IMPORT[layerOf(e.from)];
        return allowed !== "anything" && !allowed.includes(e.to.split("/")[0]!);
      })
      .map((e) => `${where(e)} (${layerOf(e.from)}) imports ${e.to}`);
    expect(upward).toEqual([]);
  });

  it("engine/, models/ and nodes/ use no UI, API or database framework", () => {
    const bad = packages.filter((p) => layerOf(p.from) !== "app" && FRAMEWORK.test(p.specifier)).map((p) => `${where(p)} imports "${p.specifier}"`);
    expect(bad).toEqual([]);
  });
});

describe("the graph reader itself", () => {
  it("sees static, re-export, dynamic and type imports", () => {
    const text = [
      'import a from "./a";',
      'import type { B } from "@/engine/b";',
      'export * from "../c";',
      "async function f() { return import(\"./d\"); }",
      'type E = typeof import("./e");',
      'const s = "import(\\"./not-an-import\\")";',
    ].join("\n");
    expect(importsOf("nodes/x.ts", text).map((i) => [i.specifier, i.kind, i.line])).toEqual([
      ["./a", "import", 1],
      ["@/engine/b", "import", 2],
      ["../c", "export", 3],
      ["./d", "dynamic", 4],
      ["./e", "type", 5],
    ]);
  });

  it("resolves the @/ alias, relative paths and folder indexes", () => {
    expect(resolveImport(root, "nodes/dit.ts", "@/engine/executor")).toBe("engine/executor.ts");
    expect(resolveImport(root, "engine/batch/x.ts", "../executor")).toBe("engine/executor.ts");
    expect(resolveImport(root, "app/x.ts", "@/nodes")).toBe("nodes/index.ts");
    expect(resolveImport(root, "app/x.ts", "zod")).toBeNull();
    expect(resolveImport(root, "app/x.ts", "./nowhere")).toEqual({ missing: "app/nowhere" });
  });

  it("reports a cycle with its path, and none for a tree", () => {
    const e = (from: string, to: string, line = 1): ImportEdge => ({ from, to, line, specifier: to, kind: "import" });
    const files = ["a.ts", "b.ts", "c.ts", "d.ts"];
    expect(importCycles(files, [e("a.ts", "b.ts"), e("b.ts", "c.ts"), e("a.ts", "c.ts"), e("d.ts", "a.ts")])).toEqual([]);
    expect(importCycles(files, [e("a.ts", "b.ts", 3), e("b.ts", "c.ts", 4), e("c.ts", "a.ts", 5), e("d.ts", "a.ts")])).toEqual([
      "3 files in a cycle, e.g. a.ts:3 → b.ts:4 → c.ts:5 → a.ts",
    ]);
    expect(importCycles(["a.ts"], [e("a.ts", "a.ts")])).toEqual(["1 file in a cycle, e.g. a.ts:1 → a.ts"]);
  });
});
