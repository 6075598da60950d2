/**
 * The param meta convention the editor's form generator reads (through zod's global registry, so it
 * also appears in `z.toJSONSchema(def.params)`). Put `.meta({...})` last, after `.default(...)`.
 */
export type ParamWidget = "textarea" | "file" | "slider" | "model" | "interventions" | "routing-override" | "ablation-plan";

export interface ParamMeta {
  /** How to edit the value; without it the form picks by type (text box, number box, checkbox, select for enums). "ablation-plan": an enum select with the sweep's cost under it. */
  widget?: ParamWidget;
  /** For widget "file": the MIME pattern the picker offers ("image/*", "audio/*", "video/*"); it also names the upload kind. */
  accept?: string;
  /** Field label (default: the param name). */
  label?: string;
  /** Help text under the field. */
  description?: string;
  /** For numbers: slider step (a number with .min(), .max() and a step is drawn as a slider). */
  step?: number;
  /** For widget "routing-override": which override of the node's model's router it is (shown only where it applies). */
  routingControl?: "topP" | "topK";
}

declare module "zod" {
  // Typed `.meta()` for every schema: the keys above, checked at compile time.
  interface GlobalMeta extends ParamMeta {}
}
