import { z } from "zod";
import { expertColumns, type MoeLlmConfig } from "./config";
export { resolveTopK, resolveTopP } from "./config";
import { architectureOf, moeLayerIndices } from "../families/conventions";
import type { Interventions } from "./moe-llm-session";

/**
 * Routing interventions as a user writes them: a list of rules, each on one layer (or all, "*") and one
 * router column by name ("E2", "Null1") or index. ban: never selected; force: always selected;
 * bias: added to the router logit.
 */
export const zInterventionRule = z.object({
  layer: z.union([z.number().int().min(0), z.literal("*")]),
  expert: z.union([z.string(), z.number().int().min(0)]),
  action: z.enum(["ban", "force", "bias"]),
  value: z.number().finite().optional(),
});
export const zInterventionRules = z.array(zInterventionRule).max(10_000);
export type InterventionRule = z.infer<typeof zInterventionRule>;

/**
 * Which routing overrides a model's router understands (issue 20: a param the model ignores is refused, never silently
 * run): Top-P for Uni-MoE's dynamic-capacity router, top-k (1..routed experts) for the fixed top-k routers; neither for
 * Phi-3.5-MoE's sparsemixer, which is defined for top-2 only. `topP` / `topK` give the reason when not applicable.
 */
export interface RoutingControls {
  topP: { ok: true } | { ok: false; reason: string };
  topK: { ok: true; max: number } | { ok: false; reason: string };
}

export function routingControls(config: MoeLlmConfig): RoutingControls {
  const routing = architectureOf(config).routing;
  const family = String(config.model_type);
  if (routing === "uni_moe_top_p")
    return { topP: { ok: true }, topK: { ok: false, reason: `${family} routes by dynamic capacity: Top-P chooses each token's k (set the Routing Top-P override instead)` } };
  const noTopP = { ok: false as const, reason: `${family}'s router picks a fixed number of experts per token (top-${config.mlp_dynamic_top_k}); it has no Top-P threshold (use the top-k override)` };
  if (routing === "sparsemixer") return { topP: { ...noTopP, reason: `${family}'s sparsemixer router has no Top-P threshold` }, topK: { ok: false, reason: `${family}'s sparsemixer is defined for top-2 only (transformers raises for any other top_k)` } };
  return { topP: noTopP, topK: { ok: true, max: config.mlp_dynamic_expert_num } };
}

/** The routing overrides of a run: null (or absent) = the model's own (Top-P: its P, top-k: its k). */
export interface RoutingOverrides {
  topP?: number | null;
  topK?: number | null;
}

/**
 * Throws the reason when an override does not apply to this model's router (or is out of range); returns the overrides
 * in force, to merge with the compiled rules (`{ ...compileInterventions(config, rules), ...checkRoutingOverrides(config, o) }`).
 */
export function checkRoutingOverrides(config: MoeLlmConfig, o: RoutingOverrides): { topP?: number; topK?: number } {
  const c = routingControls(config);
  const out: { topP?: number; topK?: number } = {};
  if (o.topP !== undefined && o.topP !== null) {
    if (!c.topP.ok) throw new Error(`Routing Top-P override ${o.topP}: ${c.topP.reason}`);
    if (!(o.topP > 0 && o.topP <= 1)) throw new Error(`Routing Top-P override ${o.topP}: must be above 0 and at most 1 (none = the model's P, ${config.mlp_dynamic_top_p})`);
    out.topP = o.topP;
  }
  if (o.topK !== undefined && o.topK !== null) {
    if (!c.topK.ok) throw new Error(`Routing top-k override ${o.topK}: ${c.topK.reason}`);
    if (!Number.isInteger(o.topK) || o.topK < 1 || o.topK > c.topK.max) throw new Error(`Routing top-k override ${o.topK}: must be a whole number from 1 to ${c.topK.max} (the routed experts; none = the model's k, ${config.mlp_dynamic_top_k})`);
    out.topK = o.topK;
  }
  return out;
}

/**
 * Parses the rules (JSON text or value) into the graph's [L*E] arrays; errors name the rule. Rules apply to MoE
 * layers: "*" means every MoE layer, a dense (router-less) layer is refused. The routing overrides are not rules: the
 * caller merges `checkRoutingOverrides`.
 */
export function compileInterventions(config: MoeLlmConfig, rules: unknown): Interventions {
  const parsed = zInterventionRules.safeParse(typeof rules === "string" ? (rules.trim() ? JSON.parse(rules) : []) : rules ?? []);
  if (!parsed.success) throw new Error(`interventions: ${parsed.error.issues[0]!.path.join(".")}: ${parsed.error.issues[0]!.message}`);
  const cols = expertColumns(config);
  const L = config.num_hidden_layers;
  const E = cols.length;
  const out: Interventions = {};
  const moe = moeLayerIndices(config);
  parsed.data.forEach((rule, i) => {
    const col = typeof rule.expert === "number" ? rule.expert : cols.findIndex((c) => c.name.toLowerCase() === String(rule.expert).toLowerCase());
    if (col < 0 || col >= E) throw new Error(`interventions[${i}]: no expert "${rule.expert}" (experts: ${cols.map((c) => c.name).join(", ")})`);
    if (rule.action !== "bias" && cols[col]!.role === "shared") throw new Error(`interventions[${i}]: shared experts are always on; only "bias" applies to ${cols[col]!.name}`);
    if (rule.layer !== "*" && rule.layer >= L) throw new Error(`interventions[${i}]: layer ${rule.layer} does not exist (0..${L - 1})`);
    if (rule.layer !== "*" && !moe.includes(rule.layer)) throw new Error(`interventions[${i}]: layer ${rule.layer} is a dense MLP layer (no router); MoE layers: ${moe.join(", ")}`);
    const layers = rule.layer === "*" ? moe : [rule.layer];
    const key = rule.action === "ban" ? "ban" : rule.action === "force" ? "force" : "routerBias";
    const arr = (out[key] ??= new Float32Array(L * E));
    for (const l of layers) arr[l * E + col] = rule.action === "bias" ? (arr[l * E + col]! + (rule.value ?? 0)) : 1;
  });
  if (out.ban && out.force) {
    for (let j = 0; j < out.ban.length; j++) {
      if (out.ban[j] && out.force[j]) throw new Error(`interventions: ${cols[j % E]!.name} at layer ${Math.floor(j / E)} is both banned and forced`);
    }
  }
  return out;
}
