import { z } from "zod";
import { defineNode } from "../engine/node";
import { rotaryFrequencies } from "../engine/rope/frequencies";
import { computePositionIds, ROPE_MODES } from "../engine/rope/positions";
import { ropeReport } from "../engine/values/rope-report";
import { headDim } from "../models/moe-llm/config";
import { resolveModel } from "../models/moe-llm/moe-llm-model";
import { byteTokenizer } from "../models/text/tokenizer";
import "./params";

/** What the RoPE Inspector view reads (stored as a JSON file; sequences can be long). */
export interface RopeReportFile {
  mode: string;
  compareMode: string | null;
  tokens: { text: string; modality: string; t: number; h: number; w: number; info: Record<string, unknown> }[];
  /** The same tokens under the comparison mode (matched by layout segment and index). */
  compare: { t: number; h: number; w: number }[] | null;
  layout: unknown[];
  spans: { segment: number; kind: string; start: number; max: number; tokens: number }[];
  frequencies: { pair: number; axis: string; invFreq: number }[];
  rotary: { headDim: number; theta: number; sections: number[] };
  warnings: string[];
}

export const ropeInspector = defineNode({
  type: "inspect.rope",
  typeVersion: 1,
  title: "RoPE Inspector",
  category: "Inspect",
  description: "Per-token (t, h, w) positions: table, time axis, image tile grids, span starts, the rotary frequency split, two modes side by side.",
  inputs: { sequence: { type: "SEQUENCE" } },
  outputs: { report: { type: "JSON", kind: ropeReport } },
  params: z.object({
    compareMode: z.enum(["none", ...ROPE_MODES]).default("qwen2-vl").meta({ label: "Compare with" }),
    model: z.string().default("uni-moe-tiny/tiny").meta({ widget: "model", label: "Rotary config from model" }),
  }),
  async execute({ inputs, params, ctx }) {
    const s = inputs.sequence;
    const config = (await resolveModel(params.model)).config;
    const rotary = { headDim: headDim(config), theta: config.rope_theta, sections: config.rope_scaling.mrope_section };
    let compare: RopeReportFile["compare"] = null;
    if (params.compareMode !== "none") {
      const other = computePositionIds(s.layout, params.compareMode);
      const bySlot = new Map(other.tokens.map((tok, i) => [`${tok.segment}:${tok.index}`, i]));
      compare = s.tokens.map((tok) => {
        const i = bySlot.get(`${tok.segment}:${tok.index}`)!;
        return { t: other.t[i]!, h: other.h[i]!, w: other.w[i]! };
      });
    }
    const file: RopeReportFile = {
      mode: s.mode,
      compareMode: params.compareMode === "none" ? null : params.compareMode,
      tokens: s.ids.map((id, i) => {
        const { modality: _m, ...info } = s.tokens[i]!;
        return { text: byteTokenizer.decode([id]), modality: s.modality[i]!, t: s.positions.t[i]!, h: s.positions.h[i]!, w: s.positions.w[i]!, info };
      }),
      compare,
      layout: s.layout,
      spans: computePositionIds(s.layout, s.mode).spans,
      frequencies: rotaryFrequencies({ headDim: rotary.headDim, theta: rotary.theta, mropeSection: rotary.sections as [number, number, number] }).map((f) => ({ pair: f.pair, axis: f.axis, invFreq: f.invFreq })),
      rotary,
      warnings: s.warnings,
    };
    const id = await ctx.storage.write(Buffer.from(JSON.stringify(file)), "json");
    return { report: { kind: "rope-report", file: id, tokens: s.ids.length, mode: s.mode, compareMode: file.compareMode } };
  },
  summarize(outputs) {
    const r = outputs.report;
    return r ? `${r.tokens} tokens, ${r.mode}${r.compareMode ? ` vs ${r.compareMode}` : ""}` : "no report";
  },
});
