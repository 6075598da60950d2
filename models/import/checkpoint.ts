/**
 * A checkpoint folder as the user downloaded it: config.json, safetensors (single, sharded with
 * model.safetensors.index.json, or several), tokenizer files. Reads headers only until a tensor is asked for.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { MoeLlmConfig } from "../moe-llm/config";
import { CONFIG_FIELD_NOTES, detectFamily, familyByName, FAMILIES, type Family, type MappingRule, type Take } from "../families/table";
import type { TensorClaim } from "../families/common";
import { checkpointParts, DECODER_PARTS, type PartReport } from "../families/parts";
import { dequantFp8Blocks, dequantMxfp4 } from "./dequant";
import { moeLlmParamShapes } from "../moe-llm/moe-llm-graph";
import { towerConfig, towerNeeded, type TowerConfig } from "../families/towers";
import { SafetensorsWeights } from "../io/safetensors";
import type { Tensor32, WeightSource } from "../io/weights";
import { SPEECH_CANONICAL, speechConfigFromOmni, speechParamTable, type SpeechGenConfig } from "../tts/tts-released";

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
  /** How each canonical tensor is read from the checkpoint (see MappedWeights). */
  sources: Map<string, CanonicalSource>;
  /** fp8 block size of the checkpoint's quantization_config (DeepSeek-V3), when it has fp8 weights. */
  fp8Block?: [number, number];
}

/** Where a canonical tensor comes from: checkpoint tensors joined by rows, or one expert's slice of a stacked tensor. */
export type CanonicalSource =
  | { kind: "parts"; parts: TensorClaim[] }
  | { kind: "slice"; tensor: TensorClaim; index: number; take?: Take; mxfp4Scales?: string };

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

/** Which rule claims `name`, and the canonical name it maps to (a stacked rule's keeps `{e}`). */
function claim(rules: CompiledRule[], name: string): { rule: CompiledRule; canonical: string | null; values: Record<string, string> } | undefined {
  for (const rule of rules) {
    const m = rule.re.exec(name);
    if (!m) continue;
    const values = Object.fromEntries(rule.keys.map((k, j) => [k, m[j + 1]!]));
    return { rule, canonical: rule.to === null ? null : fill(rule.to, values), values };
  }
  return undefined;
}

