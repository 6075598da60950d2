/**
 * Headless CLI: the same engine, run queue and run history as the web app.
 *   npm run cli -- --help
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { TERMINAL_EVENTS, type RunEvent } from "@/engine/events";
import { computePositionIds, LayoutError, parseLayout, ROPE_MODES, zRopeMode, type PositionIds } from "@/engine/rope/positions";
import { SessionPool } from "@/engine/runtime";
import { describeRunMemory } from "@/engine/runtime/memory-format";
import { loadWorkflow } from "@/engine/workflow/load";
import { forwardJson, type PositionsJson } from "@/models/forward";
import { openModelDir, resolveModel, type ResolvedModel } from "@/models/moe-llm-model";
import type { Workflow } from "@/engine/workflow/schema";
import { hasErrors, type Problem } from "@/engine/workflow/validate";
import { catalogue } from "@/nodes";
import { runBatchCli } from "./cli-batch";
import { db } from "./db";
import { userCommand } from "./cli-user";
import { RunManager } from "./runs";
import { fileStorage } from "./storage";
import { getWorkflow, listWorkflows } from "./workflows";

const HELP = `MoE Studio CLI

Usage: npm run cli -- <command> [options]

Commands:
  run <workflow.json | saved workflow id>   Run a workflow with the same engine as the app.
      --set nodeId.param=value                Override a param (repeatable; value is JSON, or text).
      --to nodeId                             Run only this node and its ancestors.
      --version N                             Run version N of a saved workflow (default: latest).
      --out DIR                               Write each node's outputs (JSON previews and files) to DIR.
      --dataset <file.jsonl|file.csv|dir>     Run once per dataset record and write the routing aggregate
                                              (JSON + CSV, with fingerprints) to --out (default: under
                                              <data dir>/batch). Killed, it resumes from the last finished record.
      --sweep nodeId.param=v1,v2,...          With --dataset: one batch per value; writes sweep.json/.csv.
      --concurrency N                         With --dataset: records run at once (default 1).
  validate <workflow.json | saved id>       Check a workflow and list its problems.
  list                                      List saved workflows.
  rope --layout <layout.json>               Write 3D RoPE position ids { "t": [...], "h": [...], "w": [...] } for a prompt layout.
      --mode uni-moe|uni-moe-released|qwen2-vl|qwen2.5-omni|1d   Position-id rule (default: uni-moe).
      --out <ids.json>                        Where to write the ids (default: print them).
  forward --model <dir> --ids <1,2,3> --out <result.json>
                                            One forward pass of an MoE-LLM; writes the last position's logits and
                                            every MoE layer's routing: { "logits": [...], "layers": [{ "layer",
                                            "router_logits", "k", "mask", "weights" }] } (MoE layers only, in order;
                                            "layer" = decoder index; expert columns: routed, null, shared).
      --positions <file.json>                 { "t": [...], "h": [...], "w": [...] } (default 0..n-1 on all axes)
      --dense                                 Compute every expert for every token (masked), to compare.
      --top-p X                               Override the model's routing Top-P threshold (dynamic-capacity routers).
      --top-k K                               Override the experts per token (fixed top-k routers).
  --help                                    Show this help.

Exit status: 0 finished, 1 failed (the message names the node), 2 bad usage or input, 130 cancelled.
Later issues add: import.`;

class UsageError extends Error {}

interface Args {
  command: string;
  target?: string;
  sets: string[];
  to?: string;
  version?: number;
  out?: string;
  layout?: string;
  mode?: string;
  model?: string;
  ids?: string;
  positions?: string;
  dense?: boolean;
  topP?: number;
  topK?: number;
  dataset?: string;
  sweeps: string[];
  concurrency?: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { command: argv[0] ?? "--help", sets: [], sweeps: [] };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === "--set") args.sets.push(value());
    else if (a.startsWith("--set=")) args.sets.push(a.slice(6));
    else if (a === "--to") args.to = value();
    else if (a === "--out") args.out = value();
    else if (a === "--version") args.version = Number(value());
    else if (args.command === "run" && a === "--dataset") args.dataset = value();
    else if (args.command === "run" && a === "--sweep") args.sweeps.push(value());
    else if (args.command === "run" && a === "--concurrency") args.concurrency = Number(value());
    else if (args.command === "rope" && a === "--layout") args.layout = value();
    else if (args.command === "rope" && a === "--mode") args.mode = value();
    else if (args.command === "forward" && a === "--model") args.model = value();
    else if (args.command === "forward" && a === "--ids") args.ids = value();
    else if (args.command === "forward" && a === "--positions") args.positions = value();
    else if (args.command === "forward" && a === "--dense") args.dense = true;
    else if (args.command === "forward" && a === "--top-p") args.topP = Number(value());
    else if (args.command === "forward" && a === "--top-k") args.topK = Number(value());
    else if (a.startsWith("--")) throw new UsageError(`unknown option ${a}`);
    else if (args.target === undefined) args.target = a;
    else throw new UsageError(`unexpected argument "${a}"`);
  }
  return args;
}

async function loadTarget(target: string | undefined, version?: number): Promise<{ doc: Workflow; problems: Problem[]; workflowId?: string; workflowVersion?: number }> {
  if (!target) throw new UsageError("which workflow? give a .json file or a saved workflow id");
  if (target.endsWith(".json")) {
    let text: string;
    try {
      text = await readFile(target, "utf8");
    } catch (err) {
      throw new UsageError(`cannot read ${target}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
    }
    try {
      const { workflow, problems } = loadWorkflow(text, catalogue);
      return { doc: workflow, problems };
    } catch (err) {
      throw new UsageError(`${target}: ${(err as Error).message}`);
    }
  }
  try {
    const saved = await getWorkflow(target, version);
    return { doc: saved.document, problems: saved.problems, workflowId: target, workflowVersion: saved.version };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** `--set node.param=value`: the value is JSON when it parses (numbers, booleans, arrays), otherwise text. */
