import { z } from "zod";
import { expertColumns, type MoeLlmConfig } from "./config";
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

/** Parses the rules (JSON text or value) into the graph's [L*E] arrays; errors name the rule. */
export function compileInterventions(config: MoeLlmConfig, rules: unknown, topP?: number): Interventions {
  const parsed = zInterventionRules.safeParse(typeof rules === "string" ? (rules.trim() ? JSON.parse(rules) : []) : rules ?? []);
  if (!parsed.success) throw new Error(`interventions: ${parsed.error.issues[0]!.path.join(".")}: ${parsed.error.issues[0]!.message}`);
  const cols = expertColumns(config);
  const L = config.num_hidden_layers;
  const E = cols.length;
  const out: Interventions = {};
  if (topP !== undefined && topP > 0) out.topP = topP;
  parsed.data.forEach((rule, i) => {
    const col = typeof rule.expert === "number" ? rule.expert : cols.findIndex((c) => c.name.toLowerCase() === String(rule.expert).toLowerCase());
    if (col < 0 || col >= E) throw new Error(`interventions[${i}]: no expert "${rule.expert}" (experts: ${cols.map((c) => c.name).join(", ")})`);
    if (rule.action !== "bias" && cols[col]!.role === "shared") throw new Error(`interventions[${i}]: shared experts are always on; only "bias" applies to ${cols[col]!.name}`);
    if (rule.layer !== "*" && rule.layer >= L) throw new Error(`interventions[${i}]: layer ${rule.layer} does not exist (0..${L - 1})`);
    const layers = rule.layer === "*" ? [...Array(L).keys()] : [rule.layer];
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
