import { paramNames, type MoeLlmConfig } from "../config";
import { architectureOf } from "../../families/conventions";
import type { GraphBuilder } from "../../onnx/builder";
import type { Ops } from "../../onnx/ops";
import type { WeightSource } from "../../io/weights";
import { catRows, transpose2, weight, type DecoderContext } from "./tensors";
import type { Routing } from "./routers";

/**
 * The feed-forward halves of a decoder layer: the experts of an MoE layer (SwiGLU, or gpt-oss's clamped SwiGLU with
 * biases), the shared experts, and the dense MLP of a router-less layer (DeepSeek's first_k_dense_replace,
 * Qwen2/3-MoE's mlp_only_layers / decoder_sparse_step).
 */

/** Every feed-forward parameter of layer i with its PyTorch shape (router included). */
export function ffnParamShapes(c: MoeLlmConfig, i: number, m: Map<string, number[]>): void {
  const a = architectureOf(c);
  const H = c.hidden_size, R = c.mlp_dynamic_expert_num, SH = c.mlp_fixed_expert_num;
  const E = R + c.mlp_dynamic_null_expert_num + SH;
  const I = c.dynamic_intermediate_size, Is = c.shared_intermediate_size;
  if (a.denseLayers[i]) {
    const Id = a.denseIntermediate;
    m.set(paramNames.dense(i, "gate"), [Id, H]);
    m.set(paramNames.dense(i, "up"), [Id, H]);
    m.set(paramNames.dense(i, "down"), [H, Id]);
    return;
  }
  // the router holds the routed (+ null) columns, plus Qwen2-MoE's shared-expert gate row; DeepSeek's shared experts have no router row
  m.set(paramNames.router(i), [a.routing.startsWith("deepseek") ? R : E, H]);
  if (a.router.bias) m.set(paramNames.routerBias(i), [R]);
  if (a.routing === "deepseek_sigmoid") m.set(paramNames.scoreCorrection(i), [R]);
  for (let e = 0; e < R; e++) {
    m.set(paramNames.routed(i, e, "gate"), [I, H]);
    m.set(paramNames.routed(i, e, "up"), [I, H]);
    m.set(paramNames.routed(i, e, "down"), [H, I]);
    if (a.expertBias) {
      m.set(paramNames.routed(i, e, "gate", "bias"), [I]);
      m.set(paramNames.routed(i, e, "up", "bias"), [I]);
      m.set(paramNames.routed(i, e, "down", "bias"), [H]);
    }
  }
  for (let s = 0; s < SH; s++) {
    m.set(paramNames.shared(i, s, "gate"), [Is, H]);
    m.set(paramNames.shared(i, s, "up"), [Is, H]);
    m.set(paramNames.shared(i, s, "down"), [H, Is]);
  }
}

/** silu(gate) * up for a fused [.., 2I] projection → [.., I]. */
function swigluAct(o: Ops, gu: string, I: number, axis: number): string {
  const [gate, up] = o.split(gu, [I, I], axis) as [string, string];
  return o.mul(o.silu(gate), up);
}

/**
 * gpt-oss's expert activation (GptOssExperts.forward, modeling_gpt_oss.py) on a fused [.., 2I] projection whose first
 * half is the gate and second the up part (the checkpoint interleaves them; the import separates them):
 * gate = min(gate, limit); up = clamp(up, -limit, limit); glu = gate · sigmoid(alpha · gate); → (up + 1) · glu.
 */
function clampedSwigluAct(o: Ops, c: MoeLlmConfig, gu: string, I: number, axis: number): string {
  const { alpha, limit } = architectureOf(c).swiglu;
  const g = o.g;
  const [gate0, up0] = o.split(gu, [I, I], axis) as [string, string];
  const gate = o.min(gate0, g.scalar(limit));
  const up = o.max(o.min(up0, g.scalar(limit)), g.scalar(-limit));
  return o.mul(o.add(up, g.scalar(1)), o.mul(gate, o.sigmoid(o.mul(gate, g.scalar(alpha)))));
}

function expertAct(o: Ops, c: MoeLlmConfig, gu: string, I: number, axis: number): string {
  return architectureOf(c).expertActivation === "clamped_swiglu" ? clampedSwigluAct(o, c, gu, I, axis) : swigluAct(o, gu, I, axis);
}

