/**
 * Routing trace export / import.
 *
 * JSON schema ("routing-trace" version 1), N tokens, E experts, L layers:
 * {
 *   "kind": "routing-trace", "version": 1, "model": string, "convention": string,
 *   "routingPrecision"?: "fp32" | "bf16",                                             // absent = fp32
 *   "parameters"?: { "total": int, "fixed": int, "perRoutedExpert": int },            // the model's parameter counts
 *   "experts": [{ "name": string, "role": "routed" | "null" | "shared" }],          // E, router column order
 *   "tokens":  [{ "id": int, "text": string, "modality": "text"|"image"|"video"|"audio"|"speech",
 *                 "position": [t, h, w], "phase": "prefill" | "decode" }],          // N
 *   "layers":  [{ "routerLogits": number[],   // N·E row-major [token][expert]; non-finite values as the
 *                                             // strings "Infinity", "-Infinity", "NaN" (JSON has none)
 *                 "mask": (0|1)[],            // N·E row-major
 *                 "weights": number[],        // N·E row-major, finite
 *                 "k": int[],                 // N, >= 0: the model's k before capacity drops (D = routed + null
 *                                             // experts; k > D: no dynamic expert, Uni-MoE's release can report D + 1)
 *                 "dropped"?: (0|1)[] }]      // N·E row-major: selected, then dropped over capacity (mask 0, weight 0)
 *   "lens"?: { "k": K, "layers": [{ "topIds": int[], "topLogprobs": number[],   // N·K row-major, per decoder layer
 *                                   "finalRank": int[], "kl": number[] }],       // N (engine/trace.ts LogitLens)
 *               "texts"?: { "<id>": string } }                                   // the text of each top id
 * }
 * A token may carry "nll": its teacher-forced negative log-likelihood (nats) when the run scored it.
 * Float32 values are written as the shortest decimal that reads back to the same float32, so a
 * round trip is exact.
 *
 * CSV: one row per token × layer (token-major), header
 *   token,text,modality,phase,layer,k,top_expert,w:<expert name>… (one weight column per expert, column order)
 * top_expert = name of the selected dynamic expert with the largest weight (empty if none). Written with
 * csv-stringify (engine/csv.ts): fields with a comma, quote, CR or LF are quoted (RFC 4180); text starting
 * with = + - @ TAB or CR gets a leading ' so spreadsheets do not run it as a formula (option
 * `escapeFormulas`, default on).
 */
import { z } from "zod";
import type { LayerTrace, RoutingTrace } from "../trace";
import { expertLayout } from "./core";
import { checkShapes } from "./metrics";
import { formatIssues, parseJSON } from "./json";
import { toCSV, type CsvCell } from "../csv";

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i); // exact doubles

/**
 * Shortest decimal that reads back (through Math.fround) to the same float32 value, as a number whose
 * JSON/String form is that decimal. Fast path: round to p = 1..9 significant digits with exact powers
 * of ten (m / 10^k is correctly rounded, so its shortest form is the p-digit decimal) and keep the first
 * that round-trips; the round-trip check makes it exact whatever the rounding details. Magnitudes out
 * of reach of the fast path fall back to toPrecision (9 digits always round-trip a float32).
 */
export function float32Shortest(v: number): number {
  if (v === 0 || !Number.isFinite(v)) return v;
  const e = Math.floor(Math.log10(Math.abs(v)));
  for (let p = 1; p <= 9; p++) {
    const k = p - 1 - e; // decimal places to keep
    let r: number;
    if (k >= 0 && k <= 22) r = Math.round(v * POW10[k]!) / POW10[k]!;
    else if (k < 0 && k >= -22) r = Math.round(v / POW10[-k]!) * POW10[-k]!;
    else break;
    if (Math.fround(r) === v) return r;
  }
  for (let p = 1; p < 9; p++) {
    const r = Number(v.toPrecision(p));
    if (Math.fround(r) === v) return r;
  }
  return Number(v.toPrecision(9));
}

type JsonLogit = number | "Infinity" | "-Infinity" | "NaN";

export interface TraceJSON {
  kind: "routing-trace";
  version: 1;
  model: string;
  convention: string;
  routingPrecision?: "fp32" | "bf16";
  parameters?: { total: number; fixed: number; perRoutedExpert: number };
  experts: { name: string; role: "routed" | "null" | "shared" }[];
  tokens: { id: number; text: string; modality: "text" | "image" | "video" | "audio" | "speech"; position: [number, number, number]; phase: "prefill" | "decode"; nll?: number }[];
  layers: { layer?: number; routerLogits: JsonLogit[]; mask: number[]; weights: number[]; k: number[]; dropped?: number[]; scores?: number[] }[];
  /** Every decoder layer (dense ones included), when the model has dense layers. */
  layerInfo?: { layer: number; kind: "moe" | "dense"; rule: string }[];
  lens?: { k: number; layers: { topIds: number[]; topLogprobs: number[]; finalRank: number[]; kl: number[] }[]; texts?: Record<string, string> };
}

