/**
 * A checkpoint folder as the user downloaded it: config.json, safetensors (single, sharded with
 * model.safetensors.index.json, or several), tokenizer files. Reads headers only until a tensor is asked for.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { MoeLlmConfig } from "../config";
import { CONFIG_FIELD_NOTES, detectFamily, familyByName, FAMILIES, type Family, type MappingRule } from "../families/table";
import { checkpointParts, DECODER_PARTS, type PartReport } from "../families/parts";
import { moeLlmParamShapes } from "../moe-llm-graph";
import { towerConfig, towerNeeded, type TowerConfig } from "../families/towers";
import { SafetensorsWeights } from "../safetensors";
import type { Tensor32, WeightSource } from "../weights";
import { SPEECH_CANONICAL, speechConfigFromOmni, speechParamTable, type SpeechGenConfig } from "../tts-released";

export interface TensorClaim {
  name: string;
  shape: number[];
  dtype: string;
  file: string;
  /** The rule's `from` pattern, or null when no rule matched (unclaimed). */
  rule: string | null;
  /** Canonical name it feeds (null: claimed but not used, or unclaimed). */
  canonical: string | null;
  part: number;
  note?: string;
}

export interface MissingTensor {
  canonical: string;
  /** The checkpoint name the family's table expects for it. */
  expected: string;
}

export interface CheckpointMap {
  family: Family;
  config: MoeLlmConfig;
  tensors: TensorClaim[];
  unclaimed: TensorClaim[];
  missing: MissingTensor[];
  /** Claimed tensors whose canonical name this config does not use (e.g. a bias the architecture lacks). */
  unused: TensorClaim[];
  /** Encoder towers present in the checkpoint (any of their tensors claimed), with their encoder configs. */
  towers: TowerConfig[];
  /** The MoE-TTS (`speech_generator.*`, canonical `speech/…`) when the checkpoint has it; then all its tensors are required. */
  speech?: SpeechGenConfig;
  /** Every part of the checkpoint (LLM, towers, generation heads, …) and what MoE Studio does with it. */
  parts: PartReport[];
  /** config.json fields MoE Studio does not read (listed, never fatal), each with what it is. */
  unusedConfig: { key: string; note: string }[];
}

interface CompiledRule extends MappingRule {
  re: RegExp;
  keys: string[];
}

/** `{i}`, `{e}`: a decimal index (captured); `{*}`: any rest of the name (rules claiming a whole part). */
function compile(pattern: string): { re: RegExp; keys: string[] } {
  const keys: string[] = [];
  const src = pattern.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+|\\\*)\}/g, (_, k: string) => {
    if (k === "\\*") return ".+";
    keys.push(k);
    return "(\\d+)";
  });
  return { re: new RegExp(`^${src}$`), keys };
}

function fill(pattern: string, values: Record<string, string>): string {
  return pattern.replace(/\{(\w+)\}/g, (_, k: string) => values[k] ?? `{${k}}`);
}

function compiledRules(family: Family): CompiledRule[] {
  return family.rules.map((r) => ({ ...r, ...compile(r.from) }));
}

/** Which rule claims `name`, and the canonical name it maps to. */
function claim(rules: CompiledRule[], name: string): { rule: CompiledRule; canonical: string | null } | undefined {
  for (const rule of rules) {
    const m = rule.re.exec(name);
    if (!m) continue;
    const values = Object.fromEntries(rule.keys.map((k, j) => [k, m[j + 1]!]));
    return { rule, canonical: rule.to === null ? null : fill(rule.to, values) };
  }
  return undefined;
}

/** The checkpoint name a canonical name is expected under (first rule whose `to` matches). */
function expectedName(rules: CompiledRule[], canonical: string): string {
  for (const rule of rules) {
    if (rule.to === null) continue;
    const { re, keys } = compile(rule.to);
    const m = re.exec(canonical);
    if (m) return fill(rule.from, Object.fromEntries(keys.map((k, j) => [k, m[j + 1]!])));
  }
  return canonical;
}

