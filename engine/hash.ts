import { createHash } from "node:crypto";

/** Thrown when a value has no stable canonical form (functions, symbols, cycles, class instances). */
export class UnhashableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UnhashableError";
  }
}

/** sha256 hex of bytes or a UTF-8 string. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Canonical JSON: object keys sorted, `undefined` members dropped (as JSON.stringify does), -0 written as 0.
 * Typed arrays and ArrayBuffers are written as a tagged sha256 of their bytes, Dates as ISO strings and
 * bigints as tagged decimal strings, so equal content always gives equal text. Anything else that is not
 * plain data (functions, symbols, NaN/Infinity, cycles, Maps, class instances) throws UnhashableError:
 * a value we cannot hash must never produce a cache hit.
 */
export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  write(value, parts, new Set(), "$");
  return parts.join("");
}

/** sha256 hex of the canonical JSON of `value`; use for cache keys. */
export function hashValue(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}

function write(value: unknown, out: string[], stack: Set<object>, where: string): void {
  switch (typeof value) {
    case "string":
      out.push(JSON.stringify(value));
      return;
    case "number":
      if (!Number.isFinite(value)) throw new UnhashableError(`${where}: ${value} has no JSON form`);
      out.push(Object.is(value, -0) ? "0" : String(value));
      return;
    case "boolean":
      out.push(value ? "true" : "false");
      return;
    case "bigint":
      out.push(`{"$bigint":"${value.toString()}"}`);
      return;
    case "undefined":
      out.push("null"); // only reached inside arrays or at the top; object members are skipped
      return;
    case "function":
    case "symbol":
      throw new UnhashableError(`${where}: a ${typeof value} cannot be hashed`);
  }
  if (value === null) {
    out.push("null");
    return;
  }
  const obj = value as object;
  if (ArrayBuffer.isView(obj)) {
    const bytes = new Uint8Array(obj.buffer, obj.byteOffset, obj.byteLength);
    out.push(`{"$bytes":"${obj.constructor.name}:${sha256Hex(bytes)}"}`);
    return;
  }
  if (obj instanceof ArrayBuffer) {
    out.push(`{"$bytes":"ArrayBuffer:${sha256Hex(new Uint8Array(obj))}"}`);
    return;
  }
  if (obj instanceof Date) {
    out.push(`{"$date":${JSON.stringify(obj.toISOString())}}`);
    return;
  }
  if (stack.has(obj)) throw new UnhashableError(`${where}: the value contains a cycle`);
  stack.add(obj);
  if (Array.isArray(obj)) {
    out.push("[");
    for (let i = 0; i < obj.length; i++) {
      if (i) out.push(",");
      write(obj[i], out, stack, `${where}[${i}]`);
    }
    out.push("]");
  } else {
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) {
      throw new UnhashableError(`${where}: a ${proto?.constructor?.name ?? "class"} instance cannot be hashed`);
    }
    const rec = obj as Record<string, unknown>;
    const keys = Object.keys(rec).sort();
    out.push("{");
    let first = true;
    for (const k of keys) {
      const v = rec[k];
      if (v === undefined) continue;
      if (!first) out.push(",");
      first = false;
      out.push(JSON.stringify(k), ":");
      write(v, out, stack, `${where}.${k}`);
    }
    out.push("}");
  }
  stack.delete(obj);
}