/** The checkpoint name a canonical name is expected under (first rule whose `to` — or an `also` target — matches). */
function expectedName(rules: CompiledRule[], canonical: string): string {
  for (const rule of rules) {
    for (const to of [rule.to, ...(rule.also ?? []).map((a) => a.to)]) {
      if (to === null) continue;
      const { re, keys } = compile(to);
      const m = re.exec(canonical);
      if (m) return fill(rule.from, Object.fromEntries(keys.map((k, j) => [k, m[j + 1]!])));
    }
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

/** Suffix of DeepSeek-V3's fp8 block scales: `<w>.weight` (F8_E4M3) + `<w>.weight_scale_inv` (F32). */
const FP8_SCALES = "_scale_inv";

/**
 * The fp8 block size of a checkpoint with F8_E4M3 weights (quantization_config as DeepSeek-V3 ships it:
 * quant_method "fp8", fmt "e4m3", weight_block_size [128, 128]); other quantisation methods are refused naming them.
 */
function quantization(raw: Record<string, unknown>, dtypes: Set<string>, family: string): [number, number] | undefined {
  const q = raw.quantization_config as Record<string, unknown> | undefined;
  const method = q?.quant_method;
  for (const d of ["F8_E5M2", "I8", "I16", "I32", "I64", "U16", "U32", "U64", "F64", "BOOL"])
    if (dtypes.has(d)) throw new Error(`${family}: the checkpoint stores ${d} tensors, which MoE Studio cannot read (F32, F16, BF16, F8_E4M3 with block scales, MXFP4 uint8 blocks)`);
  if (method !== undefined && method !== "fp8" && method !== "mxfp4")
    throw new Error(`${family}: quantization_config.quant_method "${String(method)}" is not supported (only DeepSeek-V3's fp8 blocks and gpt-oss's MXFP4 experts are dequantised at import)`);
  if (!dtypes.has("F8_E4M3")) return undefined;
  if (method !== "fp8") throw new Error(`${family}: the checkpoint has F8_E4M3 tensors but its quantization_config is ${JSON.stringify(q ?? null)} (expected quant_method "fp8" with weight_block_size)`);
  const block = q!.weight_block_size ?? [128, 128];
  if (!Array.isArray(block) || block.length !== 2 || !block.every((b) => Number.isInteger(b) && b > 0)) throw new Error(`${family}: quantization_config.weight_block_size must be two positive integers (got ${JSON.stringify(block)})`);
  return block as [number, number];
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
  const names = weights.names().sort();
  const info = new Map(names.map((n) => [n, weights.info(n)]));
  const fp8Block = quantization(raw, new Set([...info.values()].map((i) => i.dtype)), family.name);
  const sources = new Map<string, CanonicalSource>();
  const tensors: TensorClaim[] = names.map((name) => {
    const t = info.get(name)!;
    const base: Omit<TensorClaim, "rule" | "canonical" | "part"> = { name, shape: t.shape, dtype: t.dtype, file: path.basename(t.file) };
    const scaled = name.endsWith(FP8_SCALES) ? name.slice(0, -FP8_SCALES.length) : undefined;
    if (scaled !== undefined && info.get(scaled)?.dtype === "F8_E4M3") return { ...base, rule: `<weight>${FP8_SCALES}`, canonical: null, part: 0, note: `fp8 block scales of ${scaled}, applied when it is read` };
    const c = claim(rules, name);
    return { ...base, rule: c ? c.rule.from : null, canonical: c?.canonical ?? null, part: c?.rule.part ?? 0, ...(c?.rule.note ? { note: c.rule.note } : {}) };
  });
  const missing: MissingTensor[] = [];
  for (const t of tensors) {
    if (t.rule === null || t.canonical === null) continue;
    const rule = rules.find((r) => r.from === t.rule)!;
    if (t.dtype === "F8_E4M3" && !info.has(t.name + FP8_SCALES)) throw new Error(`${family.name}: "${t.name}" is F8_E4M3 without "${t.name}${FP8_SCALES}" (only block-scaled fp8 can be dequantised)`);
    if (!rule.stacked) {
      const s = sources.get(t.canonical);
      if (s?.kind === "parts") s.parts.push(t), s.parts.sort((a, b) => a.part - b.part);
      else sources.set(t.canonical, { kind: "parts", parts: [t] });
      continue;
    }
    const scales = rule.mxfp4Scales ? fill(rule.mxfp4Scales, claim([rule], t.name)!.values) : undefined;
    if (scales !== undefined && !info.has(scales)) missing.push({ canonical: t.canonical, expected: scales });
    for (let e = 0; e < (t.shape[0] ?? 0); e++) {
      const index = e;
      const at = (to: string) => to.replace("{e}", String(index));
      sources.set(at(t.canonical), { kind: "slice", tensor: t, index, ...(rule.take ? { take: rule.take } : {}), ...(scales ? { mxfp4Scales: scales } : {}) });
      for (const a of rule.also ?? []) sources.set(at(fill(a.to, claim([rule], t.name)!.values)), { kind: "slice", tensor: t, index, take: a.take, ...(scales ? { mxfp4Scales: scales } : {}) });
    }
  }
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
  missing.push(...[...neededNames].filter((c) => !sources.has(c)).map((canonical) => ({ canonical, expected: expectedName(rules, canonical) })));
  // a multi-part canonical tensor (Qwen2-MoE router + shared gate) is missing if one of its parts is
  for (const rule of rules.filter((r) => r.part !== undefined && r.part > 0)) {
    const first = rules.find((r) => r.to === rule.to && (r.part ?? 0) === 0)!;
    for (const t of tensors.filter((x) => x.rule === first.from)) {
      const partName = t.canonical && expectedName([{ ...rule, ...compile(rule.from) }], t.canonical);
      if (partName && !tensors.some((x) => x.name === partName)) missing.push({ canonical: t.canonical!, expected: partName });
    }
  }
  const usedBy = (t: TensorClaim) => [...sources].some(([name, s]) => neededNames.has(name) && (s.kind === "parts" ? s.parts.includes(t) : s.tensor === t || s.mxfp4Scales === t.name));
  return {
    family,
    config,
    tensors,
    unclaimed: tensors.filter((t) => t.rule === null),
    missing,
    unused: tensors.filter((t) => t.rule !== null && t.canonical !== null && !usedBy(t)),
    towers,
    ...(speech ? { speech } : {}),
    parts: checkpointParts(family.parts ?? DECODER_PARTS, tensors),
    unusedConfig: Object.keys(raw)
      .filter((k) => k !== "model_type" && !read.has(k))
      .sort()
      .map((key) => ({ key, note: CONFIG_FIELD_NOTES[key] ?? "not used by MoE Studio" })),
    sources,
    ...(fp8Block ? { fp8Block } : {}),
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
 * The checkpoint's tensors under canonical names (what the graph builder reads), converted to fp32 on read:
 * multi-part canonical tensors are the parts' rows concatenated in part order; a stacked tensor's expert slice is read
 * alone (MXFP4 blocks dequantised with their scales); F8_E4M3 weights are multiplied by their block scales.
 */
export class MappedWeights implements WeightSource {
  constructor(private readonly source: SafetensorsWeights, private readonly map: Pick<CheckpointMap, "sources" | "fp8Block">) {}

  names(): string[] {
    return [...this.map.sources.keys()];
  }

  has(name: string): boolean {
    return this.map.sources.has(name);
  }

  private sourceOf(name: string): CanonicalSource {
    const s = this.map.sources.get(name);
    if (!s) throw new Error(`weight "${name}" is missing from the checkpoint`);
    return s;
  }

  /** The shape `get(name)` returns, from the headers (nothing read). */
  shape(name: string): number[] {
    const s = this.sourceOf(name);
    if (s.kind === "slice") {
      const slice = s.tensor.shape.slice(1);
      const read = s.mxfp4Scales ? [slice[0]!, slice[1]! * 32] : slice;
      return s.take ? s.take.shape(read) : read;
    }
    const parts = s.parts;
    return parts.length === 1 ? [...parts[0]!.shape] : [parts.reduce((a, p) => a + p.shape[0]!, 0), ...parts[0]!.shape.slice(1)];
  }

  /** One checkpoint tensor as fp32 (fp8 with block scales dequantised). */
  private read(t: TensorClaim): Tensor32 {
    if (t.dtype !== "F8_E4M3") return this.source.get(t.name);
    const [rows, cols] = t.shape as [number, number];
    const scales = this.source.get(t.name + FP8_SCALES);
    return { shape: [rows, cols], data: dequantFp8Blocks(this.source.rawBytes(t.name), scales.data, rows, cols, this.map.fp8Block ?? [128, 128]) };
  }

  get(name: string): Tensor32 {
    const s = this.sourceOf(name);
    if (s.kind === "slice") {
      const shape = s.tensor.shape.slice(1);
      let t: Tensor32;
      if (s.mxfp4Scales) {
        const [rows, groups] = shape as [number, number];
        t = { shape: [rows, groups * 32], data: dequantMxfp4(this.source.rawBytes(s.tensor.name, s.index, 1), this.source.rawBytes(s.mxfp4Scales, s.index, 1), rows, groups) };
      } else {
        t = { shape, data: this.source.getSlices(s.tensor.name, s.index).data };
      }
      return s.take ? s.take.apply(t) : t;
    }
    const parts = s.parts;
    if (parts.length === 1) return this.read(parts[0]!);
    const read = parts.map((p) => this.read(p));
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
