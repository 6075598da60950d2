/** A named fp32 tensor in memory (row-major), e.g. a Linear weight [out, in] as PyTorch stores it. */
export interface Tensor32 {
  shape: number[];
  data: Float32Array;
}

/** Read access to a model's parameters by name (from safetensors files, or generated in memory). */
export interface WeightSource {
  names(): string[];
  has(name: string): boolean;
  /** Returns fp32 (fp16/bf16 are converted); throws a clear error naming a missing tensor. */
  get(name: string): Tensor32;
}

export class MemoryWeights implements WeightSource {
  constructor(private readonly tensors: Map<string, Tensor32>) {}
  names(): string[] {
    return [...this.tensors.keys()];
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  get(name: string): Tensor32 {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`weight "${name}" is missing`);
    return t;
  }
}
