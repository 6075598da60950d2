/** Reading CSV files with csv-parse (engine/csv.ts writes them). */
import { createReadStream } from "node:fs";
import { parse } from "csv-parse";

export interface CsvRow {
  /** 1-based line where the record starts (csv-parse counts a CR LF inside a quoted field as two lines). */
  line: number;
  cells: string[];
  error?: string;
}

const FRIENDLY: Record<string, string> = {
  CSV_INVALID_CLOSING_QUOTE: "unexpected text after a closing quote",
  CSV_QUOTE_NOT_CLOSED: "a quoted field is never closed",
  CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE: "unexpected text after a closing quote",
};

/**
 * The records of a CSV file, in order, each with the line it starts on; a malformed record is yielded
 * with its error (and the parser carries on with the next), blank lines are skipped, a BOM is dropped.
 */
export async function* readCSV(file: string): AsyncGenerator<CsvRow> {
  // Skipped records are reported in place: each notes how many records the parser had passed on before it.
  const skipped: (CsvRow & { after: number })[] = [];
  let passed = 0;
  let lastError = -1;
  const parser = createReadStream(file).pipe(
    parse({
      bom: true,
      relax_column_count: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      info: true,
      raw: true,
      on_record: (record) => {
        passed++;
        return record;
      },
      on_skip: (err) => {
        const e = err as (Error & { code?: string; lines?: number }) | undefined;
        const line = e?.lines ?? 0;
        // after an error the parser resynchronises and may trip again on the same line: one report per line
        if (e && skipped.at(-1)?.line !== line && lastError !== line) skipped.push({ after: passed, line, cells: [], error: FRIENDLY[e.code ?? ""] ?? e.message });
        lastError = line;
      },
    }),
  );
  let yielded = 0;
  const due = function* () {
    while (skipped.length && skipped[0]!.after <= yielded) {
      const { after: _, ...row } = skipped.shift()!;
      yield row;
    }
  };
  for await (const r of parser as AsyncIterable<{ record: string[]; info: { lines: number }; raw: string }>) {
    yield* due();
    yielded++;
    // info.lines is the record's last line; its raw text (minus blank lines before it and its line end) spans the rest.
    const body = r.raw.replace(/^(?:\r?\n)+/, "").replace(/\r?\n$/, "");
    yield { line: r.info.lines - (body.match(/\n/g)?.length ?? 0), cells: r.record };
  }
  yielded = Infinity;
  yield* due();
}
