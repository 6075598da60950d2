/**
 * Headless CLI: the same engine, run queue and run history as the web app.
 *   npm run cli -- --help
 */
import "./load-env";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { TERMINAL_EVENTS, type RunEvent } from "@/engine/events";
import { computePositionIds, LayoutError, parseLayout, ROPE_MODES, zRopeMode, type PositionIds } from "@/engine/rope/positions";
import { providerLabel, SessionPool } from "@/engine/runtime";
import { describeRunMemory } from "@/engine/runtime/memory-format";
import { loadWorkflow } from "@/engine/workflow/load";
import { forwardJson, type PositionsJson } from "@/models/moe-llm/forward";
import { openModelDir, resolveModel, type ResolvedModel } from "@/models/moe-llm/moe-llm-model";
import type { Workflow } from "@/engine/workflow/schema";
import { hasErrors, type Problem } from "@/engine/workflow/validate";
import { catalogue } from "@/nodes";
import { logToStderr, terminalLine } from "@/engine/log";
import { bar, progressBar } from "@/engine/progress-bar";
import { copyOutput, numberOption, onePositional, outputDir, outputNames, parseCommand, writeOutput, UsageError, type CliCommand } from "./cli-args";
import { runBatchCli } from "./cli-batch";
import { IMPORT_COMMANDS } from "./cli-import";
import { tokenCli } from "./cli-token";
import { ttsForwardCommand } from "./cli-tts";
import { providersCommand } from "./cli-providers";
import { userCli } from "./cli-user";
import { db } from "./db";
import { convertExport, exportSource } from "./exports";
import { applyOverrides, OverrideError, parseSet } from "./overrides";
import { RunManager } from "./runs";
import { fileStorage } from "./storage";
import { getWorkflow, listWorkflows } from "./workflows";

