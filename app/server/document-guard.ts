import { TRPCError } from "@trpc/server";
import { parseAndMigrate, WorkflowParseError } from "@/engine/workflow/migrate";
import { zWorkflow, type Workflow } from "@/engine/workflow/schema";

/** Limits on what a stored or run document may be, so a hostile one is refused before it costs anything. */
export const DOCUMENT_LIMITS = { maxDepth: 64, maxValues: 1_000_000, maxStringChars: 16 * 1024 * 1024 };

const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);

function bad(message: string): TRPCError {
  return new TRPCError({ code: "BAD_REQUEST", message });
}

function where(path: (string | number)[]): string {
  return path.length ? path.join(".") : "(document)";
}

/**
 * Checks that a value is plain JSON data (what a saved document can faithfully be): objects, arrays,
 * strings, finite numbers, booleans and null, nested at most `maxDepth` deep (which also catches
 * self-references), with no prototype-bending keys. Iterative, so no input can overflow the stack.
 */
export function checkPlainJson(value: unknown, what = "the workflow document"): void {
  const { maxDepth, maxValues, maxStringChars } = DOCUMENT_LIMITS;
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value, path: [] }];
  let values = 0;
  let chars = 0;
  while (stack.length) {
    const { value: v, path } = stack.pop()!;
    if (++values > maxValues) throw bad(`${what} has more than ${maxValues} values`);
    if (v === null || typeof v === "boolean") continue;
    if (typeof v === "string") {
      chars += v.length;
      if (chars > maxStringChars) throw bad(`${what} holds more than ${maxStringChars / (1024 * 1024)} MB of text (at ${where(path)})`);
      continue;
    }
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw bad(`${what}: ${where(path)} is ${v}, which is not a JSON number`);
      continue;
    }
    if (typeof v !== "object") throw bad(`${what}: ${where(path)} is a ${typeof v}, which JSON cannot hold`);
    if (path.length >= maxDepth) throw bad(`${what} is nested deeper than ${maxDepth} levels at ${where(path.slice(0, 8))}… (or refers to itself)`);
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], path: [...path, i] });
      continue;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) throw bad(`${what}: ${where(path)} is not a plain JSON object`);
    for (const key of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(key)) throw bad(`${what}: the key "${key}" at ${where(path)} is not allowed`);
      const child = (v as Record<string, unknown>)[key];
      if (child !== undefined) stack.push({ value: child, path: [...path, key] });
    }
  }
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
