"use client";
/**
 * The router entropy of the inspector's metrics in a Web Worker: it needs D exps per token and layer
 * (7.3 M for 28 layers × 4,096 tokens × 65 experts), over half of the metrics time, and runs in parallel
 * with the main thread counting and drawing. The worker runs the source text of routerEntropySums
 * (self-contained by design, tested) from a Blob, so no bundler support for workers is needed. The
 * router logits of a trace are copied to the worker once; later requests (another token facet) send only
 * the rows. Without Worker support, or if the worker fails, the sums are computed on the main thread.
 */
import { routerEntropySums } from "@/engine/routing/metrics";
import type { RoutingTrace } from "@/engine/trace";

interface Job {
  resolve: (sums: Float64Array) => void;
  fallback: () => void;
}

let worker: Worker | null | undefined;
let nextId = 1;
const jobs = new Map<number, Job>();
const traceKeys = new WeakMap<RoutingTrace, number>();
let workerTrace = 0; // the trace whose logits the worker holds

function dynamicColumns(trace: RoutingTrace): Int32Array {
  return Int32Array.from(trace.experts.flatMap((e, c) => (e.role === "shared" ? [] : [c])));
}

function getWorker(): Worker | null {
  if (worker !== undefined) return worker;
  try {
    const source = `const routerEntropySums = ${routerEntropySums.toString()};
let held = null;
onmessage = (e) => {
  const { id, logits, E, dynCols, rows } = e.data;
  if (logits) held = logits;
  const sums = routerEntropySums(held, E, dynCols, rows);
  postMessage({ id, sums }, [sums.buffer]);
};`;
    worker = new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })));
    worker.onmessage = (e: MessageEvent<{ id: number; sums: Float64Array }>) => {
      jobs.get(e.data.id)?.resolve(e.data.sums);
      jobs.delete(e.data.id);
    };
    worker.onerror = () => {
      // Finish every waiting request on the main thread and stop using the worker.
      worker?.terminate();
      worker = null;
      for (const j of jobs.values()) j.fallback();
      jobs.clear();
    };
  } catch {
    worker = null;
  }
  return worker;
}

/**
 * Starts computing the per-layer router entropy sums of `rows` of `trace` (routerEntropySums) off the
 * main thread, at once (call it before the main-thread work it should overlap with).
 */
export function entropySumsInWorker(trace: RoutingTrace, rows: Int32Array): Promise<Float64Array> {
  const E = trace.experts.length;
  const dynCols = dynamicColumns(trace);
  const onMainThread = () => routerEntropySums(trace.layers.map((l) => l.routerLogits), E, dynCols, rows);
  const w = typeof Worker === "undefined" ? null : getWorker();
  if (!w) return Promise.resolve().then(onMainThread);
  let key = traceKeys.get(trace);
  if (key === undefined) traceKeys.set(trace, (key = nextId++));
  const id = nextId++;
  const mark = `routing-entropy-${id}`;
  performance.mark(mark);
  return new Promise<Float64Array>((resolve) => {
    const done = (sums: Float64Array) => {
      performance.measure("routing-entropy-worker", mark); // wall time from the request to the answer
      resolve(sums);
    };
    jobs.set(id, { resolve: done, fallback: () => done(onMainThread()) });
    const logits = workerTrace === key ? undefined : trace.layers.map((l) => l.routerLogits);
    workerTrace = key!;
    w.postMessage({ id, logits, E, dynCols, rows });
  });
}