async function loadTarget(target: string, version?: number): Promise<{ doc: Workflow; problems: Problem[]; workflowId?: string; workflowVersion?: number }> {
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

/** One line per problem (a cycle is one problem per node it passes, for the editor's markers: printed once). */
function printProblems(problems: Problem[]) {
  for (const line of new Set(problems.map((p) => `  ${p.severity}: ${terminalLine(p.message)}`))) console.error(line);
}

/** Writes a finished run's outputs into `dir` (made by outputDir before the run started). */
async function writeOutputs(dir: string, runId: string) {
  const run = await db().run.findUniqueOrThrow({ where: { id: runId }, include: { nodeRuns: true } });
  const files: string[] = [];
  const claim = outputNames();
  for (const n of run.nodeRuns) {
    if (!n.outputs) continue;
    const outputs = JSON.parse(n.outputs) as Record<string, Record<string, unknown>>;
    const json = claim(`${n.nodeId}.json`);
    await writeOutput(path.join(dir, json), JSON.stringify(outputs, null, 2));
    files.push(json);
    for (const [socket, value] of Object.entries(outputs)) {
      if (typeof value.file === "string") {
        const name = claim(`${n.nodeId}.${socket}.${value.file.split(".")[1] ?? "bin"}`);
        await copyOutput(fileStorage().pathOf(value.file), path.join(dir, name));
        files.push(name);
      }
    }
    // Routing traces and aggregates also as safetensors, for Python (docs/datasets-and-analysis.md "Traces into Python").
    for (const kind of ["trace", "aggregate"] as const) {
      const source = exportSource(outputs, kind);
      if (!source) continue;
      const name = claim(`${n.nodeId}.${kind}.safetensors`);
      await writeOutput(path.join(dir, name), (await convertExport(kind, source, "safetensors", JSON.parse(run.document) as Workflow)).body);
      files.push(name);
    }
  }
  await writeOutput(
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

const RUN_HELP = `  run <workflow.json | saved workflow id>   Run a workflow with the same engine as the app.
      --set nodeId.param=value                Override a param (repeatable; value is JSON, or text).
      --to nodeId                             Run only this node and its ancestors.
      --version N                             Run version N of a saved workflow (default: latest).
      --out DIR                               Write each node's outputs (JSON previews and files) to DIR.
      --dataset <file.jsonl|file.csv|dir>     Run once per dataset record and write the routing aggregate
                                              (JSON + CSV, with fingerprints) to --out (default: under
                                              <data dir>/batch). Killed, it resumes from the last finished record.
      --sweep nodeId.param=v1,v2,...          With --dataset: one batch per value; writes sweep.json/.csv.
      --concurrency N                         With --dataset: records run at once (default 1; at least --batch).
      --batch N                               With --dataset: records per model forward (default 8): the MoE-LLM
                                              steps (prompt, each generated token) of N records run as one padded
                                              forward; every record's result is its own, as run alone. 1 = one
                                              record per forward (the default with --ablate).
      --ablate experts|layer-experts|subset:L3.E1,L5.E2,*.E3,k=1,no-null
                                              With --dataset: expert ablation of the MoE-LLM (mode score-answer or
                                              score-text): the baseline, then each expert banned in turn; writes
                                              ablation.json/.csv/.safetensors (ΔNLL per task, fingerprints). Resumable.
      --max-ablations N                       With --ablate: only the first N ablations.
      --max-records N                         With --ablate: only the first N records.`;

const runCommand: CliCommand = {
  name: "run",
  help: RUN_HELP,
  async run(argv) {
    const { values, positionals } = parseCommand("run", argv, {
      set: { type: "string", multiple: true },
      to: { type: "string" },
      version: { type: "string" },
      out: { type: "string" },
      dataset: { type: "string" },
      sweep: { type: "string", multiple: true },
      concurrency: { type: "string" },
      batch: { type: "string" },
      ablate: { type: "string" },
      "max-ablations": { type: "string" },
      "max-records": { type: "string" },
    });
    const version = numberOption(values.version, "--version", { integer: true, min: 1 });
    const concurrency = numberOption(values.concurrency, "--concurrency", { integer: true, min: 1, max: 16 });
    const batch = numberOption(values.batch, "--batch", { integer: true, min: 1, max: 64 });
    if (batch !== undefined && values.dataset === undefined) throw new UsageError("--batch needs --dataset <file|dir>");
    const loaded = await loadTarget(onePositional(positionals, "workflow? give a .json file or a saved workflow id"), version);
    let doc: Workflow;
    try {
      doc = applyOverrides(loaded.doc, (values.set ?? []).map(parseSet));
    } catch (err) {
      if (err instanceof OverrideError) throw new UsageError(`--set: ${err.message}`);
      throw err;
    }
    if (values.to && !doc.nodes.some((n) => n.id === values.to)) throw new UsageError(`--to: there is no node "${values.to}"`);
    const maxAblations = numberOption(values["max-ablations"], "--max-ablations", { integer: true, min: 1 });
    const maxRecords = numberOption(values["max-records"], "--max-records", { integer: true, min: 1 });
    if (values.dataset !== undefined || values.sweep?.length || values.ablate !== undefined)
      return runBatchCli(doc, { dataset: values.dataset, sweeps: values.sweep ?? [], out: values.out, concurrency, batch, ablate: values.ablate, maxAblations, maxRecords });
    return runOnce(doc, loaded, values.to, values.out);
  },
};

async function runOnce(doc: Workflow, loaded: { workflowId?: string; workflowVersion?: number }, to: string | undefined, out: string | undefined): Promise<number> {
  const outDir = out === undefined ? undefined : await outputDir(out);
  const manager = new RunManager({ recoverInterrupted: false });
  const runId = await manager.start({ document: doc, workflowId: loaded.workflowId, workflowVersion: loaded.workflowVersion, targetNodeId: to });
  const progress = progressBar({ steps: 4 });
  let total = 0;
  let finishedNodes = 0;
  const onStop = () => {
    progress.line("cancelling…", process.stderr);
    void manager.cancel(runId);
  };
  // Ctrl+C, and what `timeout`, systemd and `docker stop` send: the run is cancelled, not left "running" in the history
  process.on("SIGINT", onStop);
  process.on("SIGTERM", onStop);
  const terminal = await new Promise<RunEvent>((resolve) => {
    manager.subscribe(runId, (e) => {
      switch (e.type) {
        case "started":
          total = e.nodeIds.length;
          console.log(`run ${runId}: ${total} node(s) on ${providerLabel(e.executionProvider)}`);
          break;
        case "progress":
          progress.update(e.fraction, terminalLine(`${e.nodeId} ${e.message ?? ""}`));
          break;
        case "node-done":
        case "node-cached":
          finishedNodes++;
          progress.line(`${bar(finishedNodes / Math.max(1, total), 20)} ${terminalLine(`${e.nodeId}: ${e.type === "node-cached" ? "cached" : `done in ${e.ms.toFixed(1)} ms`}: ${e.summary}`)}`);
          break;
        case "node-error":
          progress.line(`error: ${terminalLine(e.message)}`, process.stderr);
          break;
      }
      if (TERMINAL_EVENTS.has(e.type)) resolve(e);
    });
  });
  progress.done();
  process.off("SIGINT", onStop);
  process.off("SIGTERM", onStop);
  if (outDir) {
    const files = await writeOutputs(outDir, runId);
    console.log(`wrote ${files.length} file(s) to ${out}`);
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
  console.error(`failed: ${terminal.type === "failed" ? terminalLine(terminal.message) : ""}`);
  return 1;
}

const validateCommand: CliCommand = {
  name: "validate",
  help: "  validate <workflow.json | saved id>       Check a workflow and list its problems (--version N for a saved one).",
  async run(argv) {
    const { values, positionals } = parseCommand("validate", argv, { version: { type: "string" } });
    const { doc, problems } = await loadTarget(onePositional(positionals, "workflow? give a .json file or a saved workflow id"), numberOption(values.version, "--version", { integer: true, min: 1 }));
    console.log(terminalLine(`${doc.name}: ${doc.nodes.length} node(s), ${doc.edges.length} edge(s)`));
    if (!problems.length) console.log("no problems");
    printProblems(problems);
    return hasErrors(problems) ? 1 : 0;
  },
};

const listCommand: CliCommand = {
  name: "list",
  help: "  list                                      List saved workflows.",
  async run(argv) {
    const { positionals } = parseCommand("list", argv, {});
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    for (const w of await listWorkflows({})) console.log(terminalLine(`${w.id}  v${w.latestVersion}  ${w.name}`));
    return 0;
  },
};

/** `forward`: one pass of a model directory; the output shape is a scripting contract (models/moe-llm/forward.ts). */
const forwardCommand: CliCommand = {
  name: "forward",
  help: `  forward --model <dir> --ids <1,2,3> --out <result.json>
                                            One forward pass of an MoE-LLM; writes the last position's logits and
                                            every MoE layer's routing: { "logits": [...], "layers": [{ "layer",
                                            "router_logits", "k", "mask", "weights" }] } (MoE layers only, in order;
                                            "layer" = decoder index; expert columns: routed, null, shared).
      --positions <file.json>                 { "t": [...], "h": [...], "w": [...] } (default 0..n-1 on all axes)
      --dense                                 Compute every expert for every token (masked), to compare.
      --top-p X                               Override the model's routing Top-P threshold (dynamic-capacity routers).
      --top-k K                               Override the experts per token (fixed top-k routers).
      --logit-lens                            Also write "lens": per decoder layer { layer, top_ids, top_logprobs } with
                                              one row of the 5 most likely next tokens per position (the residual
                                              stream after that layer through the final norm and LM head).
      --routing-precision fp32|bf16           Arithmetic of the Uni-MoE routing (default: bf16 for Uni-MoE-2.0
                                              imports, as its released inference; fp32 otherwise). k is reported
                                              before capacity drops, mask and weights after them.`,
  async run(argv) {
    const { values: a, positionals } = parseCommand("forward", argv, {
      model: { type: "string" },
      ids: { type: "string" },
      out: { type: "string" },
      positions: { type: "string" },
      dense: { type: "boolean" },
      "top-p": { type: "string" },
      "top-k": { type: "string" },
      "routing-precision": { type: "string" },
      "logit-lens": { type: "boolean" },
    });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (!a.model) throw new UsageError("forward needs --model <dir>");
    if (!a.ids) throw new UsageError("forward needs --ids <comma-separated token ids>");
    if (!a.out) throw new UsageError("forward needs --out <result.json>");
    const topP = numberOption(a["top-p"], "--top-p", { min: 0, aboveMin: true, max: 1 });
    const topK = numberOption(a["top-k"], "--top-k", { integer: true, min: 1 });
    const routingPrecision = a["routing-precision"];
    if (routingPrecision !== undefined && routingPrecision !== "fp32" && routingPrecision !== "bf16") throw new UsageError(`--routing-precision must be fp32 or bf16 (got "${routingPrecision}")`);
    const ids = a.ids.split(",").map((s) => (/^\s*\d+\s*$/.test(s) ? Number(s) : NaN));
    if (ids.some((v) => !Number.isInteger(v))) throw new UsageError(`--ids must be comma-separated token ids, decimal integers ≥ 0 (got "${a.ids}")`);
    let positions: PositionsJson | undefined;
    if (a.positions) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(await readFile(a.positions, "utf8"));
      } catch (err) {
        throw new UsageError(`cannot read --positions ${a.positions}: ${(err as Error).message}`);
      }
      const keys = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? Object.keys(parsed).sort().join(",") : "";
      if (keys !== "h,t,w") throw new UsageError(`--positions ${a.positions} must hold exactly {"t": [...], "h": [...], "w": [...]}`);
      positions = parsed as PositionsJson;
    }
    let model: ResolvedModel;
    try {
      model = existsSync(a.model) ? openModelDir(path.resolve(a.model), a.model) : await resolveModel(a.model);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const pool = new SessionPool();
    try {
      const result = await forwardJson(model, pool, ids, { positions, dense: a.dense, topP, topK, routingPrecision, logitLens: a["logit-lens"] });
      await writeOutput(a.out, JSON.stringify(result));
      console.log(`wrote ${a.out}: ${result.logits.length} logits, ${result.layers.length} layers, ${ids.length} tokens${result.lens ? ", the logit lens" : ""}`);
      return 0;
    } catch (err) {
      throw new UsageError((err as Error).message);
    } finally {
      await pool.close();
    }
  },
};

/** `rope`: position ids for a layout file (engine/rope/positions.ts documents the layout and the modes). */
const ropeCommand: CliCommand = {
  name: "rope",
  help: `  rope --layout <layout.json>               Write 3D RoPE position ids { "t": [...], "h": [...], "w": [...] } for a prompt layout.
      --mode ${ROPE_MODES.join("|")}   Position-id rule (default: uni-moe).
      --out <ids.json>                        Where to write the ids (default: print them).`,
  async run(argv) {
    const { values: a, positionals } = parseCommand("rope", argv, { layout: { type: "string" }, mode: { type: "string" }, out: { type: "string" } });
    const file = a.layout ?? positionals[0];
    if (!file) throw new UsageError("rope needs --layout <layout.json>");
    if (positionals.length > (a.layout ? 0 : 1)) throw new UsageError("rope takes only --layout, --mode and --out");
    const mode = zRopeMode.safeParse(a.mode ?? "uni-moe");
    if (!mode.success) throw new UsageError(`--mode must be one of ${ROPE_MODES.join(", ")} (got "${a.mode}")`);
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
    if (!a.out) {
      process.stdout.write(json);
      return 0;
    }
    try {
      await writeOutput(a.out, json);
    } catch (err) {
      throw new UsageError(`cannot write ${a.out}: ${(err as Error).message}`);
    }
    const max = ids.spans.reduce((m, s) => Math.max(m, s.max), -1); // (a spread of 300,000 spans overflows the stack)
    console.log(`wrote ${ids.t.length} position id(s) (mode ${ids.mode}${ids.appliedMode !== ids.mode ? ` → ${ids.appliedMode}` : ""}, max id ${max}) to ${a.out}`);
    return 0;
  },
};

/** The commands, in the order `--help` lists them. A new command is one more entry here. */
export const COMMANDS: CliCommand[] = [runCommand, validateCommand, listCommand, ropeCommand, forwardCommand, ttsForwardCommand, providersCommand, ...IMPORT_COMMANDS, userCli, tokenCli];

export const HELP = `MoE Studio CLI

Usage: npm run cli -- <command> [options]      (--opt value and --opt=value both work)

Commands:
${COMMANDS.map((c) => c.help).join("\n")}
  --help                                    Show this help (<command> --help: that command's).

Exit status: 0 finished, 1 failed (the message names the node), 2 bad usage or input, 130 cancelled.`;

export async function main(argv: string[]): Promise<number> {
  logToStderr();
  const [name = "--help", ...rest] = argv;
  try {
    if (name === "--help" || name === "-h" || name === "help") {
      console.log(HELP);
      return 0;
    }
    const command = COMMANDS.find((c) => c.name === name);
    if (!command) throw new UsageError(`unknown command "${name}"`);
    if (rest.includes("--help") || rest.includes("-h")) {
      console.log(`Usage: npm run cli -- ${command.help.trimStart()}`);
      return 0;
    }
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}\n(npm run cli -- --help lists the commands)`);
      return 2;
    }
    const message = (err as Error).message ?? String(err);
    if (/no such table|does not exist in the current database/i.test(message)) {
      console.error("error: the database is not set up yet: run `npm run setup` first");
      return 2;
    }
    throw err;
  } finally {
    // the caller exits the process right away: let a piped stdout (long lists) drain first
    await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
  }
}

/** The process around main(): what `tsx app/server/cli.ts …` runs (and the tests' prebuilt bundle of it: tests/cli-bundle.ts). */
export function runCliProcess(argv: string[]): void {
  // A reader that stops early (`| head`) is not a failure of the command: end quietly, as Unix tools do.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(0);
      throw err;
    });
  }
  main(argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // one line, as for bad usage (with DEBUG set, the whole error and its stack)
      console.error(process.env.DEBUG ? err : `error: ${terminalLine((err as Error)?.message ?? String(err))}`);
      process.exit(1);
    },
  );
}

if (process.argv[1] && /cli\.ts$/.test(process.argv[1])) runCliProcess(process.argv.slice(2));
