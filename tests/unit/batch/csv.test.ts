import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { defuse, toCSV } from "@/engine/csv";
import { readCSV } from "@/engine/csv-read";
import { readRows, type RowResult } from "@/engine/batch/dataset";
import { aggregateCSV } from "@/engine/batch/summary";
import { RoutingAggregate, recordGroup } from "@/engine/routing/aggregate";
import { syntheticTrace } from "@/engine/routing/synthetic";
import { SeededRandom } from "@/models/io/seeded-random";

const dir = mkdtempSync(path.join(os.tmpdir(), "csv-"));
const collect = async <T>(g: AsyncIterable<T>) => {
  const out: T[] = [];
  for await (const x of g) out.push(x);
  return out;
};

const NASTY = ["plain", 'say "hi"', "a, b", "two\nlines", "crlf\r\nline", "=cmd|' /C calc'!A0", "+1+1", "-2", "@SUM(A1)", "\ttab", "", "ünïcødé ✓"];

describe("CSV written with csv-stringify, read with csv-parse", () => {
  it("round-trips quotes, commas, newlines and unicode; formula cells come back defused, numbers as written", async () => {
    const rows = [["text", "task", "n"], ...NASTY.map((t, i) => [t, NASTY[(i + 5) % NASTY.length]!, i - 3.5])];
    for (const eol of ["\n", "\r\n"]) {
      const file = path.join(dir, `rt${eol.length}.csv`);
      writeFileSync(file, `\uFEFF${toCSV(rows, { eol })}`); // a BOM, as Excel writes one
      const back = await collect(readCSV(file));
      expect(back.every((r) => !r.error)).toBe(true);
      expect(back.map((r) => r.cells)).toEqual(rows.map((r) => r.map((c) => (typeof c === "number" ? String(c) : defuse(c)))));
      expect(back[0]!.cells[0]).toBe("text"); // no BOM left in the first header
    }
    for (const s of ["=cmd", "+1", "-2", "@x", "\tx", "\rx"]) expect(defuse(s)).toBe(`'${s}`);
    for (const s of ["cmd", "1", "a=b", " =x"]) expect(defuse(s)).toBe(s);
  });

  it("seeded random cells: the reader gives back what the writer wrote (defused), over 200 rows", async () => {
    const rng = new SeededRandom(7);
    const rand = () => rng.uniform();
    const alphabet = ['"', ",", "\n", "\r\n", "=", "+", "-", "@", "a", "b", " ", "é", "'", "\t"];
    const cell = () => Array.from({ length: Math.floor(rand() * 8) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join("");
    const rows = [["a", "b", "c"], ...Array.from({ length: 200 }, () => [cell(), cell(), cell()])];
    const file = path.join(dir, "random.csv");
    writeFileSync(file, toCSV(rows));
    const back = await collect(readCSV(file));
    expect(back.map((r) => r.cells)).toEqual(rows.map((r) => r.map(defuse))); // empty cells are written "" (never a blank line)
  });

  it("a dataset CSV saved by Excel (BOM, CRLF, quoted newlines) reads; a JSONL with a BOM reads too", async () => {
    const csv = path.join(dir, "excel.csv");
    // Excel: CR LF between rows, LF inside a cell
    writeFileSync(csv, '\uFEFFtext,task,label\r\n"line one\nline two",caption,"=HYPERLINK(""x"")"\r\n\r\nplain,math,\r\n');
    const rows = (await collect(readRows(csv))) as RowResult[];
    expect(rows.map((r) => (r.ok ? [r.record.text, r.record.task, r.record.label, r.record.line] : r.error.message))).toEqual([
      ["line one\nline two", "caption", '=HYPERLINK("x")', 2],
      ["plain", "math", "", 5],
    ]);
    const jsonl = path.join(dir, "bom.jsonl");
    writeFileSync(jsonl, '\uFEFF{"text": "first", "task": "a"}\n{"text": "second"}\n');
    const j = (await collect(readRows(jsonl))) as RowResult[];
    expect(j.map((r) => (r.ok ? r.record.text : r.error.message))).toEqual(["first", "second"]);
  });

  it("the aggregate CSV defuses task names taken from the dataset (a task called =cmd stays text)", () => {
    const trace = syntheticTrace({ seed: 3, layers: 2, tokens: 5 });
    const agg = new RoutingAggregate(trace.experts, 2).add(trace, { group: recordGroup("=cmd|' /C calc'!A0", "") });
    const csv = aggregateCSV(agg, { workflowFingerprint: "w", datasetFingerprint: "d" });
    expect(csv).toMatch(/^# workflow_fingerprint=w\n# dataset_fingerprint=d\ntask,layer,figure,key,role,count,share\n/);
    expect(csv).toContain("\n'=cmd|' /C calc'!A0,0,expert-share,");
    expect(csv).not.toMatch(/\n=cmd/);
  });
});
