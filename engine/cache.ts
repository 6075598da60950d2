import type { Outputs, Storage } from "./node";

/**
 * Turns one kind of large output value into bytes for disk and back. The cache ships a codec for typed
 * arrays; the ONNX Runtime layer adds one for tensors (engine/runtime), so this file stays ORT-free.
 */
export interface SpillCodec {
  /** Unique name, stored with each spilled value. */
  name: string;
  /** Returns the value's payload size in bytes if this codec can spill it, otherwise undefined. */
  spillableBytes(value: unknown): number | undefined;
  encode(value: unknown): { bytes: Uint8Array; meta: unknown };
  decode(bytes: Uint8Array, meta: unknown): unknown;
}

type TypedArrayCtor = new (buffer: ArrayBuffer) => ArrayBufferView;
const TYPED_ARRAYS: Record<string, TypedArrayCtor> = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
};

/** Copies a view's bytes into a fresh, aligned ArrayBuffer. */
export function copyToArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const ab = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(ab).set(bytes);
  return ab;
}

export const typedArrayCodec: SpillCodec = {
  name: "typed-array",
  spillableBytes(value) {
    if (!ArrayBuffer.isView(value) || value instanceof DataView) return undefined;
    return TYPED_ARRAYS[value.constructor.name] ? value.byteLength : undefined;
  },
  encode(value) {
    const v = value as ArrayBufferView;
    return { bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength), meta: v.constructor.name };
  },
  decode(bytes, meta) {
    const Ctor = TYPED_ARRAYS[meta as string];
    if (!Ctor) throw new Error(`cannot restore a spilled ${String(meta)}`);
    return new Ctor(copyToArrayBuffer(bytes));
  },
};

/** Rough in-memory size of a value: typed arrays by byteLength, strings at 2 bytes/char, objects by a walk. */
export function estimateBytes(value: unknown): number {
  return walk(value, new Set());
}

function walk(value: unknown, seen: Set<object>): number {
  switch (typeof value) {
    case "string":
      return value.length * 2;
    case "number":
    case "bigint":
      return 8;
    case "boolean":
      return 4;
    case "undefined":
    case "function":
    case "symbol":
      return 0;
  }
  if (value === null) return 0;
  const obj = value as object;
  if (ArrayBuffer.isView(obj)) return obj.byteLength;
  if (obj instanceof ArrayBuffer) return obj.byteLength;
  if (seen.has(obj)) return 0;
  seen.add(obj);
  if (Array.isArray(obj)) {
    const n = obj.length;
    // Long arrays: extrapolate from a sample so the estimate stays O(1000).
    const sample = Math.min(n, 1000);
    let sum = 0;
    for (let i = 0; i < sample; i++) sum += walk(obj[i], seen);
    return 16 + n * 8 + (sample ? Math.round((sum * n) / sample) : 0);
  }
  if (obj instanceof Map) {
    let sum = 48;
    for (const [k, v] of obj) sum += 16 + walk(k, seen) + walk(v, seen);
    return sum;
  }
  if (obj instanceof Set) {
    let sum = 48;
    for (const v of obj) sum += 8 + walk(v, seen);
    return sum;
  }
  let sum = 32;
  for (const k of Object.keys(obj)) sum += 8 + k.length * 2 + walk((obj as Record<string, unknown>)[k], seen);
  return sum;
}

export interface OutputCacheOptions {
  /** Upper bound of the estimated bytes held in memory; least recently used entries go first. */
  maxBytes: number;
  /** Where large values are spilled; without it everything stays in memory. */
  storage?: Storage;
  /** A single output value at least this large (bytes) is spilled to storage. Default 1 MiB. */
  spillThresholdBytes?: number;
  /** Codecs tried in order for spilling; default [typedArrayCodec]. */
  codecs?: SpillCodec[];
}

export interface CacheStats {
  entries: number;
  /** Estimated bytes held in memory. */
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  evictions: number;
  /** Output values currently spilled to storage, and their payload bytes. */
  spilledValues: number;
  spilledBytes: number;
}

/** A value that lives in storage; the entry keeps only this reference. */
class Spilled {
  constructor(
    readonly id: string,
    readonly codec: SpillCodec,
    readonly meta: unknown,
    readonly byteLength: number,
  ) {}
}