/** The trace as a JSON-ready object (typed arrays → plain arrays). */
export function traceToJSON(trace: RoutingTrace): TraceJSON {
  checkShapes(trace);
  const logit = (v: number): JsonLogit => (Number.isFinite(v) ? float32Shortest(v) : Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
  return {
    kind: "routing-trace",
    version: 1,
    model: trace.model,
    convention: trace.convention,
    ...(trace.routingPrecision ? { routingPrecision: trace.routingPrecision } : {}),
    ...(trace.parameters ? { parameters: { ...trace.parameters } } : {}),
    experts: trace.experts.map((e) => ({ name: e.name, role: e.role })),
    tokens: trace.tokens.map((t) => ({ id: t.id, text: t.text, modality: t.modality, position: [t.position[0], t.position[1], t.position[2]], phase: t.phase, ...(t.nll === undefined ? {} : { nll: t.nll }) })),
    layers: trace.layers.map((l) => ({
      ...(l.layer !== undefined ? { layer: l.layer } : {}),
      routerLogits: Array.from(l.routerLogits, logit),
      mask: Array.from(l.mask),
      weights: Array.from(l.weights, float32Shortest),
      k: Array.from(l.k),
      ...(l.dropped ? { dropped: Array.from(l.dropped) } : {}),
      ...(l.scores ? { scores: Array.from(l.scores, float32Shortest) } : {}),
    })),
    ...(trace.layerInfo ? { layerInfo: trace.layerInfo.map((i) => ({ ...i })) } : {}),
    ...(trace.lens
      ? {
          lens: {
            k: trace.lens.k,
            layers: trace.lens.layers.map((l) => ({ topIds: Array.from(l.topIds), topLogprobs: Array.from(l.topLogprobs, float32Shortest), finalRank: Array.from(l.finalRank), kl: Array.from(l.kl, float32Shortest) })),
            ...(trace.lens.texts ? { texts: trace.lens.texts } : {}),
          },
        }
      : {}),
  };
}

export function traceToJSONString(trace: RoutingTrace, space?: number): string {
  return JSON.stringify(traceToJSON(trace), null, space);
}

/**
 * Array of N·E values checked in one loop (zod per element is far too slow for millions of values);
 * reports the first bad index as the issue path.
 */
function valuesArray(what: string, ok: (x: unknown) => boolean) {
  return z.custom<unknown[]>((v) => Array.isArray(v), { message: `expected an array of ${what}` }).superRefine((a, ctx) => {
    for (let i = 0; i < a.length; i++) {
      if (!ok(a[i])) {
        ctx.addIssue({ code: "custom", path: [i], message: `${JSON.stringify(a[i]) ?? String(a[i])} is not ${what}` });
        return;
      }
    }
  });
}
const isLogit = (x: unknown) => typeof x === "number" || x === "Infinity" || x === "-Infinity" || x === "NaN";
const isBit = (x: unknown) => x === 0 || x === 1;
const isFiniteNum = (x: unknown) => typeof x === "number" && Number.isFinite(x);
const isCount = (x: unknown) => typeof x === "number" && Number.isInteger(x) && x >= 0;

const traceSchema = z.object({
  kind: z.literal("routing-trace"),
  version: z.literal(1),
  model: z.string(),
  convention: z.string(),
  routingPrecision: z.enum(["fp32", "bf16"]).optional(),
  parameters: z.object({ total: z.number().nonnegative(), fixed: z.number().nonnegative(), perRoutedExpert: z.number().nonnegative() }).optional(),
  experts: z.array(z.object({ name: z.string(), role: z.enum(["routed", "null", "shared"]) })),
  tokens: z.array(
    z.object({
      id: z.number().int(),
      text: z.string(),
      modality: z.enum(["text", "image", "video", "audio", "speech"]),
      position: z.tuple([z.number(), z.number(), z.number()]),
      phase: z.enum(["prefill", "decode"]),
      nll: z.number().finite().optional(),
    }),
  ),
  layers: z.array(
    z.object({
      layer: z.number().int().nonnegative().optional(),
      routerLogits: valuesArray('a number or "Infinity" / "-Infinity" / "NaN"', isLogit),
      mask: valuesArray("0 or 1", isBit),
      weights: valuesArray("a finite number", isFiniteNum),
      k: valuesArray("a non-negative integer", isCount),
      dropped: valuesArray("0 or 1", isBit).optional(),
      scores: valuesArray("a finite number", isFiniteNum).optional(),
    }),
  ),
  layerInfo: z.array(z.object({ layer: z.number().int().nonnegative(), kind: z.enum(["moe", "dense"]), rule: z.string().max(1000) })).optional(),
  lens: z
    .object({
      k: z.number().int().min(1),
      layers: z.array(
        z.object({
          topIds: valuesArray("a non-negative integer", isCount),
          topLogprobs: valuesArray("a finite number", isFiniteNum),
          finalRank: valuesArray("a non-negative integer", isCount),
          kl: valuesArray("a finite number", isFiniteNum),
        }),
      ),
      texts: z.record(z.string().regex(/^\d+$/), z.string()).optional(),
    })
    .optional(),
});

export interface TraceCheckOptions {
  /**
   * Also check the routing semantics (default true): every k up to D equals the number of selected plus dropped
   * dynamic experts (a k above D selects none), unselected and dropped columns have weight 0, each weight row sums
   * to 1 (± `tolerance`, default 1e-3; 2e-2 for a bf16 trace, whose weights are rounded to bf16) unless the trace's
   * convention says its weights "need not sum to 1" (Qwen2-MoE's are < 1, DeepSeek's × routed_scaling_factor).
   */
  semantics?: boolean;
  tolerance?: number;
}

/**
 * Problems of an in-memory trace (empty when valid): array lengths N·E / N, mask and dropped 0/1, k a non-negative integer,
 * finite weights, no NaN logits; with `semantics`, the rules above. At most `max` messages.
 */
export function traceProblems(trace: RoutingTrace, options: TraceCheckOptions & { max?: number } = {}): string[] {
  const out: string[] = [];
  const max = options.max ?? 10;
  const tol = options.tolerance ?? (trace.routingPrecision === "bf16" ? 2e-2 : 1e-3);
  const semantics = options.semantics ?? true;
  const N = trace.tokens.length;
  const E = trace.experts.length;
  const lay = expertLayout(trace.experts);
  const report = (m: string) => out.length < max && out.push(m);
  if (trace.lens) {
    const K = trace.lens.k;
    const decoderLayers = trace.layerInfo?.length ?? trace.layers.length;
    if (trace.lens.layers.length !== decoderLayers) report(`lens: ${trace.lens.layers.length} layers, the model has ${decoderLayers}`);
    trace.lens.layers.forEach((l, li) => {
      for (const [name, got, want] of [["topIds", l.topIds.length, N * K], ["topLogprobs", l.topLogprobs.length, N * K], ["finalRank", l.finalRank.length, N], ["kl", l.kl.length, N]] as const)
        if (got !== want) report(`lens.layers[${li}].${name}: expected ${want} values, got ${got}`);
    });
  }
  const sumsToOne = !/need not sum to 1/.test(trace.convention);
  trace.layers.forEach((l, li) => {
    if (out.length >= max) return;
    const lens: [string, number, number][] = [
      ["routerLogits", l.routerLogits.length, N * E],
      ["mask", l.mask.length, N * E],
      ["weights", l.weights.length, N * E],
      ["k", l.k.length, N],
      ...(l.dropped ? ([["dropped", l.dropped.length, N * E]] as [string, number, number][]) : []),
    ];
    let bad = false;
    for (const [name, got, want] of lens) {
      if (got !== want) {
        report(`layers[${li}].${name}: expected ${want} values (${name === "k" ? "N" : "N × E"} with N = ${N}, E = ${E}), got ${got}`);
        bad = true;
      }
    }
    if (bad) return;
    for (let n = 0; n < N && out.length < max; n++) {
      const b = n * E;
      const kk = l.k[n]!;
      if (!(Number.isInteger(kk) && kk >= 0)) report(`layers[${li}].k[${n}] = ${kk} is not a non-negative integer`);
      let chosen = 0;
      let lost = 0;
      let sum = 0;
      for (let c = 0; c < E; c++) {
        const m = l.mask[b + c]!;
        const w = l.weights[b + c]!;
        if (m !== 0 && m !== 1) report(`layers[${li}].mask[${b + c}] = ${m} (token ${n}, expert ${c}) is not 0 or 1`);
        if (!Number.isFinite(w)) report(`layers[${li}].weights[${b + c}] = ${w} (token ${n}, expert ${c}) is not finite`);
        if (Number.isNaN(l.routerLogits[b + c]!)) report(`layers[${li}].routerLogits[${b + c}] (token ${n}, expert ${c}) is NaN`);
        const d = l.dropped?.[b + c] ?? 0;
        if (m && lay.dynOfCol[c]! >= 0) chosen++;
        if (d && lay.dynOfCol[c]! >= 0) lost++;
        if (semantics && d && m) report(`layers[${li}] token ${n}: expert ${c} (${trace.experts[c]!.name}) is both selected and dropped`);
        if (semantics && !m && w !== 0) report(`layers[${li}] token ${n}: expert ${c} (${trace.experts[c]!.name}) is not selected but has weight ${w}`);
        sum += w;
      }
      if (semantics && (kk <= lay.D ? chosen + lost !== kk : chosen + lost > lay.D))
        report(`layers[${li}] token ${n}: k = ${kk} but ${chosen} dynamic experts are selected${lost ? ` and ${lost} dropped` : ""}`);
      if (semantics && sumsToOne && E > 0 && Math.abs(sum - 1) > tol) report(`layers[${li}] token ${n}: weights sum to ${Number(sum.toPrecision(6))}, expected 1 (± ${tol})`);
    }
  });
  return out;
}

/**
 * Reads a trace written by traceToJSON (object or JSON text). Throws an Error naming the first
 * problems (path: message) when the input does not match the schema or (with `semantics`, default
 * true) the routing rules.
 */
export function traceFromJSON(input: unknown, options: TraceCheckOptions = {}): RoutingTrace {
  const raw = typeof input === "string" ? parseJSON(input) : input;
  const parsed = traceSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`invalid routing trace: ${formatIssues(parsed.error.issues)}`);
  const j = parsed.data;
  const logit = (v: JsonLogit) => (typeof v === "number" ? v : v === "NaN" ? NaN : v === "Infinity" ? Infinity : -Infinity);
  const layers: LayerTrace[] = j.layers.map((l) => ({
    ...(l.layer !== undefined ? { layer: l.layer } : {}),
    routerLogits: Float32Array.from(l.routerLogits as JsonLogit[], logit),
    mask: Uint8Array.from(l.mask as number[]),
    weights: Float32Array.from(l.weights as number[]),
    k: Int32Array.from(l.k as number[]),
    ...(l.dropped ? { dropped: Uint8Array.from(l.dropped as number[]) } : {}),
    ...(l.scores ? { scores: Float32Array.from(l.scores as number[]) } : {}),
  }));
  const trace: RoutingTrace = {
    kind: "routing-trace",
    model: j.model,
    convention: j.convention,
    ...(j.routingPrecision ? { routingPrecision: j.routingPrecision } : {}),
    ...(j.parameters ? { parameters: j.parameters } : {}),
    experts: j.experts,
    tokens: j.tokens.map((t) => ({ ...t, position: [t.position[0], t.position[1], t.position[2]] })),
    layers,
    ...(j.layerInfo ? { layerInfo: j.layerInfo } : {}),
    ...(j.lens
      ? {
          lens: {
            k: j.lens.k,
            layers: j.lens.layers.map((l) => ({
              topIds: Int32Array.from(l.topIds as number[]),
              topLogprobs: Float32Array.from(l.topLogprobs as number[]),
              finalRank: Int32Array.from(l.finalRank as number[]),
              kl: Float32Array.from(l.kl as number[]),
            })),
            ...(j.lens.texts ? { texts: Object.fromEntries(Object.entries(j.lens.texts).map(([id, t]) => [Number(id), t])) } : {}),
          },
        }
      : {}),
  };
  const problems = traceProblems(trace, { ...options, max: 5 });
  if (problems.length) throw new Error(`invalid routing trace: ${problems.join("; ")}`);
  return trace;
}