function applySets(doc: Workflow, sets: string[]): Workflow {
  const out = structuredClone(doc);
  for (const s of sets) {
    const m = /^([^.=]+)\.([^=]+)=(.*)$/s.exec(s);
    if (!m) throw new UsageError(`--set "${s}" is not nodeId.param=value`);
    const [, nodeId, param, raw] = m as unknown as [string, string, string, string];
    const node = out.nodes.find((n) => n.id === nodeId);
    if (!node) throw new UsageError(`--set: there is no node "${nodeId}" (nodes: ${out.nodes.map((n) => n.id).join(", ")})`);
    const def = catalogue.get(node.type);
    if (def && !(param in def.params.shape)) throw new UsageError(`--set: node "${nodeId}" (${node.type}) has no param "${param}" (params: ${Object.keys(def.params.shape).join(", ")})`);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // plain text
    }
    node.params = { ...node.params, [param]: value };
  }
  return out;
}

function printProblems(problems: Problem[]) {
  for (const p of problems) console.error(`  ${p.severity}: ${p.message}`);
}

function bar(fraction: number, width = 20): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

async function writeOutputs(dir: string, runId: string) {
  await mkdir(dir, { recursive: true });
  const run = await db().run.findUniqueOrThrow({ where: { id: runId }, include: { nodeRuns: true } });
  const files: string[] = [];
  for (const n of run.nodeRuns) {
    if (!n.outputs) continue;
    const outputs = JSON.parse(n.outputs) as Record<string, Record<string, unknown>>;
    await writeFile(path.join(dir, `${n.nodeId}.json`), JSON.stringify(outputs, null, 2));
    files.push(`${n.nodeId}.json`);
    for (const [socket, value] of Object.entries(outputs)) {
      if (typeof value.file === "string") {
        const name = `${n.nodeId}.${socket}.${value.file.split(".")[1] ?? "bin"}`;
        await copyFile(fileStorage().pathOf(value.file), path.join(dir, name));
        files.push(name);
      }
    }
  }
  await writeFile(
    path.join(dir, "run.json"),
    JSON.stringify(
      {
        runId,
        status: run.status,
        error: run.error,
        executionProvider: run.executionProvider,
        // Memory of the process that executed the run, in bytes (null when not measured; device: CUDA only).
        startRssBytes: run.startRssBytes,
        peakRssBytes: run.peakRssBytes,
        peakDeviceBytes: run.peakDeviceBytes,
        nodes: run.nodeRuns.map((n) => ({ nodeId: n.nodeId, status: n.status, ms: n.durationMs, summary: n.summary, error: n.error, peakRssBytes: n.peakRssBytes })),
      },
      null,
      2,
    ),
  );
  return files;
}

