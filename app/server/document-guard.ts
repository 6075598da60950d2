import { TRPCError } from "@trpc/server";
import { parseAndMigrate, WorkflowParseError } from "@/engine/workflow/migrate";
import { zWorkflow, type Workflow } from "@/engine/workflow/schema";
import { JSON_LIMITS, jsonTextProblem } from "@/engine/json-limits";

/** Limits on what a stored or run document may be, so a hostile one is refused before it costs anything. */
export const DOCUMENT_LIMITS = { ...JSON_LIMITS, maxStringChars: 16 * 1024 * 1024 };

const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

function bad(message: string): TRPCError {
  return new TRPCError({ code: "BAD_REQUEST", message });
}

function where(path: (string | number)[]): string {
  return path.length ? path.join(".") : "(document)";
}

/** A container being walked: its children (keys of an object), the next one to visit, its own key. */
interface Frame {
  container: unknown[] | Record<string, unknown>;
  keys: string[] | null;
  next: number;
  key: string | number;
}

/**
 * Checks that a value is plain JSON data (what a saved document can faithfully be): objects, arrays,
 * strings, finite numbers, booleans and null, nested at most `maxDepth` deep (which also catches
 * self-references), with at most `maxValues` values and no prototype-bending keys. The walk keeps one
 * frame per open container (never one entry per value), and a container's size is counted before its
 * children are visited, so a huge array is refused at once instead of being walked first.
 */
export function checkPlainJson(value: unknown, what = "the workflow document"): void {
  const { maxDepth, maxValues, maxStringChars } = DOCUMENT_LIMITS;
  const frames: Frame[] = [];
  const path = (key?: string | number) => [...frames.slice(1).map((f) => f.key), ...(frames.length && key !== undefined ? [key] : [])];
  let values = 1;
  let chars = 0;
  const visit = (v: unknown, key: string | number) => {
    if (v === null || typeof v === "boolean") return;
    if (typeof v === "string") {
      chars += v.length;
      if (chars > maxStringChars) throw bad(`${what} holds more than ${maxStringChars / (1024 * 1024)} MB of text (at ${where(path(key))})`);
      return;
    }
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw bad(`${what}: ${where(path(key))} is ${v}, which is not a JSON number`);
      return;
    }
    if (typeof v !== "object") throw bad(`${what}: ${where(path(key))} is a ${typeof v}, which JSON cannot hold`);
    if (frames.length >= maxDepth) throw bad(`${what} is nested deeper than ${maxDepth} levels at ${where(path(key).slice(0, 8))}… (or refers to itself)`);
    let keys: string[] | null = null;
    if (!Array.isArray(v)) {
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) throw bad(`${what}: ${where(path(key))} is not a plain JSON object`);
      keys = Object.keys(v);
    }
    values += keys ? keys.length : (v as unknown[]).length;
    if (values > maxValues) throw bad(`${what} has more than ${maxValues.toLocaleString("en")} values (at ${where(path(key))})`);
    frames.push({ container: v as Frame["container"], keys, next: 0, key });
  };
  visit(value, "");
  while (frames.length) {
    const f = frames[frames.length - 1]!;
    const size = f.keys ? f.keys.length : (f.container as unknown[]).length;
    if (f.next >= size) {
      frames.pop();
      continue;
    }
    const i = f.next++;
    if (f.keys) {
      const key = f.keys[i]!;
      if (FORBIDDEN_KEYS.has(key)) throw bad(`${what}: the key "${key}" at ${where(path())} is not allowed`);
      const child = (f.container as Record<string, unknown>)[key];
      if (child !== undefined) visit(child, key);
    } else {
      visit((f.container as unknown[])[i], i);
    }
  }
}

/** Refuses JSON text (a request body, an imported file) that is too deep or holds too many values, before it is parsed. */
export function checkJsonText(text: string, what: string, slackDepth = 0): void {
  const problem = jsonTextProblem(text, DOCUMENT_LIMITS, slackDepth);
  if (problem) throw bad(`${what} is refused: ${problem}`);
}

/** A document about to be stored or run: plain JSON, and valid against the current schema. */
export function checkWorkflowDocument(document: unknown): Workflow {
  if (document === undefined) throw bad("the workflow document is missing");
  checkPlainJson(document);
  const parsed = zWorkflow.safeParse(document);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw bad(`the workflow document is not valid: ${first ? `${where(first.path as (string | number)[])}: ${first.message}` : "unknown problem"}`);
  }
  return parsed.data;
}

/** A document to import (object or JSON text, any known schemaVersion): plain JSON, then migrated. */
export function readImportedDocument(input: unknown): unknown {
  let doc = input;
  if (typeof input === "string") {
    if (input.length > DOCUMENT_LIMITS.maxStringChars) throw bad(`the file is larger than ${DOCUMENT_LIMITS.maxStringChars / (1024 * 1024)} MB`);
    checkJsonText(input, "the file");
    try {
      doc = JSON.parse(input);
    } catch (err) {
      throw bad(`the file is not valid JSON: ${(err as Error).message}`);
    }
  }
  checkPlainJson(doc);
  return doc;
}

/** parseAndMigrate with its errors as BAD_REQUEST. */
export function migrateOrRefuse(doc: unknown): Workflow {
  try {
    return parseAndMigrate(doc);
  } catch (err) {
    if (err instanceof WorkflowParseError) throw bad(err.message);
    throw err;
  }
}
