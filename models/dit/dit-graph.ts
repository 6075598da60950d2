/**
 * The task-aware DiT as one ONNX graph (opset 17), built from a config and a WeightSource.
 *
 * Inputs                                  Output
 *   x      [B, C, S, S]  noisy latent x_t      v [B, C, S, S]  velocity dx/dt (= ε − x0)
 *   source [B, C, S, S]  source latent (zeros for text-to-image)
 *   t      [B]           flow time in [0, 1]
 *   img    [B, M, L]     [IMG*] LLM hidden states (zeros = unconditional)
 *   task   [B, K, L]     [TASK*] LLM hidden states (zeros = unconditional)
 *
 * Forward (conventions in ./dit.ts):
 *   h    = patchify(conv_p×p(x ‖ source)) + pos2d                    [B, N, D]
 *   c    = mlp_t(sincos(t·1000)) + task_proj(mean_K(task))            [B, D]
 *   y    = img_proj(img)                                              [B, M, D]
 *   block: (s1, a1, g1, s2, a2, g2) = ada(silu(c))
 *          h += g1 · selfattn(LN(h)·(1 + a1) + s1)
 *          h += crossattn(LN(h), y)
 *          h += g2 · mlp(LN(h)·(1 + a2) + s2)                      mlp = fc2(gelu_tanh(fc1))
 *   final: (s, a) = ada_f(silu(c)); v = unpatchify(linear(LN(h)·(1 + a) + s))
 * LN has no affine parameters (as DiT); projectors are Linear → SiLU → Linear.
 */
import { GraphBuilder } from "../onnx/builder";
import { Ops } from "../onnx/ops";
import { checkDitConfig, ditDims, ditParamNames as P, ditParamTable, posEmbed2d, timestepFreqs, type DitConfig } from "./dit";
import type { WeightSource } from "../io/weights";

/** Bumped whenever the graph this file builds changes (cache keys include it). */
export const DIT_GRAPH_VERSION = 1;

/** [O, I] row-major → [I, O] row-major. */
export function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/** Layers shared by the DiT and VAE graphs on top of Ops. */
export class Layers extends Ops {
  constructor(
    g: GraphBuilder,
    readonly w: WeightSource,
  ) {
    super(g);
  }

  /** A weight as an initializer, its shape checked against `shape`. */
  weight(name: string, shape: number[]): string {
    const t = this.w.get(name);
    if (t.shape.join(",") !== shape.join(",")) throw new Error(`weight "${name}" has shape [${t.shape}], expected [${shape}]`);
    return this.g.initializer(name, t.data, t.shape);
  }

  /** x: [..., I], weight [O, I] (PyTorch), bias [O] → [..., O]  (MatMul with the pre-transposed weight, then Add). */
  dense(x: string, wName: string, bName: string, out: number, inp: number): string {
    const t = this.w.get(wName);
    if (t.shape.join(",") !== `${out},${inp}`) throw new Error(`weight "${wName}" has shape [${t.shape}], expected [${out},${inp}]`);
    const wt = this.g.initializer(`${wName}.T`, transpose2d(t.data, out, inp), [inp, out]);
    return this.add(this.matmul(x, wt), this.weight(bName, [out]));
  }

  /** x: [..., D] → LayerNorm over the last axis without affine parameters. */
  layerNorm(x: string, D: number, eps: number): string {
    const one = this.g.const(new Float32Array(D).fill(1), [D], "float", "ln_one");
    const zero = this.g.const(new Float32Array(D), [D], "float", "ln_zero");
    return this.g.op("LayerNormalization", [x, one, zero], { axis: -1, epsilon: { f: eps } });
  }

  /** 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
  geluTanh(x: string): string {
    const x3 = this.mul(this.mul(x, x), x);
    const inner = this.mul(this.add(x, this.mul(x3, this.g.scalar(0.044715))), this.g.scalar(Math.sqrt(2 / Math.PI)));
    return this.mul(this.mul(x, this.g.scalar(0.5)), this.add(this.g.op("Tanh", [inner]), this.g.scalar(1)));
  }

  /** x: [B, Ci, H, W], w: [Co, Ci, k, k] → [B, Co, H', W'] (pad (k−1)/2 unless given). */
  conv(x: string, wName: string, bName: string, co: number, ci: number, k: number, stride = 1, pad = (k - 1) >> 1): string {
    return this.g.op("Conv", [x, this.weight(wName, [co, ci, k, k]), this.weight(bName, [co])], {
      kernel_shape: [k, k],
      strides: [stride, stride],
      pads: [pad, pad, pad, pad],
    });
  }

  /** q: [B, Nq, D], k/v: [B, Nk, D] → [B, Nq, D]: softmax(q kᵀ/√Hd) v per head. */
  attention(q: string, k: string, v: string, heads: number, D: number): string {
    const Hd = D / heads;
    const split = this.g.ints([0, 0, heads, Hd]);
    const qh = this.transpose(this.reshape(q, split), [0, 2, 1, 3]); // [B, H, Nq, Hd]
    const kt = this.transpose(this.reshape(k, split), [0, 2, 3, 1]); // [B, H, Hd, Nk]
    const vh = this.transpose(this.reshape(v, split), [0, 2, 1, 3]); // [B, H, Nk, Hd]
    const att = this.softmax(this.mul(this.matmul(qh, kt), this.g.scalar(1 / Math.sqrt(Hd))), -1);
    const o = this.transpose(this.matmul(att, vh), [0, 2, 1, 3]); // [B, Nq, H, Hd]
    return this.reshape(o, this.g.ints([0, 0, D]));
  }

