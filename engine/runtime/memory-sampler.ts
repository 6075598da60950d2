/**
 * Memory of one run, measured in the process that executes it: resident set size (RSS) at the start and
 * its peak while the run executes, the peak of each node's execution, and on CUDA the device memory this
 * process uses (nvidia-smi). RSS is process-wide: runs executing at the same time in one process share it.
 *
 * How the peak is found: RSS is read every `intervalMs` (a timer that never keeps the process alive) and at
 * node starts and ends (a reading younger than `reuseMs` is reused, so chains of tiny nodes stay cheap:
 * per-node figures have that resolution). Readings only see what the event loop lets them see, so each
 * reading also takes the OS's own high-water mark (getrusage's ru_maxrss, which never decreases): when it
 * rose while a run or node was open, that run or node reached it, and it is its peak. Framework-free: no
 * onnxruntime, no app code.
 */
import { execFile } from "node:child_process";
import type { RunMemory } from "../events";

/** What the sampler reads. The real one reads this process (processMemoryProbe); tests inject their own. */
export interface MemoryProbe {
  /** Resident set size of this process now, in bytes. */
  rss(): number;
  /** The highest RSS this process has had so far (the OS's high-water mark, never decreasing), in bytes. */
  maxRss?(): number;
  /** Device memory this process uses now, in bytes; undefined when it cannot be told. Read less often (it runs a tool). */
  device?(): Promise<number | undefined>;
}


/** The clock and timer the sampler uses; injected in tests. */
export interface SamplerClock {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const realClock: SamplerClock = {
  now: () => performance.now(),
  setInterval(fn, ms) {
    const timer = setInterval(fn, ms);
    timer.unref(); // sampling must never keep the process alive
    return timer;
  },
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

export interface SamplerOptions {
  /** RSS reading period (default 50 ms). */
  intervalMs?: number;
  /** Device memory reading period (default 1000 ms; each reading runs nvidia-smi). */
  deviceIntervalMs?: number;
  /** A reading at a node boundary younger than this is reused (default 1 ms). */
  reuseMs?: number;
  clock?: SamplerClock;
}

/** The open span of one node's execution; close() returns the highest RSS seen while it was open. */
export interface MemoryWindow {
  close(): number;
}

interface OpenWindow {
  peak: number;
  maxRssAtOpen: number | undefined;
}

export class MemorySampler {
  private readonly probe: MemoryProbe;
  private readonly clock: SamplerClock;
  private readonly intervalMs: number;
  private readonly deviceIntervalMs: number;
  private readonly reuseMs: number;
  private readonly windows = new Set<OpenWindow>();
  private timer: unknown;
  private deviceTimer: unknown;
  private deviceReading: Promise<void> | undefined;
  private state: "new" | "running" | "stopped" = "new";
  private startRss = 0;
  private maxRssAtStart: number | undefined;
  /** The high-water mark at the last reading (undefined when the probe has none). */
  private lastMax: number | undefined;
  private peak = 0;
  private peakDevice: number | undefined;
  private last = 0;
  private lastAt = -Infinity;
  private result: Promise<RunMemory> | undefined;

  constructor(probe: MemoryProbe, options: SamplerOptions = {}) {
    this.probe = probe;
    this.clock = options.clock ?? realClock;
    this.intervalMs = options.intervalMs ?? 50;
    this.deviceIntervalMs = options.deviceIntervalMs ?? 1000;
    this.reuseMs = options.reuseMs ?? 1;
  }

  /** Takes the start reading and begins sampling; returns the start RSS. */
  start(): number {
    if (this.state !== "new") throw new Error("a MemorySampler starts once");
    this.state = "running";
    this.startRss = this.peak = this.read(true);
    this.maxRssAtStart = this.lastMax;
    this.timer = this.clock.setInterval(() => this.read(true), this.intervalMs);
    if (this.probe.device) {
      this.readDevice();
      this.deviceTimer = this.clock.setInterval(() => this.readDevice(), this.deviceIntervalMs);
    }
    return this.startRss;
  }

  /** Opens a node's window (a reading at its start); close it when the node ends, however it ends. */
  open(): MemoryWindow {
    const w: OpenWindow = { peak: this.read(false), maxRssAtOpen: this.lastMax };
    this.windows.add(w);
    return {
      close: () => {
        if (this.windows.has(w)) {
          this.read(false);
          this.windows.delete(w);
          const high = this.lastMax;
          if (high !== undefined && w.maxRssAtOpen !== undefined && high > w.maxRssAtOpen) w.peak = Math.max(w.peak, high);
          this.peak = Math.max(this.peak, w.peak);
        }
        return w.peak;
      },
    };
  }

