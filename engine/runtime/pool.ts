import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { sha256Hex } from "../hash";
import { defaultIntraOpThreads, parseEpPreference, SESSION_CONFIG_ENTRIES } from "./providers";
import { chooseProviders, type ProviderChoice } from "./select";
import { adapterLabel, webGpuProbed } from "./webgpu";
import type { EpPreference, ExecutionProvider, Runtime, SessionHandle, SessionPoolStats, SessionRequest } from "./types";

export interface SessionPoolOptions {
  /** Default provider preference; defaults to STUDIO_EP (auto). */
  executionProvider?: EpPreference | string;
  /** Default intra-op threads; defaults to STUDIO_THREADS or the available parallelism. */
  intraOpNumThreads?: number;
  /** Sessions are released, least recently used first, when their estimated bytes exceed this. Default 2 GiB. */
  memoryBudgetBytes?: number;
  /** Estimated memory of a session from its model size in bytes. Default: 1.5 × size. */
  estimateSessionBytes?: (modelBytes: number) => number;
  /** When set, model paths must resolve inside this directory. */
  modelsDir?: string;
  /** Session config entries (SessionOptions.extra); default SESSION_CONFIG_ENTRIES ({}: ONNX Runtime's defaults, for benchmarks). */
  configEntries?: Record<string, unknown>;
}

interface PoolEntry {
  key: string;
  promise: Promise<SessionHandle>;
  handle?: SessionHandle;
  bytes: number;
  pins: number;
}

interface ModelSource {
  sha: string;
  size: number;
  /** Absolute path, or the bytes themselves. */
  load: () => Uint8Array;
  name: string;
}

/**
 * ONNX Runtime sessions, loaded once per (model content, provider preference, options) and reused
 * across nodes and runs. Under `auto` CUDA and WebGPU are probed once (select.ts); a session that cannot be
 * created on the chosen provider falls back to CPU and the handle records which provider ran. A memory
 * budget releases least recently used, unpinned sessions.
 */
export class SessionPool implements Runtime {
  readonly preference: EpPreference;
  readonly intraOpNumThreads: number;
  readonly budgetBytes: number;
  private readonly estimate: (n: number) => number;
  private readonly modelsDir?: string;
  private readonly configEntries: Record<string, unknown>;
  private readonly entries = new Map<string, PoolEntry>();
  private readonly fileShas = new Map<string, { size: number; mtimeMs: number; sha: string }>();
  private readonly byteShas = new WeakMap<Uint8Array, string>();
  private readonly choices = new Map<EpPreference, Promise<ProviderChoice>>();
  private skipped: ProviderChoice["skipped"] = {};
  private bytes = 0;
  private loads = 0;
  private hits = 0;
  private evictions = 0;
  private fallbacks = 0;
  private readonly byProvider: Record<ExecutionProvider, number> = { cuda: 0, webgpu: 0, cpu: 0 };

  constructor(options: SessionPoolOptions = {}) {
    this.preference = parseEpPreference(options.executionProvider);
    this.intraOpNumThreads = options.intraOpNumThreads ?? defaultIntraOpThreads();
    this.budgetBytes = options.memoryBudgetBytes ?? 2 * 1024 ** 3;
    this.estimate = options.estimateSessionBytes ?? ((n) => Math.ceil(n * 1.5));
    this.modelsDir = options.modelsDir ? path.resolve(/*turbopackIgnore: true*/ options.modelsDir) : undefined;
    this.configEntries = options.configEntries ?? SESSION_CONFIG_ENTRIES;
  }

  async resolveExecutionProvider(): Promise<ExecutionProvider> {
    return (await this.choice(this.preference)).order[0]!;
  }

  async getSession(model: string | Uint8Array, options: SessionRequest = {}): Promise<SessionHandle> {
    const entry = this.entry(model, options);
    const handle = await entry.promise;
    return handle;
  }

  async withSession<T>(model: string | Uint8Array, options: SessionRequest | undefined, fn: (handle: SessionHandle) => Promise<T>): Promise<T> {
    const entry = this.entry(model, options ?? {});
    entry.pins++;
    try {
      return await fn(await entry.promise);
    } finally {
      entry.pins--;
      this.evictToFit();
    }
  }

  stats(): SessionPoolStats {
    const probe = webGpuProbed();
    return {
      sessions: this.entries.size,
      bytes: this.bytes,
      budgetBytes: this.budgetBytes,
      loads: this.loads,
      hits: this.hits,
      evictions: this.evictions,
      fallbacks: this.fallbacks,
      byProvider: { ...this.byProvider },
      ...(this.skipped.cuda ? { cudaUnavailable: this.skipped.cuda } : {}),
      ...(this.skipped.webgpu ? { webgpuUnavailable: this.skipped.webgpu } : {}),
      ...(this.byProvider.webgpu > 0 && probe?.ok ? { adapter: adapterLabel(probe.adapter) } : {}),
    };
  }