export interface CsvOptions {
  /** Prefix text starting with = + - @ TAB CR with ' (spreadsheet formula injection); default true. */
  escapeFormulas?: boolean;
  /** Line ending; default "\n". */
  eol?: string;
}

/** One CSV row per token × layer (token-major), see the header comment for the columns. */
export function traceToCSV(trace: RoutingTrace, options: CsvOptions = {}): string {
  checkShapes(trace);
  const E = trace.experts.length;
  const lay = expertLayout(trace.experts);
  const rows: CsvCell[][] = [["token", "text", "modality", "phase", "layer", "k", "top_expert", ...trace.experts.map((e) => `w:${e.name}`)]];
  trace.tokens.forEach((t, n) => {
    trace.layers.forEach((l, li) => {
      const b = n * E;
      let best = -1;
      let bw = -Infinity;
      for (let d = 0; d < lay.D; d++) {
        const c = lay.dynCols[d]!;
        if (l.mask[b + c] && (l.weights[b + c]! > bw || best < 0)) {
          bw = l.weights[b + c]!;
          best = c;
        }
      }
      const row: CsvCell[] = [n, t.text, t.modality, t.phase, li, l.k[n]!, best >= 0 ? trace.experts[best]!.name : ""];
      for (let c = 0; c < E; c++) row.push(float32Shortest(l.weights[b + c]!));
      rows.push(row);
    });
  });
  return toCSV(rows, { defuseText: options.escapeFormulas ?? true, eol: options.eol });
}