async function cmdRun(args: Args): Promise<number> {
  const loaded = await loadTarget(args.target, args.version);
  const doc = applySets(loaded.doc, args.sets);
  if (args.to && !doc.nodes.some((n) => n.id === args.to)) throw new UsageError(`--to: there is no node "${args.to}"`);
  if (args.dataset !== undefined || args.sweeps.length) return runBatchCli(doc, { dataset: args.dataset, sweeps: args.sweeps, out: args.out, concurrency: args.concurrency });
  const manager = new RunManager({ recoverInterrupted: false });
  const runId = await manager.start({ document: doc, workflowId: loaded.workflowId, workflowVersion: loaded.workflowVersion, targetNodeId: args.to });
  const tty = process.stdout.isTTY;
  let total = 0;
  let finishedNodes = 0;
  const onSigint = () => {
    console.error("\ncancelling…");
    void manager.cancel(runId);
  };
  process.on("SIGINT", onSigint);
  const terminal = await new Promise<RunEvent>((resolve) => {
    manager.subscribe(runId, (e) => {
      switch (e.type) {
        case "started":
          total = e.nodeIds.length;
          console.log(`run ${runId}: ${total} node(s) on ${e.executionProvider}`);
          break;
        case "progress":
          if (tty) process.stdout.write(`\r  ${e.nodeId} ${bar(e.fraction)} ${Math.round(e.fraction * 100)}% ${e.message ?? ""}`.padEnd(70));
          break;
        case "node-done":
        case "node-cached":
          finishedNodes++;
          if (tty) process.stdout.write("\r".padEnd(72) + "\r");
          console.log(`${bar(finishedNodes / Math.max(1, total))} ${e.nodeId}: ${e.type === "node-cached" ? "cached" : `done in ${e.ms.toFixed(1)} ms`}: ${e.summary}`);
          break;
        case "node-error":
          if (tty) process.stdout.write("\r".padEnd(72) + "\r");
          console.error(`error: ${e.message}`);
          break;
      }
      if (TERMINAL_EVENTS.has(e.type)) resolve(e);
    });
  });
  process.off("SIGINT", onSigint);
  if (args.out) {
    const files = await writeOutputs(args.out, runId);
    console.log(`wrote ${files.length} file(s) to ${args.out}`);
  }
  const memory = "memory" in terminal && terminal.memory ? describeRunMemory(terminal.memory) : undefined;
  if (memory) console.log(memory);
  if (terminal.type === "finished") {
    console.log(`finished in ${terminal.ms.toFixed(1)} ms`);
    return 0;
  }
  if (terminal.type === "cancelled") {
    console.error("cancelled");
    return 130;
  }
  console.error(`failed: ${terminal.type === "failed" ? terminal.message : ""}`);
  return 1;
}

async function cmdValidate(args: Args): Promise<number> {
  const { doc, problems } = await loadTarget(args.target, args.version);
  console.log(`${doc.name}: ${doc.nodes.length} node(s), ${doc.edges.length} edge(s)`);
  if (!problems.length) console.log("no problems");
  printProblems(problems);
  return hasErrors(problems) ? 1 : 0;
}

