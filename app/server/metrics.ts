/**
 * Prometheus metrics (prom-client), served at /metrics: runs by status (from the database, so every
 * process's runs count), node execution time by node type, nodes executed / cached / failed, the run
 * queue's depth, the output cache, and the process's own figures (resident memory, CPU, event loop:
 * prom-client's defaults). Node figures are counted from the run events this process sees: all of them
 * on the web server, embedded or distributed (workers' events come back over the relay).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { RunEvent } from "@/engine/events";

interface Metrics {
  registry: Registry;
  nodeSeconds: Histogram<"node_type">;
  nodes: Counter<"outcome">;
  cacheHits: Counter;
  runsEnded: Counter<"status">;
}

const globalForMetrics = globalThis as unknown as { studioMetrics?: Metrics };

function make(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    nodeSeconds: new Histogram({
      name: "studio_node_duration_seconds",
      help: "Time nodes took to execute (cache hits excluded), by node type",
      labelNames: ["node_type"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 120, 600],
      registers: [registry],
    }),
    nodes: new Counter({ name: "studio_nodes_total", help: "Nodes finished, by outcome (executed, cached, error)", labelNames: ["outcome"], registers: [registry] }),
    cacheHits: new Counter({ name: "studio_cache_hits_total", help: "Nodes whose outputs came from the output cache", registers: [registry] }),
    runsEnded: new Counter({ name: "studio_runs_ended_total", help: "Runs that ended since this process started, by status", labelNames: ["status"], registers: [registry] }),
  };
}

export function metrics(): Metrics {
  return (globalForMetrics.studioMetrics ??= make());
}

/** Counts one run event (called for every event this process delivers). */
export function observeEvent(e: RunEvent): void {
  const m = metrics();
  if (e.type === "node-done") {
    m.nodeSeconds.observe({ node_type: e.nodeType ?? "unknown" }, e.ms / 1000);
    m.nodes.inc({ outcome: "executed" });
  } else if (e.type === "node-cached") {
    m.nodes.inc({ outcome: "cached" });
    m.cacheHits.inc();
  } else if (e.type === "node-error") m.nodes.inc({ outcome: "error" });
  else if (e.type === "finished" || e.type === "failed" || e.type === "cancelled") m.runsEnded.inc({ status: e.type });
}

/**
 * Registers the gauges read at scrape time (once): runs by status from the database, the queue depth
 * and the output cache of the run manager. Kept apart so importing this module loads no database.
 */
export function registerLiveGauges(read: { runsByStatus: () => Promise<Record<string, number>>; queueDepth: () => Promise<number>; cache: () => { bytes: number; entries: number } }): void {
  const m = metrics();
  if (m.registry.getSingleMetric("studio_runs")) return;
  new Gauge({
    name: "studio_runs",
    help: "Runs in the database, by status",
    labelNames: ["status"],
    registers: [m.registry],
    async collect() {
      this.reset();
      for (const [status, n] of Object.entries(await read.runsByStatus())) this.set({ status }, n);
    },
  });
  new Gauge({
    name: "studio_queue_depth",
    help: "Runs waiting in the run queue",
    registers: [m.registry],
    async collect() {
      this.set(await read.queueDepth());
    },
  });
  new Gauge({
    name: "studio_output_cache_bytes",
    help: "Bytes held by this process's output cache",
    registers: [m.registry],
    collect() {
      this.set(read.cache().bytes);
    },
  });
  new Gauge({
    name: "studio_output_cache_entries",
    help: "Entries in this process's output cache",
    registers: [m.registry],
    collect() {
      this.set(read.cache().entries);
    },
  });
}