  /**
   * Stops every timer, takes the last readings and returns the run's figures. Idempotent. Resolves after an
   * nvidia-smi call in flight has ended, so nothing of the sampler outlives it.
   */
  stop(): Promise<RunMemory> {
    this.result ??= this.finish();
    return this.result;
  }

  private async finish(): Promise<RunMemory> {
    const wasRunning = this.state === "running";
    this.state = "stopped";
    this.clock.clearInterval(this.timer);
    if (this.deviceTimer !== undefined) this.clock.clearInterval(this.deviceTimer);
    if (!wasRunning) throw new Error("a MemorySampler that never started has nothing to report");
    for (const w of [...this.windows]) this.windows.delete(w); // nodes left open (a host error) no longer count
    this.peak = Math.max(this.peak, this.read(false)); // a reading from the last node end (< reuseMs ago) will do
    const high = this.lastMax;
    if (high !== undefined && this.maxRssAtStart !== undefined && high > this.maxRssAtStart) this.peak = Math.max(this.peak, high);
    if (this.probe.device) {
      await this.deviceReading;
      // Once more at the end: memory a session allocated in the last second is still held (ORT's arena keeps it).
      await this.takeDeviceReading();
    }
    return { startRssBytes: this.startRss, peakRssBytes: this.peak, ...(this.peakDevice === undefined ? {} : { peakDeviceBytes: this.peakDevice }) };
  }

  /** An RSS reading (with the high-water mark), counted towards the run's and every open window's peak. */
  private read(force: boolean): number {
    const at = this.clock.now();
    if (force || at - this.lastAt >= this.reuseMs) {
      this.last = this.probe.rss();
      this.lastMax = this.probe.maxRss?.();
      this.lastAt = at;
      if (this.last > this.peak) this.peak = this.last;
      for (const w of this.windows) if (this.last > w.peak) w.peak = this.last;
    }
    return this.last;
  }

  private readDevice(): void {
    if (this.deviceReading || this.state !== "running") return; // the previous call has not answered yet
    this.deviceReading = this.takeDeviceReading().finally(() => (this.deviceReading = undefined));
  }

  private async takeDeviceReading(): Promise<void> {
    let bytes: number | undefined;
    try {
      bytes = await this.probe.device!();
    } catch {
      bytes = undefined; // no answer is "unknown", never a guess
    }
    if (bytes !== undefined && Number.isFinite(bytes) && bytes >= 0) this.peakDevice = Math.max(this.peakDevice ?? 0, bytes);
  }
}

/** This process's RSS (process.memoryUsage) and its high-water mark (getrusage ru_maxrss, reported in KiB). */
export function processMemoryProbe(options: { device?: () => Promise<number | undefined> } = {}): MemoryProbe {
  return {
    rss: () => process.memoryUsage.rss(),
    maxRss: () => process.resourceUsage().maxRSS * 1024,
    ...(options.device ? { device: options.device } : {}),
  };
}

/** The probe the executor uses for a run on `executionProvider`: RSS always, device memory on CUDA. */
export function defaultMemoryProbe(executionProvider: string): MemoryProbe {
  return processMemoryProbe(executionProvider === "cuda" ? { device: () => nvidiaSmiProcessMemory(process.pid) } : {});
}

/**
 * Device memory (bytes) nvidia-smi lists for process `pid`, summed over devices; undefined when nvidia-smi
 * is missing, fails, or does not list the pid (e.g. another PID namespace in a container).
 */
export function nvidiaSmiProcessMemory(pid: number, timeoutMs = 2000): Promise<number | undefined> {
  return new Promise((resolve) => {
    execFile("nvidia-smi", ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"], { timeout: timeoutMs, encoding: "utf8" }, (err, stdout) => {
      resolve(err ? undefined : parseComputeApps(stdout, pid));
    });
  });
}

/** Parses `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits` (MiB) for one pid. */
export function parseComputeApps(text: string, pid: number): number | undefined {
  let mib: number | undefined;
  for (const line of text.split("\n")) {
    const [p, used] = line.split(",").map((s) => s.trim());
    if (Number(p) !== pid || !used || !/^\d+(\.\d+)?$/.test(used)) continue; // "[N/A]" and the like: unknown
    mib = (mib ?? 0) + Number(used);
  }
  return mib === undefined ? undefined : mib * 1024 * 1024;
}