  /** LN(x)·(1 + scale) + shift; scale/shift: [B, 1, D]. */
  modulate(x: string, shift: string, scale: string, D: number, eps: number): string {
    return this.add(this.mul(this.layerNorm(x, D, eps), this.add(scale, this.g.scalar(1))), shift);
  }
}

/** Serialized ONNX model of the DiT (every parameter of ditParamTable must be in `w`). */
export function buildDitGraph(config: DitConfig, w: WeightSource): Uint8Array {
  const c = checkDitConfig(config);
  const { C, S, p, G, N, D, M, K, L, F } = ditDims(c);
  const I = D * c.mlpRatio;
  for (const spec of ditParamTable(c)) if (!w.has(spec.name)) throw new Error(`DiT weight "${spec.name}" is missing`);
  const g = new GraphBuilder("task-aware-dit");
  const o = new Ops(g);
  const l = new Layers(g, w);
  const eps = c.layerNormEps;

  const x = g.input("x", "float", ["B", C, S, S]);
  const source = g.input("source", "float", ["B", C, S, S]);
  const t = g.input("t", "float", ["B"]);
  const img = g.input("img", "float", ["B", M, L]);
  const task = g.input("task", "float", ["B", K, L]);

  // Patch embed: [B, 2C, S, S] → conv p×p stride p → [B, D, G, G] → [B, N, D] (+ pos)
  g.scope = "embed/";
  const xin = o.concat([x, source], 1);
  const patches = l.conv(xin, P.patchW, P.patchB, D, 2 * C, p, p, 0);
  let h = o.transpose(o.reshape(patches, g.ints([0, D, N])), [0, 2, 1]);
  h = o.add(h, g.const(posEmbed2d(D, G), [N, D], "float", "pos_embed"));

  // Conditioning c = mlp_t(sincos(t·scale)) + task_proj(mean(task)): [B, D]
  g.scope = "cond/";
  const args = o.mul(o.unsqueeze(o.mul(t, g.scalar(c.timeScale)), [1]), g.const(timestepFreqs(F), [1, F / 2], "float", "freqs")); // [B, F/2]
  const temb = o.concat([o.cos(args), o.sin(args)], 1); // [B, F]
  const tvec = l.dense(o.silu(l.dense(temb, P.t1W, P.t1B, D, F)), P.t2W, P.t2B, D, D);
  const taskMean = o.reduceMean(task, [1], 0); // [B, L]
  const taskVec = l.dense(o.silu(l.dense(taskMean, P.task1W, P.task1B, D, L)), P.task2W, P.task2B, D, D);
  const cond = o.add(tvec, taskVec);
  const condAct = o.unsqueeze(o.silu(cond), [1]); // [B, 1, D]
  const y = l.dense(o.silu(l.dense(img, P.img1W, P.img1B, D, L)), P.img2W, P.img2B, D, D); // [B, M, D]

  for (let i = 0; i < c.depth; i++) {
    g.scope = `block${i}/`;
    const b = (part: Parameters<typeof P.block>[1], out: number, inp: number, v: string) => l.dense(v, P.block(i, part, "weight"), P.block(i, part, "bias"), out, inp);
    const [s1, a1, g1, s2, a2, g2] = o.split(b("ada", 6 * D, D, condAct), [D, D, D, D, D, D], 2) as [string, string, string, string, string, string];
    // self-attention
    const [q, k, v] = o.split(b("qkv", 3 * D, D, l.modulate(h, s1, a1, D, eps)), [D, D, D], 2) as [string, string, string];
    h = o.add(h, o.mul(g1, b("attnOut", D, D, l.attention(q, k, v, c.heads, D))));
    // cross-attention to the M conditioning vectors
    const cq = b("crossQ", D, D, l.layerNorm(h, D, eps));
    const [ck, cv] = o.split(b("crossKv", 2 * D, D, y), [D, D], 2) as [string, string];
    h = o.add(h, b("crossOut", D, D, l.attention(cq, ck, cv, c.heads, D)));
    // MLP
    h = o.add(h, o.mul(g2, b("fc2", D, I, l.geluTanh(b("fc1", I, D, l.modulate(h, s2, a2, D, eps))))));
  }

  g.scope = "final/";
  const [fs, fa] = o.split(l.dense(condAct, P.finalAdaW, P.finalAdaB, 2 * D, D), [D, D], 2) as [string, string];
  const out = l.dense(l.modulate(h, fs, fa, D, eps), P.finalW, P.finalB, p * p * C, D); // [B, N, p·p·C]
  // unpatchify: [B, G, G, p, p, C] → [B, C, G, p, G, p] → [B, C, S, S]
  const v6 = o.transpose(o.reshape(out, g.ints([0, G, G, p, p, C])), [0, 5, 1, 3, 2, 4]);
  g.output(o.reshape(v6, g.ints([0, C, S, S])), "v", "float", ["B", C, S, S]);
  return g.toBytes();
}
