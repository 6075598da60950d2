/**
 * CSV in and out, through csv-parse / csv-stringify (RFC 4180: quotes, embedded commas, quotes and
 * newlines; a UTF-8 BOM is accepted on reading). Every text cell written is defused against spreadsheet
 * formula injection: a cell starting with = + - @ TAB or CR gets a leading ' so Excel, LibreOffice and
 * Google Sheets show it as text instead of running it. Numbers are written as numbers.
 * Writing works in the browser too; reading (Node streams) is engine/csv-read.ts.
 */
import { stringify } from "csv-stringify/sync";

export type CsvCell = string | number | null | undefined;

/** A text cell as a spreadsheet will show it, never as a formula. */
export function defuse(s: string): string {
  return /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
}

export interface CsvWriteOptions {
  /** Lines before the header, each written as `# <line>` (defused cells are not needed there: no spreadsheet runs them). */
  comments?: string[];
  /** Default "\n". */
  eol?: string;
  /** Default true: defuse text cells (see the module comment). */
  defuseText?: boolean;
}

/** Rows (the first is the header) as CSV text; numbers keep their shortest form, text is quoted when needed. */
export function toCSV(rows: readonly (readonly CsvCell[])[], options: CsvWriteOptions = {}): string {
  const eol = options.eol ?? "\n";
  const safe = options.defuseText ?? true;
  const cells = rows.map((r) => r.map((c) => (typeof c === "string" ? (safe ? defuse(c) : c) : c === null || c === undefined ? "" : String(c))));
  const head = (options.comments ?? []).map((c) => `# ${c.replace(/[\r\n]+/g, " ")}${eol}`).join("");
  return head + stringify(cells, { record_delimiter: eol === "\r\n" ? "windows" : "unix", quoted_match: /^$/ });
}