/** `forward`: one pass of a model directory; the output shape is a scripting contract (models/forward.ts). */
async function cmdForward(args: Args): Promise<number> {
  if (!args.model) throw new UsageError("forward needs --model <dir>");
  if (!args.ids) throw new UsageError("forward needs --ids <comma-separated token ids>");
  if (!args.out) throw new UsageError("forward needs --out <result.json>");
  if (args.topP !== undefined && !(args.topP > 0 && args.topP <= 1)) throw new UsageError("--top-p must be in (0, 1]");
  if (args.topK !== undefined && !(Number.isInteger(args.topK) && args.topK >= 1)) throw new UsageError("--top-k must be a positive integer");
  const ids = args.ids.split(",").map((s) => Number(s.trim()));
  if (ids.some((v) => !Number.isInteger(v))) throw new UsageError(`--ids must be comma-separated integers (got "${args.ids}")`);
  let positions: PositionsJson | undefined;
  if (args.positions) {
    try {
      positions = JSON.parse(await readFile(args.positions, "utf8")) as PositionsJson;
    } catch (err) {
      throw new UsageError(`cannot read --positions ${args.positions}: ${(err as Error).message}`);
    }
  }
  let model: ResolvedModel;
  try {
    model = existsSync(args.model) ? openModelDir(path.resolve(args.model), args.model) : await resolveModel(args.model);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const pool = new SessionPool();
  try {
    const result = await forwardJson(model, pool, ids, { positions, dense: args.dense, topP: args.topP, topK: args.topK });
    await writeFile(args.out, JSON.stringify(result));
    console.log(`wrote ${args.out}: ${result.logits.length} logits, ${result.layers.length} layers, ${ids.length} tokens`);
    return 0;
  } catch (err) {
    throw new UsageError((err as Error).message);
  } finally {
    await pool.close();
  }
}

/** `rope`: position ids for a layout file (engine/rope/positions.ts documents the layout and the modes). */
async function cmdRope(args: Args): Promise<number> {
  const file = args.layout ?? args.target;
  if (!file) throw new UsageError("rope needs --layout <layout.json>");
  if (args.sets.length || args.to !== undefined || args.version !== undefined) throw new UsageError("rope takes only --layout, --mode and --out");
  const mode = zRopeMode.safeParse(args.mode ?? "uni-moe");
  if (!mode.success) throw new UsageError(`--mode must be one of ${ROPE_MODES.join(", ")} (got "${args.mode}")`);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
  let layout: unknown;
  try {
    layout = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${file} is not JSON: ${(err as Error).message}`);
  }
  let ids: PositionIds;
  try {
    ids = computePositionIds(parseLayout(layout), mode.data);
  } catch (err) {
    if (err instanceof LayoutError) throw new UsageError(`${file}: ${err.message}`);
    throw err;
  }
  for (const w of ids.warnings) console.error(`warning: ${w}`);
  const json = JSON.stringify({ t: ids.t, h: ids.h, w: ids.w }) + "\n";
  if (!args.out) {
    process.stdout.write(json);
    return 0;
  }
  try {
    await writeFile(args.out, json);
  } catch (err) {
    throw new UsageError(`cannot write ${args.out}: ${(err as Error).message}`);
  }
  const max = ids.t.length ? Math.max(...ids.spans.map((s) => s.max)) : -1;
  console.log(`wrote ${ids.t.length} position id(s) (mode ${ids.mode}${ids.appliedMode !== ids.mode ? ` → ${ids.appliedMode}` : ""}, max id ${max}) to ${args.out}`);
  return 0;
}

async function cmdList(): Promise<number> {
  for (const w of await listWorkflows({})) console.log(`${w.id}  v${w.latestVersion}  ${w.name}`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === "import" || argv[0] === "inspect-checkpoint") return (await import("./cli-import")).runImportCommand(argv);
  try {
    if (argv[0] === "user") return await userCommand(argv.slice(1));
    const args = parseArgs(argv);
    switch (args.command) {
      case "--help":
      case "-h":
      case "help":
        console.log(HELP);
        return 0;
      case "run":
        return await cmdRun(args);
      case "validate":
        return await cmdValidate(args);
      case "list":
        return await cmdList();
      case "rope":
        return await cmdRope(args);
      case "forward":
        return await cmdForward(args);
      default:
        throw new UsageError(`unknown command "${args.command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n(npm run cli -- --help lists the commands)`);
      return 2;
    }
    const message = (err as Error).message ?? String(err);
    if (/no such table/i.test(message)) {
      console.error("error: the database is not set up yet: run `npm run setup` first");
      return 2;
    }
    throw err;
  }
}

if (process.argv[1] && /cli\.ts$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
