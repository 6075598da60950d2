import type { z } from "zod";

/**
 * A value kind's schema compiled once into a plain predicate with the same answer as `schema.safeParse(v).success`
 * (tests/unit/engine/fast-check.test.ts compares them on seeded random malformed values): the executor checks every
 * output, and zod's general parse (issue objects, a stripped copy of every object) costs more than the check itself.
 * The shapes value kinds use compile (objects, literals, enums, strings, finite numbers with int/range checks, custom
 * and instanceof tests, arrays, optionals, unions); anything else is handed to zod for that part, so nothing is ever
 * accepted that the schema rejects.
 */
export type Check = (value: unknown) => boolean;

interface Def {
  type: string;
  checks?: { _zod: { def: CheckDef } }[];
  [field: string]: unknown;
}
interface CheckDef {
  check: string;
  format?: string;
  value?: unknown;
  inclusive?: boolean;
  [field: string]: unknown;
}

const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;
const viaZod = (s: z.ZodType): Check => (v) => s.safeParse(v).success;

export function compileCheck(schema: z.ZodType): Check {
  const def = defOf(schema);
  switch (def.type) {
    case "unknown":
    case "any":
      return () => true;
    case "string":
      return def.checks?.length ? viaZod(schema) : (v) => typeof v === "string";
    case "boolean":
      return (v) => typeof v === "boolean";
    case "number":
      return compileNumber(schema, def);
    case "literal": {
      const values = def.values as unknown[];
      if (values.some((x) => typeof x === "number" && Number.isNaN(x))) return viaZod(schema);
      return values.length === 1 ? ((one) => (v: unknown) => v === one)(values[0]) : (v) => values.includes(v);
    }
    case "enum": {
      const values = Object.values(def.entries as Record<string, unknown>);
      return (v) => values.includes(v);
    }
    case "custom": {
      const fn = def.fn as (v: unknown) => unknown;
      return (v) => {
        const r = fn(v);
        return !(r instanceof Promise) && !!r;
      };
    }
    case "optional": {
      const inner = compileCheck(def.innerType as z.ZodType);
      return (v) => v === undefined || inner(v);
    }
    case "array": {
      if (def.checks?.length) return viaZod(schema);
      const element = compileCheck(def.element as z.ZodType);
      return (v) => {
        if (!Array.isArray(v)) return false;
        for (let i = 0; i < v.length; i++) if (!element(v[i])) return false;
        return true;
      };
    }
    case "union": {
      if (def.inclusive === false) return viaZod(schema);
      const options = (def.options as z.ZodType[]).map(compileCheck);
      return (v) => options.some((o) => o(v));
    }
    case "object":
      return compileObject(schema, def);
    default:
      return viaZod(schema);
  }
}

function compileNumber(schema: z.ZodType, def: Def): Check {
  const tests: ((n: number) => boolean)[] = [];
  for (const c of def.checks ?? []) {
    const d = c._zod.def;
    if (d.check === "number_format" && d.format === "safeint") tests.push(Number.isSafeInteger);
    else if (d.check === "greater_than" && typeof d.value === "number") {
      const bound = d.value;
      tests.push(d.inclusive ? (n) => n >= bound : (n) => n > bound);
    } else if (d.check === "less_than" && typeof d.value === "number") {
      const bound = d.value;
      tests.push(d.inclusive ? (n) => n <= bound : (n) => n < bound);
    } else return viaZod(schema);
  }
  return (v) => {
    if (typeof v !== "number" || !Number.isFinite(v)) return false;
    for (let i = 0; i < tests.length; i++) if (!tests[i]!(v)) return false;
    return true;
  };
}

function compileObject(schema: z.ZodType, def: Def): Check {
  // a catchall or strict object, or an object with checks: zod decides
  if (def.catchall !== undefined || def.checks?.length) return viaZod(schema);
  const keys: string[] = [];
  const checks: Check[] = [];
  const optional: boolean[] = [];
  for (const [key, field] of Object.entries(def.shape as Record<string, z.ZodType>)) {
    keys.push(key);
    checks.push(compileCheck(field));
    optional.push(defOf(field).type === "optional");
  }
  const whole = viaZod(schema);
  return (v) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
    const o = v as Record<string, unknown>;
    for (let i = 0; i < keys.length; i++) {
      const x = o[keys[i]!];
      // a required key that is absent or undefined: whether zod accepts it depends on the field (unknown, defaults…)
      if (x === undefined && !optional[i]) return whole(v);
      if (!checks[i]!(x)) return false;
    }
    return true;
  };
}