/** Per-layer expert weights as graph initializers, laid out for the chosen MoE mode. */
export function expertInitializers(g: GraphBuilder, ws: WeightSource, shapes: Map<string, number[]>, c: MoeLlmConfig, i: number, mode: "sparse" | "dense") {
  const R = c.mlp_dynamic_expert_num, SH = c.mlp_fixed_expert_num, H = c.hidden_size;
  const I = c.dynamic_intermediate_size, Is = c.shared_intermediate_size;
  const bias = architectureOf(c).expertBias;
  const w = (n: string) => weight(ws, shapes, n);
  // shared experts fused: gate_up [SH*2*Is, H] rows = [gate_0, up_0, gate_1, up_1, ...]; down^T [SH*Is, H]
  const sharedGateUp = SH === 0 ? "" : g.initializer(`l${i}.shared.gate_up`, catRows(Array.from({ length: SH }, (_, s) => [w(paramNames.shared(i, s, "gate")).data, w(paramNames.shared(i, s, "up")).data]).flat()), [SH * 2 * Is, H]);
  const sharedDown = SH === 0 ? "" : g.initializer(`l${i}.shared.down`, catRows(Array.from({ length: SH }, (_, s) => transpose2(w(paramNames.shared(i, s, "down"))))), [SH * Is, H]);
  const gateUp = (e: number, kind: "weight" | "bias") => catRows([w(paramNames.routed(i, e, "gate", kind)).data, w(paramNames.routed(i, e, "up", kind)).data]);
  if (mode === "sparse") {
    const routed = Array.from({ length: R }, (_, e) => ({
      gateUp: g.initializer(`l${i}.routed${e}.gate_up`, gateUp(e, "weight"), [2 * I, H]),
      down: g.initializer(`l${i}.routed${e}.down`, w(paramNames.routed(i, e, "down")).data, [H, I]),
      ...(bias
        ? { gateUpBias: g.initializer(`l${i}.routed${e}.gate_up_bias`, gateUp(e, "bias"), [2 * I]), downBias: g.initializer(`l${i}.routed${e}.down_bias`, w(paramNames.routed(i, e, "down", "bias")).data, [H]) }
        : {}),
    }));
    return { sharedGateUp, sharedDown, routed, stacked: undefined };
  }
  // dense: stacked for batched MatMul: gate_up^T [R,H,2I], down^T [R,I,H] (+ biases [R,1,2I], [R,1,H])
  const gu = catRows(Array.from({ length: R }, (_, e) => transpose2({ shape: [2 * I, H], data: gateUp(e, "weight") })));
  const dn = catRows(Array.from({ length: R }, (_, e) => transpose2(w(paramNames.routed(i, e, "down")))));
  const stacked = {
    gateUp: g.initializer(`l${i}.routed.gate_up_t`, gu, [R, H, 2 * I]),
    down: g.initializer(`l${i}.routed.down_t`, dn, [R, I, H]),
    ...(bias
      ? {
          gateUpBias: g.initializer(`l${i}.routed.gate_up_bias`, catRows(Array.from({ length: R }, (_, e) => gateUp(e, "bias"))), [R, 1, 2 * I]),
          downBias: g.initializer(`l${i}.routed.down_bias`, catRows(Array.from({ length: R }, (_, e) => w(paramNames.routed(i, e, "down", "bias")).data)), [R, 1, H]),
        }
      : {}),
  };
  return { sharedGateUp, sharedDown, routed: undefined, stacked };
}

/**
 * The experts of an MoE layer weighted by the routing: x [N,H] → [N,H] (without the residual). Shared experts:
 * Σ_s w_s · down_s(act_s(x)); routed: sparse (each expert on the tokens that chose it) or dense (all, masked by weight).
 * A routed expert's down bias is weighted with its output (gpt-oss multiplies the whole expert output).
 */
export function expertsOutput(o: Ops, c: MoeLlmConfig, ws: WeightSource, shapes: Map<string, number[]>, i: number, x: string, r: Routing, mode: "sparse" | "dense"): string {
  const g = o.g;
  const R = c.mlp_dynamic_expert_num, SH = c.mlp_fixed_expert_num, D = R + c.mlp_dynamic_null_expert_num;
  const I = c.dynamic_intermediate_size, Is = c.shared_intermediate_size;
  const ex = expertInitializers(g, ws, shapes, c, i, mode);
  let y: string;
  if (SH > 0) {
    const wS = o.slice(r.weights, [D], [D + SH], [1]); // [N,SH]
    const guS = o.reshape(o.linear(x, ex.sharedGateUp), g.ints([0, SH, 2 * Is])); // [N,SH,2Is]
    const actS = o.mul(swigluAct(o, guS, Is, 2), o.unsqueeze(wS, [2])); // [N,SH,Is]
    y = o.matmul(o.reshape(actS, g.ints([0, SH * Is])), ex.sharedDown); // [N,H]
  } else {
    y = o.mul(x, g.scalar(0));
  }
  const wR = o.transpose(o.slice(r.weights, [0], [R], [1]), [1, 0]); // [R,N]
  if (mode === "dense") {
    const st = ex.stacked!;
    let gu = o.matmul(x, st.gateUp); // [R,N,2I]
    if (st.gateUpBias) gu = o.add(gu, st.gateUpBias);
    let out = o.matmul(expertAct(o, c, gu, I, 2), st.down); // [R,N,H]
    if (st.downBias) out = o.add(out, st.downBias);
    return o.add(y, o.reduceSum(o.mul(out, o.unsqueeze(wR, [2])), [0], 0));
  }
  const chosenT = o.transpose(r.chosen, [1, 0]); // [D,N] bool
  for (let e = 0; e < R; e++) {
    const ee = ex.routed![e]!;
    const row = g.const([e], [], "int64");
    const idx = o.transpose(o.nonzero(o.gather(chosenT, row)), [1, 0]); // [n_e,1]
    const flat = o.reshape(idx, g.ints([-1])); // [n_e]
    const xe = o.gather(x, flat); // [n_e,H]
    const he = o.linear(expertAct(o, c, o.linear(xe, ee.gateUp, ee.gateUpBias), I, 1), ee.down, ee.downBias); // [n_e,H]
    const we = o.unsqueeze(o.gather(o.gather(wR, row), flat), [1]); // [n_e,1]
    y = o.scatterAddRows(y, idx, o.mul(he, we));
  }
  return y;
}

/** A dense layer's MLP: down(silu(gate x) · up x) (DeepseekV2MLP / DeepseekV3MLP / Qwen2MoeMLP / Qwen3MoeMLP). */
export function denseMlp(ctx: DecoderContext, i: number, x: string): string {
  const o = ctx.o;
  return o.swiglu(x, ctx.w(paramNames.dense(i, "gate")), ctx.w(paramNames.dense(i, "up")), ctx.w(paramNames.dense(i, "down")));
}