  /** Releases every session (e.g. on shutdown or in tests). */
  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    this.bytes = 0;
    await Promise.all(all.map(async (e) => (await e.promise.catch(() => undefined))?.session.release().catch(() => undefined)));
  }

  private entry(model: string | Uint8Array, options: SessionRequest): PoolEntry {
    const pref = options.executionProvider ? parseEpPreference(options.executionProvider) : this.preference;
    const intra = options.intraOpNumThreads ?? this.intraOpNumThreads;
    const source = this.source(model);
    const key = `${source.sha}|${pref}|${intra}|${options.interOpNumThreads ?? 0}|${options.graphOptimizationLevel ?? "all"}`;
    const found = this.entries.get(key);
    if (found) {
      this.entries.delete(key); // move to the most recently used end
      this.entries.set(key, found);
      this.hits++;
      return found;
    }
    const entry: PoolEntry = { key, bytes: this.estimate(source.size), pins: 0, promise: undefined as never };
    entry.promise = this.load(source, key, pref, intra, options).then(
      (handle) => {
        entry.handle = handle;
        if (this.entries.get(key) !== entry) {
          void handle.session.release().catch(() => undefined); // evicted/closed while loading
          return handle;
        }
        this.evictToFit(entry);
        return handle;
      },
      (err) => {
        if (this.entries.get(key) === entry) {
          this.entries.delete(key);
          this.bytes -= entry.bytes;
        }
        throw err;
      },
    );
    this.entries.set(key, entry);
    this.bytes += entry.bytes;
    return entry;
  }

  private source(model: string | Uint8Array): ModelSource {
    if (typeof model !== "string") {
      let sha = this.byteShas.get(model);
      if (!sha) {
        sha = sha256Hex(model);
        this.byteShas.set(model, sha);
      }
      return { sha, size: model.byteLength, load: () => model, name: `<${model.byteLength} bytes>` };
    }
    const file = path.resolve(model);
    if (this.modelsDir && !(file === this.modelsDir || file.startsWith(this.modelsDir + path.sep))) {
      throw new Error(`model file "${model}" is outside the models directory ${this.modelsDir}`);
    }
    let st: { size: number; mtimeMs: number; isFile(): boolean };
    try {
      st = statSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(code === "ENOENT" ? `model file not found: ${file}` : `cannot read model file ${file}: ${(err as Error).message}`);
    }
    if (!st.isFile()) throw new Error(`model path is not a file: ${file}`);
    const memo = this.fileShas.get(file);
    let bytes: Uint8Array | undefined;
    let sha: string;
    if (memo && memo.size === st.size && memo.mtimeMs === st.mtimeMs) {
      sha = memo.sha;
    } else {
      bytes = readFileSync(file);
      sha = sha256Hex(bytes);
      this.fileShas.set(file, { size: st.size, mtimeMs: st.mtimeMs, sha });
    }
    return { sha, size: st.size, load: () => bytes ?? readFileSync(file), name: file };
  }

  private choice(pref: EpPreference): Promise<ProviderChoice> {
    let c = this.choices.get(pref);
    if (!c) {
      c = chooseProviders(pref).then((r) => {
        this.skipped = { ...this.skipped, ...r.skipped };
        return r;
      });
      this.choices.set(pref, c);
      c.catch(() => this.choices.delete(pref));
    }
    return c;
  }

  private async load(source: ModelSource, key: string, pref: EpPreference, intra: number, options: SessionRequest): Promise<SessionHandle> {
    const { order } = await this.choice(pref);
    const bytes = source.load();
    const sessionOptions = (ep: ExecutionProvider): ort.InferenceSession.SessionOptions => ({
      executionProviders: [ep],
      intraOpNumThreads: intra,
      ...(options.interOpNumThreads ? { interOpNumThreads: options.interOpNumThreads } : {}),
      graphOptimizationLevel: options.graphOptimizationLevel ?? "all",
      extra: this.configEntries,
    });
    let lastError: unknown;
    for (const [i, ep] of order.entries()) {
      try {
        const session = await ort.InferenceSession.create(bytes, sessionOptions(ep));
        if (i > 0) this.fallbacks++;
        this.loads++;
        this.byProvider[ep]++;
        return { session, executionProvider: ep, key };
      } catch (err) {
        lastError = err;
      }
    }
    const ep = order.length === 1 ? ` on ${order[0]}` : "";
    throw new Error(`cannot load model ${source.name}${ep}: ${(lastError as Error).message}`);
  }

  private evictToFit(keep?: PoolEntry): void {
    if (this.bytes <= this.budgetBytes) return;
    const all = [...this.entries.values()];
    const newest = all[all.length - 1]; // never evict the session used last, even if it alone exceeds the budget
    for (const entry of all) {
      if (this.bytes <= this.budgetBytes) break;
      if (entry === keep || entry === newest || entry.pins > 0 || !entry.handle) continue;
      this.entries.delete(entry.key);
      this.bytes -= entry.bytes;
      this.evictions++;
      void entry.handle.session.release().catch(() => undefined);
    }
  }
}

