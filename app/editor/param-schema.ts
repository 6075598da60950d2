/** The slice of a param's JSON Schema (from zod's toJSONSchema, with our .meta() hints) the form reads. */
export interface ParamSchema {
  type?: string | string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  default?: unknown;
  widget?: "textarea" | "file" | "slider" | "model" | "interventions" | "routing-override" | "ablation-plan";
  /** widget "routing-override": Top-P or top-k override of the node's model's router */
  routingControl?: "topP" | "topK";
  accept?: string;
  step?: number;
  label?: string;
  description?: string;
  /** With widget "textarea": the text is code in this language, edited in Monaco (ScriptField). */
  language?: string;
  /** zod's `.nullable()`: the value's own schema and `{ type: "null" }` (see `nullableNumber`). */
  anyOf?: ParamSchema[];
  exclusiveMinimum?: number;
}

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