export function readConfigJson(dir: string): Record<string, unknown> {
  const file = path.join(dir, "config.json");
  if (!existsSync(file)) throw new Error(`${dir}: no config.json (is this a checkpoint folder?)`);
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as unknown;
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("not a JSON object");
    return v as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: cannot read the config (${(e as Error).message})`);
  }
}

/** Tokenizer, chat-template and generation files an import copies beside the model. */
export const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja", "chat_template.json"];

/** The files of a checkpoint the import reads (and hashes): config, weights and every file it copies. */
export function checkpointFiles(dir: string): string[] {
  const keep = new Set(["config.json", "model.safetensors.index.json", ...TOKENIZER_FILES]);
  return readdirSync(dir).filter((f) => keep.has(f) || f.endsWith(".safetensors")).sort();
}

/** The family to read a checkpoint as: the one named (for a model_type we do not know), else by model_type. */
export function chooseFamily(raw: Record<string, unknown>, familyName?: string): Family {
  if (familyName === undefined) return detectFamily(raw);
  const f = familyByName(familyName);
  if (!f) throw new Error(`unknown family "${familyName}" (known: ${FAMILIES.map((x) => x.name).join(", ")})`);
  return f;
}

/**
 * Opens a checkpoint and maps every tensor through its family's table (headers only). `familyName` reads a
 * checkpoint whose model_type we do not know as that family (its config.json must have the family's fields).
 */
export function mapCheckpoint(dir: string, weights: SafetensorsWeights, familyName?: string): CheckpointMap {
  const raw = readConfigJson(dir);
  const family = chooseFamily(raw, familyName);
  const { config, read } = readConfig(family, raw);
  const rules = compiledRules(family);
  const needed = moeLlmParamShapes(config);
  const tensors: TensorClaim[] = weights
    .names()
    .sort()
    .map((name) => {
      const info = weights.info(name);
      const c = claim(rules, name);
      return {
        name,
        shape: info.shape,
        dtype: info.dtype,
        file: path.basename(info.file),
        rule: c ? c.rule.from : null,
        canonical: c?.canonical ?? null,
        part: c?.rule.part ?? 0,
        ...(c?.rule.note ? { note: c.rule.note } : {}),
      };
    });
  const provided = new Set(tensors.map((t) => t.canonical).filter((c): c is string => c !== null));
  const towers: TowerConfig[] = [];
  const neededNames = new Set(needed.keys());
  for (const kind of family.towers ?? []) {
    if (!tensors.some((t) => t.canonical?.startsWith(`${kind}/`))) continue;
    const shapeOf = (canonical: string) => tensors.find((t) => t.canonical === canonical)?.shape;
    const tower = towerConfig(kind, raw, shapeOf, config.hidden_size);
    towers.push(tower);
    for (const n of towerNeeded(tower)) neededNames.add(n);
  }
  let speech: SpeechGenConfig | undefined;
  const table = tensors.find((t) => t.canonical === `${SPEECH_CANONICAL}qwenvl_embed_tokens.weight`);
  if (tensors.some((t) => t.canonical?.startsWith(SPEECH_CANONICAL))) {
    if (!table) throw new Error(`${dir}: the checkpoint has speech_generator.* tensors but no speech_generator.qwenvl_embed_tokens.weight`);
    speech = speechConfigFromOmni(raw, table.shape);
    for (const p of speechParamTable(speech)) neededNames.add(SPEECH_CANONICAL + p.name);
  }
  const missing = [...neededNames].filter((c) => !provided.has(c)).map((canonical) => ({ canonical, expected: expectedName(rules, canonical) }));
  // a multi-part canonical tensor (Qwen2-MoE router + shared gate) is missing if one of its parts is
  for (const rule of rules.filter((r) => r.part !== undefined && r.part > 0)) {
    const first = rules.find((r) => r.to === rule.to && (r.part ?? 0) === 0)!;
    for (const t of tensors.filter((x) => x.rule === first.from)) {
      const partName = t.canonical && expectedName([{ ...rule, ...compile(rule.from) }], t.canonical);
      if (partName && !tensors.some((x) => x.name === partName)) missing.push({ canonical: t.canonical!, expected: partName });
    }
  }
  return {
    family,
    config,
    tensors,
    unclaimed: tensors.filter((t) => t.rule === null),
    missing,
    unused: tensors.filter((t) => t.rule !== null && t.canonical !== null && !neededNames.has(t.canonical)),
    towers,
    ...(speech ? { speech } : {}),
    parts: checkpointParts(family.parts ?? DECODER_PARTS, tensors),
    unusedConfig: Object.keys(raw)
      .filter((k) => k !== "model_type" && !read.has(k))
      .sort()
      .map((key) => ({ key, note: CONFIG_FIELD_NOTES[key] ?? "not used by MoE Studio" })),
  };
}

/** The family's canonical config and the config.json keys it read (family.configKeys, else recorded while it runs). */
function readConfig(family: Family, raw: Record<string, unknown>): { config: MoeLlmConfig; read: Set<string> } {
  if (family.configKeys) return { config: family.toConfig(raw), read: new Set(family.configKeys) };
  const read = new Set<string>();
  const watched = new Proxy(raw, {
    get(target, key, receiver) {
      if (typeof key === "string") read.add(key);
      return Reflect.get(target, key, receiver);
    },
  });
  return { config: family.toConfig(watched), read };
}

/** Throws one clear error listing every tensor the model needs and the checkpoint lacks. */
export function assertComplete(map: CheckpointMap, dir: string): void {
  if (map.missing.length === 0) return;
  const list = map.missing.slice(0, 20).map((m) => `"${m.expected}"`).join(", ");
  const more = map.missing.length > 20 ? ` and ${map.missing.length - 20} more` : "";
  throw new Error(`${dir}: the ${map.family.name} checkpoint is missing ${map.missing.length} tensor(s): ${list}${more}`);
}

/**
 * The checkpoint's tensors under canonical names (what the graph builder reads), converted to fp32 on read.
 * Multi-part canonical tensors are the parts' rows concatenated in part order.
 */
export class MappedWeights implements WeightSource {
  private readonly parts = new Map<string, TensorClaim[]>();

  constructor(private readonly source: SafetensorsWeights, map: CheckpointMap) {
    for (const t of map.tensors) {
      if (!t.canonical) continue;
      const list = this.parts.get(t.canonical) ?? [];
      list.push(t);
      list.sort((a, b) => a.part - b.part);
      this.parts.set(t.canonical, list);
    }
  }

  names(): string[] {
    return [...this.parts.keys()];
  }

  has(name: string): boolean {
    return this.parts.has(name);
  }

  /** The shape `get(name)` returns, from the headers (nothing read). */
  shape(name: string): number[] {
    const parts = this.parts.get(name);
    if (!parts) throw new Error(`weight "${name}" is missing from the checkpoint`);
    return parts.length === 1 ? [...parts[0]!.shape] : [parts.reduce((a, p) => a + p.shape[0]!, 0), ...parts[0]!.shape.slice(1)];
  }

  get(name: string): Tensor32 {
    const parts = this.parts.get(name);
    if (!parts) throw new Error(`weight "${name}" is missing from the checkpoint`);
    if (parts.length === 1) return this.source.get(parts[0]!.name);
    const read = parts.map((p) => this.source.get(p.name));
    const cols = read[0]!.shape.slice(1);
    for (const [j, t] of read.entries())
      if (t.shape.slice(1).join() !== cols.join()) throw new Error(`"${parts[j]!.name}" has shape [${t.shape}], its rows cannot join "${parts[0]!.name}" [${read[0]!.shape}]`);
    const data = new Float32Array(read.reduce((a, t) => a + t.data.length, 0));
    let o = 0;
    for (const t of read) {
      data.set(t.data, o);
      o += t.data.length;
    }
    return { shape: [read.reduce((a, t) => a + t.shape[0]!, 0), ...cols], data };
  }
}