interface Entry {
  outputs: Outputs;
  /** Stored files written while computing these outputs. */
  files: readonly string[];
  bytes: number;
  spilled: number;
  spilledBytes: number;
}

const ENTRY_OVERHEAD = 96;

/**
 * Node outputs by cache key, bounded by estimated bytes with LRU eviction. Entries are shared by
 * reference: outputs must be treated as immutable by every consumer. Values past the spill threshold
 * are written to storage and read back on a hit (spilled blobs are content-addressed and not deleted).
 */
export class OutputCache {
  readonly maxBytes: number;
  private readonly entries = new Map<string, Entry>();
  private readonly storage?: Storage;
  private readonly spillThreshold: number;
  private readonly codecs: SpillCodec[];
  private bytes = 0;
  private spilledValues = 0;
  private spilledBytes = 0;
  private hits = 0;
  private misses = 0;
  private evictions = 0;

  constructor(options: OutputCacheOptions) {
    if (!(options.maxBytes >= 0)) throw new Error("OutputCache: maxBytes must be a non-negative number");
    this.maxBytes = options.maxBytes;
    this.storage = options.storage;
    this.spillThreshold = options.spillThresholdBytes ?? 1 << 20;
    this.codecs = options.codecs ?? [typedArrayCodec];
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Outputs stored under `key` (reloading spilled values), or undefined. A hit marks the entry recently used. */
  async get(key: string): Promise<Outputs | undefined> {
    const entry = this.entries.get(key);
    if (!entry) {
      this.misses++;
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (entry.spilled === 0) {
      this.hits++;
      return entry.outputs;
    }
    try {
      const out: Outputs = {};
      for (const [socket, value] of Object.entries(entry.outputs)) {
        out[socket] = value instanceof Spilled ? value.codec.decode(await this.storage!.read(value.id), value.meta) : value;
      }
      this.hits++;
      return out;
    } catch {
      // A spilled blob went missing or is unreadable: forget the entry, report a miss, let the node run again.
      this.delete(key);
      this.misses++;
      return undefined;
    }
  }

  /** The stored files written while the outputs under `key` were computed (none for an unknown key). */
  filesOf(key: string): readonly string[] {
    return this.entries.get(key)?.files ?? [];
  }

  /**
   * Stores outputs under `key` (with the stored files written while computing them), spilling large
   * values, then evicts LRU entries until within maxBytes.
   */
  async set(key: string, outputs: Outputs, files: readonly string[] = []): Promise<void> {
    let bytes = ENTRY_OVERHEAD + key.length * 2;
    let spilled = 0;
    let spilledBytes = 0;
    let stored: Outputs = outputs;
    for (const socket of Object.keys(outputs)) {
      const value = outputs[socket];
      const spill = this.storage ? this.spillFor(value) : undefined;
      if (spill) {
        const { bytes: data, meta } = spill.codec.encode(value);
        const id = await this.storage!.write(data, "bin");
        if (stored === outputs) stored = { ...outputs };
        stored[socket] = new Spilled(id, spill.codec, meta, spill.size);
        bytes += 64 + socket.length * 2;
        spilled++;
        spilledBytes += spill.size;
      } else {
        bytes += socket.length * 2 + estimateBytes(value);
      }
    }
    this.delete(key);
    if (bytes > this.maxBytes) return; // would not fit even alone
    this.entries.set(key, { outputs: stored, files, bytes, spilled, spilledBytes });
    this.bytes += bytes;
    this.spilledValues += spilled;
    this.spilledBytes += spilledBytes;
    this.evictToFit();
  }

  delete(key: string): boolean {
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
    this.spilledValues -= entry.spilled;
    this.spilledBytes -= entry.spilledBytes;
    return true;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
    this.spilledValues = 0;
    this.spilledBytes = 0;
  }

  stats(): CacheStats {
    return {
      entries: this.entries.size,
      bytes: this.bytes,
      maxBytes: this.maxBytes,
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      spilledValues: this.spilledValues,
      spilledBytes: this.spilledBytes,
    };
  }

  private spillFor(value: unknown): { codec: SpillCodec; size: number } | undefined {
    for (const codec of this.codecs) {
      const size = codec.spillableBytes(value);
      if (size !== undefined) return size >= this.spillThreshold ? { codec, size } : undefined;
    }
    return undefined;
  }

  private evictToFit(): void {
    while (this.bytes > this.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
      this.evictions++;
    }
  }
}
