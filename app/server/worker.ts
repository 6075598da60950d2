/**
 * `npm run worker`: takes runs from the BullMQ queue (STUDIO_QUEUE=redis://… or postgresql://…) and
 * executes them with the same executor as the web process, on this host's execution provider
 * (STUDIO_EP: auto tries CUDA, then WebGPU on a hardware adapter, then CPU). STUDIO_WORKER_CONCURRENCY runs at once (default 1);
 * STUDIO_WORKER_LOCK_MS is how long a silent worker keeps its runs before another takes them over.
 */
import "./load-env";
import type { RunEvent } from "@/engine/events";
import { BullRunWorker, RelayEventBus } from "@/engine/queue/bullmq";
import { describeRunMemory } from "@/engine/runtime/memory-format";
import type { Workflow } from "@/engine/workflow/schema";
import { db } from "./db";
import { createExecutor, executeRun, queueUrl } from "./runs";
import { config } from "@/engine/config";
import { log } from "@/engine/log";
import { providerLabel } from "@/engine/runtime/webgpu";


export async function startWorker(): Promise<{ worker: BullRunWorker; stop: () => Promise<void> }> {
  const url = queueUrl();
  if (!url) throw new Error("set STUDIO_QUEUE=redis://host:port (or postgresql://…) to the queue the web server uses");
  const { executor, runtime } = createExecutor();
  const executionProvider = await runtime.resolveExecutionProvider();
  const bus = new RelayEventBus({ url });
  await bus.ready();
  const publish = (event: RunEvent) => {
    bus.publish(event).catch((err: unknown) => log().error({ runId: event.runId, event: event.type, error: (err as Error).message }, "could not publish an event"));
  };

  const worker = new BullRunWorker({
    url,
    concurrency: config().STUDIO_WORKER_CONCURRENCY,
    lockMs: config().STUDIO_WORKER_LOCK_MS,
    stalledCheckMs: config().STUDIO_WORKER_STALLED_CHECK_MS,
    warmHandoffMs: config().STUDIO_WORKER_HANDOFF_MS,
    executionProvider: providerLabel(executionProvider),
    async execute(run, signal, owned) {
      const row = await db().run.findUnique({ where: { id: run.runId }, select: { document: true, targetNodeId: true, status: true, ownerId: true } });
      if (!row) throw new Error(`run ${run.runId} is not in the database`);
      if (row.status !== "queued" && row.status !== "running") return; // cancelled (or ended) before it reached us
      log().info({ runId: run.runId, attempt: run.attempt }, "run taken");
      if (run.attempt > 1) {
        // The previous worker died mid-run: start over from a clean slate (cached outputs are still reused).
        log().warn({ runId: run.runId, attempt: run.attempt }, "retrying after its worker was lost");
        await db().nodeRun.deleteMany({ where: { runId: run.runId } });
      }
      const terminal = await executeRun(executor, { id: run.runId, document: JSON.parse(row.document) as Workflow, targetNodeId: row.targetNodeId ?? undefined, ownerId: row.ownerId }, signal, publish, owned);
      // The run's memory was measured in this process (executeRun writes it to the Run row and the terminal event).
      const memory = "memory" in terminal && terminal.memory ? `, ${describeRunMemory(terminal.memory)}` : "";
      log().info({ runId: run.runId }, owned() ? `${terminal.type}${memory}` : "abandoned (another worker took it over)");
    },
  });
  bus.onCancelRequest((runId) => {
    if (worker.cancel(runId)) log().info({ runId }, "cancel requested");
  });
  await worker.ready();
  log().info({ worker: worker.id, queue: `${new URL(url).protocol}//${new URL(url).host}`, executionProvider: providerLabel(executionProvider), concurrency: worker.info().concurrency }, "worker taking runs");

  const stop = async () => {
    await worker.close();
    await bus.close();
    await runtime.close();
    await db().$disconnect();
  };
  return { worker, stop };
}

if (process.argv[1] && /worker\.ts$/.test(process.argv[1])) {
  startWorker().then(
    ({ stop }) => {
      let stopping = false;
      const onSignal = (signal: string) => {
        if (stopping) process.exit(1);
        stopping = true;
        log().info({ signal }, "finishing running runs, then stopping");
        stop().then(() => process.exit(0), () => process.exit(1));
      };
      process.on("SIGINT", () => onSignal("SIGINT"));
      process.on("SIGTERM", () => onSignal("SIGTERM"));
    },
    (err: unknown) => {
      log().fatal({ error: (err as Error).message }, "worker could not start");
      process.exit(1);
    },
  );
}
