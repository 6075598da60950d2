import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import type { RunEvent } from "@/engine/events";
import { Executor } from "@/engine/executor";
import { defineNode, NodeCatalogue } from "@/engine/node";
import { MemorySampler, nvidiaSmiProcessMemory, parseComputeApps, processMemoryProbe, type MemoryProbe, type SamplerClock } from "@/engine/runtime/memory-sampler";
import type { Runtime } from "@/engine/runtime/types";
import { MemoryStorage, wf } from "./helpers";

/** A manual clock: timers fire only when the test advances time. */
class FakeClock implements SamplerClock {
  t = 0;
  private nextId = 0;
  readonly timers = new Map<number, { fn: () => void; ms: number; due: number }>();
  now(): number {
    return this.t;
  }
  setInterval(fn: () => void, ms: number): unknown {
    const id = ++this.nextId;
    this.timers.set(id, { fn, ms, due: this.t + ms });
    return id;
  }
  clearInterval(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: { fn: () => void; ms: number; due: number } | undefined;
      for (const timer of this.timers.values()) if (timer.due <= end && (!next || timer.due < next.due)) next = timer;
      if (!next) break;
      this.t = next.due;
      next.due += next.ms;
      next.fn();
    }
    this.t = end;
  }
}

/** A process whose RSS and high-water mark the test sets; counts the readings. */
function fakeProbe(device?: MemoryProbe["device"]) {
  const state = { rss: 100, high: 100, reads: 0 };
  const probe: MemoryProbe = {
    rss: () => {
      state.reads++;
      state.high = Math.max(state.high, state.rss);
      return state.rss;
    },
    maxRss: () => Math.max(state.high, state.rss),
    ...(device ? { device } : {}),
  };
  /** Memory goes up to `to` and back to `after` between two readings (seen only by the high-water mark). */
  const burst = (to: number, after: number) => {
    state.high = Math.max(state.high, to);
    state.rss = after;
  };
  return { state, probe, burst };
}

