/**
 * Every value kind (engine/values/<kind>.ts), and the one description of a value for previews: by its kind when the
 * caller knows it (an output spec), else by the `kind` tag it carries, else by its JavaScript type.
 * A new kind is its own file plus one line here (and, for a socket kind, one in engine/sockets.ts).
 */
import { SOCKET_KINDS } from "../sockets";
import { compareReport } from "./compare-report";
import { dataset } from "./dataset";
import { datasetRecord } from "./dataset-record";
import { expertAblation } from "./expert-ablation";
import type { PreviewSummary, ValueKind } from "./kind";
import { MAX_TEXT } from "./kind";
import { nllScore } from "./nll-score";
import { preview } from "./preview";
import { ropeReport } from "./rope-report";
import { routingAggregate } from "./routing-aggregate";
import { routingReport } from "./routing-report";

export type { PreviewSummary, ValueKind } from "./kind";

/** Kinds that travel on JSON sockets, named by an output spec's `kind`. */
export const REPORT_KINDS: readonly ValueKind<unknown>[] = [compareReport, ropeReport, routingReport, routingAggregate, expertAblation, dataset, datasetRecord, nllScore, preview];

export const VALUE_KINDS: readonly ValueKind<unknown>[] = [...Object.values(SOCKET_KINDS), ...REPORT_KINDS];

const BY_TAG = new Map<string, ValueKind<unknown>>();
for (const k of VALUE_KINDS) if (k.tag !== undefined && !BY_TAG.has(k.tag)) BY_TAG.set(k.tag, k);

function isTypedArray(v: unknown): v is Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

/** The preview of a value of a known kind (its `describe`, when the value matches the kind's schema), else `describeValue`. */
export function describeAs(kind: ValueKind<unknown> | undefined, value: unknown): PreviewSummary {
  if (kind?.describe && value !== null && value !== undefined && kind.schema.safeParse(value).success) return kind.describe(value as never);
  return describeValue(value);
}

/**
 * Describes any value for a preview, without copying big payloads; depth-limited, so cycles are safe. Always `type`
 * and a one-line `headline`; a value with a registered `kind` tag is described by its kind; otherwise by type:
 *   text   { text (first 2,000 chars), length }         number/boolean { value }
 *   array  { length, items: first 5 described }         typed-array { dtype, length, min, max }
 *   object { kind?, keys (first 20) }                   null
 */
export function describeValue(value: unknown, depth = 0): PreviewSummary {
  if (value === null || value === undefined) return { type: "null", headline: "nothing" };
  if (typeof value === "string") return SOCKET_KINDS.TEXT.describe!(value);
  if (typeof value === "number") return SOCKET_KINDS.NUMBER.describe!(value);
  if (typeof value === "boolean") return { type: "boolean", headline: String(value), value };
  if (typeof value === "bigint") return { type: "number", headline: String(value), value: String(value) };
  if (isTypedArray(value)) {
    const dtype = value.constructor.name.replace(/Array$/, "").toLowerCase();
    let min = Infinity;
    let max = -Infinity;
    if (!(value instanceof BigInt64Array) && !(value instanceof BigUint64Array)) {
      const nums = value as ArrayLike<number>;
      for (let i = 0; i < nums.length; i++) {
        const x = nums[i]!;
        if (x < min) min = x;
        if (x > max) max = x;
      }
    }
    const range = value.length > 0 && Number.isFinite(min) ? { min, max } : {};
    return { type: "typed-array", headline: `${dtype}[${value.length}]`, dtype, length: value.length, ...range };
  }
  if (Array.isArray(value)) {
    const items = depth < 2 ? value.slice(0, 5).map((v) => describeValue(v, depth + 1)) : [];
    return { type: "array", headline: `list of ${value.length}`, length: value.length, items };
  }
  if (typeof value === "object") {
    const o = value as Record<string, unknown>;
    const kind = typeof o.kind === "string" ? o.kind : undefined;
    const byTag = kind === undefined ? undefined : BY_TAG.get(kind);
    if (byTag?.describe && byTag.schema.safeParse(o).success) return byTag.describe(o as never);
    const keys = Object.keys(o);
    return {
      type: "object",
      headline: kind ? `${kind} (${keys.length} fields)` : `object with ${keys.length} field${keys.length === 1 ? "" : "s"}`,
      ...(kind ? { kind } : {}),
      keys: keys.slice(0, 20),
    };
  }
  return { type: typeof value, headline: typeof value };
}

export { MAX_TEXT };
