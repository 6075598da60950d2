import type { ParamSchema } from "./ParamField";

/** A nullable number param (`z.number().nullable()`) as the number form control reads it, or null for any other schema. */
export function nullableNumber(schema: ParamSchema): ParamSchema | null {
  const branches = schema.anyOf;
  if (!branches || branches.length !== 2 || !branches.some((b) => b.type === "null")) return null;
  const num = branches.find((b) => b.type === "number" || b.type === "integer");
  if (!num) return null;
  const { anyOf: _, ...rest } = schema;
  // an exclusive minimum (e.g. Top-P > 0): the slider starts one step above it
  const minimum = num.minimum ?? (num.exclusiveMinimum !== undefined ? num.exclusiveMinimum + (rest.step ?? 0.01) : undefined);
  return { ...rest, ...num, minimum };
}