describe("MemorySampler", () => {
  it("records the start and the peak of periodic readings, and stops every timer", async () => {
    const clock = new FakeClock();
    const { state, probe } = fakeProbe();
    const sampler = new MemorySampler(probe, { intervalMs: 50, clock });
    expect(sampler.start()).toBe(100);
    expect(clock.timers.size).toBe(1);
    for (const rss of [120, 180, 140]) {
      state.rss = rss;
      clock.advance(50);
    }
    expect(state.reads).toBe(4);
    const memory = await sampler.stop();
    expect(memory).toEqual({ startRssBytes: 100, peakRssBytes: 180 });
    expect(clock.timers.size).toBe(0);
    const reads = state.reads;
    clock.advance(500);
    expect(state.reads).toBe(reads); // nothing reads after stop
    expect(await sampler.stop()).toBe(memory); // idempotent
  });

  it("a reading between samples is missed, but the OS high-water mark rising during the run is its peak", async () => {
    const clock = new FakeClock();
    const { probe, burst } = fakeProbe();
    const sampler = new MemorySampler(probe, { intervalMs: 50, clock });
    sampler.start();
    clock.advance(10);
    burst(900, 150); // a synchronous burst the 50 ms timer cannot see
    clock.advance(100);
    expect(await sampler.stop()).toEqual({ startRssBytes: 100, peakRssBytes: 900 });
  });

  it("a high-water mark from before the run does not count as the run's peak", async () => {
    const clock = new FakeClock();
    const { state, probe, burst } = fakeProbe();
    burst(5000, 100); // earlier in the process's life
    const sampler = new MemorySampler(probe, { clock });
    sampler.start();
    state.rss = 130;
    clock.advance(60);
    expect((await sampler.stop()).peakRssBytes).toBe(130);
  });

  it("windows (nodes) get the peak of readings while they are open, including overlapping ones", async () => {
    const clock = new FakeClock();
    const { state, probe, burst } = fakeProbe();
    const sampler = new MemorySampler(probe, { intervalMs: 50, reuseMs: 1, clock });
    sampler.start();
    clock.advance(5);
    const a = sampler.open(); // reads 100
    state.rss = 300;
    clock.advance(50); // timer reading: 300
    const b = sampler.open(); // within 1 ms of that reading: reused
    state.rss = 200;
    clock.advance(20);
    expect(a.close()).toBe(300); // its close reads 200; the peak stays 300
    state.rss = 250;
    clock.advance(50); // timer reading: 250, only b is open
    expect(b.close()).toBe(300); // b opened on the 300 reading
    clock.advance(10);
    const c = sampler.open();
    clock.advance(5);
    burst(700, 260); // invisible to readings, seen by the high-water mark at close
    expect(c.close()).toBe(700);
    expect(c.close()).toBe(700); // closing twice is harmless
    clock.advance(10);
    const d = sampler.open();
    clock.advance(5);
    expect(d.close()).toBe(260); // the earlier high-water mark is not d's
    expect(await sampler.stop()).toEqual({ startRssBytes: 100, peakRssBytes: 700 });
  });

  it("reuses a reading younger than reuseMs at node boundaries, so tiny nodes cost no extra reads", () => {
    const clock = new FakeClock();
    const { state, probe } = fakeProbe();
    const sampler = new MemorySampler(probe, { reuseMs: 1, clock });
    sampler.start();
    const before = state.reads;
    for (let i = 0; i < 10; i++) sampler.open().close(); // all at the same instant
    expect(state.reads).toBe(before);
    clock.advance(2);
    sampler.open().close();
    expect(state.reads).toBe(before + 1);
    void sampler.stop();
  });

  it("device memory: the peak of readings; unknown readings are left out, never guessed", async () => {
    const clock = new FakeClock();
    const answers: (number | undefined | Error)[] = [2e9, undefined, 3e9, new Error("nvidia-smi hung"), 2.5e9];
    const device = vi.fn(async () => {
      const a = answers.shift();
      if (a instanceof Error) throw a;
      return a;
    });
    const { probe } = fakeProbe(device);
    const sampler = new MemorySampler(probe, { deviceIntervalMs: 1000, clock });
    sampler.start(); // first reading at once
    const settle = () => new Promise((r) => setImmediate(r));
    for (let i = 0; i < 3; i++) {
      await settle(); // the previous reading has answered
      clock.advance(1000);
    }
    await settle();
    const memory = await sampler.stop(); // and once more at the end
    expect(device).toHaveBeenCalledTimes(5);
    expect(memory.peakDeviceBytes).toBe(3e9);
    expect(clock.timers.size).toBe(0);

    const none = new MemorySampler(fakeProbe(async () => undefined).probe, { clock: new FakeClock() });
    none.start();
    expect(await none.stop()).toEqual({ startRssBytes: 100, peakRssBytes: 100 }); // no peakDeviceBytes key at all
  });

  it("stop waits for a device reading in flight, and does not start new ones", async () => {
    const clock = new FakeClock();
    let release!: (v: number) => void;
    const calls: string[] = [];
    const device = () => {
      calls.push("call");
      return calls.length === 1 ? new Promise<number>((r) => (release = r)) : Promise.resolve(1e9);
    };
    const sampler = new MemorySampler(fakeProbe(device).probe, { deviceIntervalMs: 100, clock });
    sampler.start();
    clock.advance(500); // the first call has not answered: no second one
    expect(calls).toHaveLength(1);
    let stopped = false;
    const result = sampler.stop().then((m) => ((stopped = true), m));
    await new Promise((r) => setImmediate(r));
    expect(stopped).toBe(false);
    release(4e9);
    expect((await result).peakDeviceBytes).toBe(4e9);
    expect(calls).toHaveLength(2); // the final reading
  });

  it("the real clock's timer is unref'd and cleared on stop", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    try {
      const sampler = new MemorySampler(processMemoryProbe());
      sampler.start();
      expect(vi.getTimerCount()).toBe(1);
      await sampler.stop();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("a sampler never stopped does not keep the process alive", () => {
    const root = path.resolve(__dirname, "../../..");
    const script = `import { MemorySampler, processMemoryProbe } from "./engine/runtime/memory-sampler"; new MemorySampler(processMemoryProbe(), { intervalMs: 10 }).start(); console.log("started");`;
    const t = Date.now();
    const r = spawnSync(path.join(root, "node_modules/.bin/tsx"), ["-e", script], { cwd: root, encoding: "utf8", timeout: 20_000 });
    expect(r.stdout.trim()).toBe("started");
    expect(r.status).toBe(0);
    expect(r.signal).toBeNull(); // not killed by the timeout
    console.log(`process with a running sampler exited by itself in ${Date.now() - t} ms`);
  });

  it("the real probe reads this process: RSS within the high-water mark", () => {
    const probe = processMemoryProbe();
    const rss = probe.rss();
    expect(rss).toBeGreaterThan(10 * 1024 * 1024);
    expect(probe.maxRss!()).toBeGreaterThanOrEqual(rss);
    expect(Math.abs(rss - process.memoryUsage().rss)).toBeLessThan(64 * 1024 * 1024);
  });
});

describe("parseComputeApps (nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits)", () => {
  it("sums our pid's rows over devices, in bytes", () => {
    expect(parseComputeApps("4242, 1536\n777, 9000\n4242, 512\n", 4242)).toBe(2048 * 1024 * 1024);
  });
  it("is undefined when our pid is absent or its figure is not a number", () => {
    expect(parseComputeApps("777, 9000\n", 4242)).toBeUndefined();
    expect(parseComputeApps("", 4242)).toBeUndefined();
    expect(parseComputeApps("4242, [N/A]\n", 4242)).toBeUndefined();
  });
});

/** A stand-in `nvidia-smi` on PATH (no GPU here): prints `body` as the shell script's output. */
function withFakeNvidiaSmi(body: string): () => void {
  const dir = mkdtempSync(path.join(os.tmpdir(), "fake-nvidia-smi-"));
  const file = path.join(dir, "nvidia-smi");
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  const saved = process.env.PATH;
  process.env.PATH = `${dir}${path.delimiter}${saved}`;
  return () => {
    process.env.PATH = saved;
  };
}

describe("nvidiaSmiProcessMemory (a stand-in nvidia-smi on PATH)", () => {
  it("asks for compute apps and reads our pid's MiB as bytes", async () => {
    // $PPID of the script is the process that ran it: us. The arguments must be the documented query.
    const restore = withFakeNvidiaSmi(`[ "$1" = "--query-compute-apps=pid,used_memory" ] && [ "$2" = "--format=csv,noheader,nounits" ] || exit 9\necho "1, 77"\necho "$PPID, 1234"`);
    try {
      expect(await nvidiaSmiProcessMemory(process.pid)).toBe(1234 * 1024 * 1024);
      expect(await nvidiaSmiProcessMemory(process.pid + 1_000_000)).toBeUndefined(); // not listed
    } finally {
      restore();
    }
  });
  it("is undefined when nvidia-smi fails, hangs past the timeout, or is missing", async () => {
    let restore = withFakeNvidiaSmi("echo 'NVIDIA-SMI has failed' >&2; exit 9");
    try {
      expect(await nvidiaSmiProcessMemory(process.pid)).toBeUndefined();
    } finally {
      restore();
    }
    restore = withFakeNvidiaSmi("sleep 5");
    const t = Date.now();
    try {
      expect(await nvidiaSmiProcessMemory(process.pid, 300)).toBeUndefined();
      expect(Date.now() - t).toBeLessThan(3000);
    } finally {
      restore();
    }
    const saved = process.env.PATH;
    process.env.PATH = mkdtempSync(path.join(os.tmpdir(), "empty-path-"));
    try {
      expect(await nvidiaSmiProcessMemory(process.pid)).toBeUndefined();
    } finally {
      process.env.PATH = saved;
    }
  });
});

describe("the executor measures memory per run and per node", () => {
  const catalogue = new NodeCatalogue([
    defineNode({
      type: "test.alloc",
      typeVersion: 1,
      title: "Alloc",
      category: "Utility",
      description: "Sets the fake RSS while it runs, then fails or waits as told.",
      inputs: {},
      outputs: { out: { type: "NUMBER" } },
      params: z.object({ rss: z.number().default(100), fail: z.boolean().default(false), wait: z.boolean().default(false) }),
      nondeterministic: true,
      async execute({ params, ctx }) {
        current.state.rss = params.rss;
        await new Promise((r) => setTimeout(r, 30));
        current.state.rss = 100;
        if (params.fail) throw new Error("out of luck");
        if (params.wait) await new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
        return { out: params.rss };
      },
    }),
  ]);
  let current = fakeProbe();
  afterEach(() => {
    current = fakeProbe();
  });

  async function run(nodes: { id: string; params: Record<string, unknown> }[], abortAfterMs?: number) {
    current = fakeProbe();
    const executor = new Executor({ catalogue, storage: new MemoryStorage(), concurrency: 1, memoryProbe: () => current.probe, memorySampleMs: 5 });
    const events: RunEvent[] = [];
    const controller = new AbortController();
    if (abortAfterMs !== undefined) setTimeout(() => controller.abort(), abortAfterMs);
    const result = await executor.run(wf(nodes.map((n) => ({ ...n, type: "test.alloc" })), []), { runId: "r", signal: controller.signal, onEvent: (e) => events.push(e) });
    // The sampler has stopped: no reading happens after the run, however it ended.
    const reads = current.state.reads;
    await new Promise((r) => setTimeout(r, 40));
    expect(current.state.reads).toBe(reads);
    return { result, events };
  }

  it("finished: start, peak and per-node peaks in the result and the events", async () => {
    const { result, events } = await run([
      { id: "small", params: { rss: 200 } },
      { id: "big", params: { rss: 800 } },
    ]);
    expect(result.status).toBe("finished");
    expect(result.memory).toEqual({ startRssBytes: 100, peakRssBytes: 800 });
    expect(result.nodes.get("small")!.peakRssBytes).toBe(200);
    expect(result.nodes.get("big")!.peakRssBytes).toBe(800);
    expect(events.find((e) => e.type === "started")).toMatchObject({ startRssBytes: 100 });
    expect(events.filter((e) => e.type === "node-done").map((e) => [e.type === "node-done" && e.nodeId, e.type === "node-done" && e.peakRssBytes])).toEqual([
      ["small", 200],
      ["big", 800],
    ]);
    expect(events.at(-1)).toMatchObject({ type: "finished", memory: { startRssBytes: 100, peakRssBytes: 800 } });
  });

  it("failed: the failing node's peak and the run's memory are still recorded", async () => {
    const { result, events } = await run([{ id: "bad", params: { rss: 600, fail: true } }]);
    expect(result.status).toBe("failed");
    expect(result.memory!.peakRssBytes).toBe(600);
    expect(events.find((e) => e.type === "node-error")).toMatchObject({ nodeId: "bad", peakRssBytes: 600 });
    expect(events.at(-1)).toMatchObject({ type: "failed", memory: { peakRssBytes: 600 } });
  });

  it("cancelled: the sampler stops and the run keeps its figures", async () => {
    const { result, events } = await run([{ id: "slow", params: { rss: 400, wait: true } }], 60);
    expect(result.status).toBe("cancelled");
    expect(result.memory).toEqual({ startRssBytes: 100, peakRssBytes: 400 });
    expect(events.at(-1)).toMatchObject({ type: "cancelled", memory: { peakRssBytes: 400 } });
  });

  it("on CUDA (default probe) the run records the device memory nvidia-smi lists for this process; on CPU none", async () => {
    const runtimeOn = (ep: "cuda" | "cpu") => ({ resolveExecutionProvider: async () => ep }) as unknown as Runtime;
    const doc = wf([{ id: "a", type: "test.alloc", params: { rss: 1 } }], []);
    const restore = withFakeNvidiaSmi(`echo "$PPID, 2048"`);
    try {
      const cuda = await new Executor({ catalogue, storage: new MemoryStorage(), runtime: runtimeOn("cuda") }).run(doc, { runId: "c" });
      expect(cuda.memory!.peakDeviceBytes).toBe(2048 * 1024 * 1024);
      expect(cuda.memory!.peakRssBytes).toBeGreaterThanOrEqual(cuda.memory!.startRssBytes);
      const cpu = await new Executor({ catalogue, storage: new MemoryStorage(), runtime: runtimeOn("cpu") }).run(doc, { runId: "p" });
      expect(cpu.memory).toBeDefined();
      expect("peakDeviceBytes" in cpu.memory!).toBe(false);
    } finally {
      restore();
    }
  });

  it("memoryProbe: false measures nothing", async () => {
    const executor = new Executor({ catalogue, storage: new MemoryStorage(), memoryProbe: false });
    const result = await executor.run(wf([{ id: "a", type: "test.alloc", params: { rss: 1 } }], []), { runId: "r" });
    expect(result.memory).toBeUndefined();
    expect(result.nodes.get("a")!.peakRssBytes).toBeUndefined();
  });
});
