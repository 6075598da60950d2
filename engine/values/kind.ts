import type { z } from "zod";
import { compileCheck } from "./fast-check";

/**
 * What a value looks like in an event, the database and the UI: always `type` (which view shows it,
 * app/inspector/views.ts) and a one-line `headline`; then fields by type (see `describeValue`).
 */
export interface PreviewSummary {
  type: string;
  headline: string;
  [detail: string]: unknown;
}

/**
 * One kind of value that flows along edges. A socket kind (TEXT, IMAGE, …) has a `socket` (the editor's colour
 * and words; edges connect socket kinds); a report kind (e.g. "compare-report") travels on a JSON socket and is
 * named by an output spec's `kind`. `tag` is the `kind` field the value carries at run time, when it has one.
 */
export interface ValueKind<T = unknown> {
  name: string;
  /** How an error names a value of this kind: "a routing trace", "text", … */
  noun: string;
  socket?: { color: string; description: string };
  tag?: string;
  /** A cheap, shallow structural check (tags, field types, `z.instanceof` for typed arrays; no walk over big arrays). */
  schema: z.ZodType;
  /**
   * A faster test equivalent to `schema` (for primitives: `typeof`); the schema still words the error. defineValueKind
   * compiles one from the schema when none is given (fast-check.ts).
   */
  is?(value: unknown): boolean;
  /** Type-level only: the TypeScript type of a value of this kind (never set). */
  readonly __value?: T;
  /** The preview of a value of this kind; absent: the generic description by JavaScript type. */
  describe?(value: T): PreviewSummary;
}

/** Is `value` a value of `kind`? (its fast test when it has one, else its schema) */
export function matchesKind(kind: ValueKind<unknown>, value: unknown): boolean {
  return kind.is ? kind.is(value) : kind.schema.safeParse(value).success;
}

/** The test of a kind as one plain function (its `is`, else its schema compiled once: fast-check.ts). */
export function kindTest(kind: ValueKind<unknown>): (value: unknown) => boolean {
  return kind.is ?? compileCheck(kind.schema);
}

/** Declares a value kind (one file per kind in engine/values/, one line in engine/values/index.ts). */
export function defineValueKind<T>(kind: ValueKind<T>): ValueKind<T> {
  if (!/^[A-Za-z][A-Za-z0-9_-]*$/.test(kind.name)) throw new Error(`value kind "${kind.name}": bad name`);
  return kind.is ? kind : { ...kind, is: compileCheck(kind.schema) };
}

export const MAX_TEXT = 2000;

export function pick(o: object, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** An object with a string `kind` tag equal to `tag` (for the schemas' first, cheapest test). */
export function tagged(value: unknown, tag: string): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && (value as { kind?: unknown }).kind === tag;
}

/** A report that carries its own `type` and `headline`: it is its own preview (the view of `type` shows it as it is). */
export function ownPreview<T extends { type: string; headline: string }>(value: T): PreviewSummary {
  return value;
}

/** A socket that carries a value of one of several kinds (e.g. the Routing Inspector hands on either report): the first whose schema matches describes it. */
export function oneOfKinds<A, B>(a: ValueKind<A>, b: ValueKind<B>): ValueKind<A | B> {
  const isA = kindTest(a as ValueKind<unknown>), isB = kindTest(b as ValueKind<unknown>);
  return {
    name: `${a.name}|${b.name}`,
    noun: `${a.noun} or ${b.noun}`,
    schema: a.schema.or(b.schema),
    is: (value) => isA(value) || isB(value),
    describe: (value) => {
      const k = (isA(value) ? a : b) as ValueKind<A | B>;
      return k.describe ? k.describe(value) : { type: "object", headline: k.noun };
    },
  };
}
