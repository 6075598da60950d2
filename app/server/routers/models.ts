import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import type { PartReport } from "@/models/families/parts";
import { expertColumns } from "@/models/moe-llm/config";
import { MODEL_NODE_TYPES } from "@/models/defaults";
import { architectureOf, conventionText, routingRuleText } from "@/models/families/conventions";
import { routingControls } from "@/models/moe-llm/interventions";
import { deleteImportedModel, inspectCheckpoint, parameterCounts, readManifest, type ImportProgress } from "@/models/import/import";
import { hfCacheDir, listHfCache } from "@/models/import/hf-cache";
import { estimateFromConfig, quantizedShare } from "@/models/import/memory";
import { quantLabel, resolveQuant } from "@/models/onnx/quantize";
import { loadedSessions, releaseSessions } from "@/models/import/runtime";
import { listModels, openModelDir, resolveModel } from "@/models/moe-llm/moe-llm-model";
import { modelsDir } from "@/engine/config";
import { effectiveDefaults, forgetDefaultsFor, setDefault } from "../model-defaults";
import { displayPath, importRoots, redactPaths, redactStrings } from "../redact";
import { authEnabled, isAdmin } from "../auth";
import { adminProcedure, protectedProcedure, router } from "../trpc";
import { inspectWavTokenizer, listCodecs, resolveCodec, wavTokenizerSource } from "@/models/tts/codec-wavtokenizer-model";
import { listSpeechModels, resolveSpeechRef } from "@/models/tts/tts-released-model";
import { speechParameters } from "@/models/tts/tts-released";
import { TTS_REFERENCE_REF } from "@/models/tts/tts-tiny";
import { config } from "@/engine/config";
import { graphPlacement, listAppGraphs } from "@/models/graphs";
import { runManager } from "../runs";
import { providerLabel } from "@/engine/runtime/webgpu";

/** Defaults the Models page sets for new MoE-TTS nodes (defaults.json keys). */
const TTS_MODEL_KEY = "generate.tts";
const TTS_CODEC_KEY = "generate.tts.codec";

/**
 * Whose default a change sets: an admin sets the server's (everybody's, unless they chose their own),
 * anyone else their own; the single user's are the server's. `scope: "server"` needs an admin.
 */
async function defaultScope(userId: string | null, requested: "server" | "own" | undefined): Promise<"server" | "own"> {
  const admin = await isAdmin(userId);
  const scope = !authEnabled() ? "server" : (requested ?? (admin ? "server" : "own"));
  if (scope === "server" && !admin) throw new TRPCError({ code: "FORBIDDEN", message: 'only an admin of this server can set the server\'s default models; your own default is set with scope "own"' });
  return scope;
}

/**
 * A checkpoint folder named as the Models page names it: `<import folder label>/<path inside it>` (never
 * a server path). Nothing outside the import folders is read; a symbolic link leading out is refused.
 */
function allowedCheckpoint(id: string): string {
  const [label, ...rest] = id.split("/");
  const root = importRoots().find((r) => r.label === label);
  if (!root) throw new TRPCError({ code: "BAD_REQUEST", message: `"${id}" is not in an import folder (${importRoots().map((r) => r.label).join(", ")}); put the checkpoint there or add its parent to STUDIO_IMPORT_ROOTS` });
  let abs: string;
  try {
    abs = realpathSync(path.join(root.dir, ...rest));
  } catch {
    throw new TRPCError({ code: "BAD_REQUEST", message: `${id} does not exist` });
  }
  if (abs !== root.dir && !abs.startsWith(root.dir + path.sep)) throw new TRPCError({ code: "FORBIDDEN", message: `${id} leads outside its import folder` });
  if (!existsSync(path.join(abs, "config.json")) && !wavTokenizerSource(abs)) throw new TRPCError({ code: "BAD_REQUEST", message: `${id} has no config.json and no WavTokenizer .ckpt (is it a checkpoint folder?)` });
  return abs;
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return total;
}

interface ImportJob {
  id: string;
  dir: string;
  name?: string;
  state: "running" | "done" | "failed";
  progress?: ImportProgress;
  /** `build`: what an import (not a no-op) did, e.g. the bytes it resumed from an interrupted import of the same files. */
  result?: { status: string; ref: string; unclaimed: string[]; build?: { resumedBytes: number; writtenBytes: number } };
  error?: string;
  startedAt: number;
}
const jobs = new Map<string, ImportJob>();

/** Runs `cli-import.ts import --json` in a child process (the import never blocks the server) and follows its lines. */
function startImport(dir: string, name: string | undefined, dtype: string, quant?: { kind: "int8" | "int4"; blockSize?: number; asymmetric?: boolean }): ImportJob {
  const job: ImportJob = { id: randomUUID(), dir, name, state: "running", startedAt: Date.now() };
  jobs.set(job.id, job);
  const quantArgs = quant ? ["--quant", quant.kind, ...(quant.blockSize ? ["--quant-block", String(quant.blockSize)] : []), ...(quant.asymmetric ? ["--quant-asym"] : [])] : [];
  const args = ["--import", "tsx", path.join(process.cwd(), "app/server/cli-import.ts"), "import", dir, "--dtype", dtype, "--json", ...quantArgs, ...(name ? ["--name", name] : [])];
  const child = spawn(process.execPath, args, { cwd: process.cwd(), env: process.env, stdio: ["ignore", "pipe", "pipe"] });
  let buf = "", err = "";
  child.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const msg = JSON.parse(line) as { progress?: ImportProgress; result?: ImportJob["result"] };
        if (msg.progress) job.progress = msg.progress;
        if (msg.result) job.result = msg.result;
      } catch {
        // not a JSON line (e.g. a warning): ignore
      }
    }
  });
  child.stderr.on("data", (d: Buffer) => void (err += d.toString()));
  // a child that cannot start fails its job; unheard, the error would end the web process
  child.on("error", (e) => {
    job.state = "failed";
    job.error = `the import could not start: ${e.message}`;
  });
  child.on("close", (code) => {
    if (job.state === "failed") return;
    if (code === 0 && job.result) job.state = "done";
    else {
      job.state = "failed";
      job.error = redactPaths(err.split("\n").find((l) => l.startsWith("error: "))?.slice(7) ?? (err.trim().split("\n").pop() || `import exited with status ${code}`));
    }
  });
  return job;
}

/**
 * Listing models needs a logged-in user; listing and inspecting server folders, importing, deleting and
 * the server's defaults need an admin (the one user of a single-user install is one). No answer carries a
 * server path: folders are named by their import folder's label.
 */
export const modelsRouter = router({
  /** Models a node can use: the seeded reference family (built on first use) and model dirs in the models dir. */
  list: protectedProcedure.query(() =>
    listModels().map((ref) => ({ ref, label: ref.startsWith("uni-moe-tiny/") ? "seeded, untrained" : undefined })),
  ),
  /** Layers and router columns of a model, for the intervention editor. */
  info: protectedProcedure.input(z.object({ ref: z.string().min(1).max(300) })).query(async ({ input }) => {
    try {
      const m = await resolveModel(input.ref);
      const dense = architectureOf(m.config).denseLayers;
      return {
        ref: m.ref,
        layers: m.config.num_hidden_layers,
        /** Decoder indices of the layers with a router (interventions apply to these). */
        moeLayers: dense.flatMap((d, i) => (d ? [] : [i])),
        experts: expertColumns(m.config),
        label: m.label ?? null,
        routing: routingRuleText(m.config),
        controls: routingControls(m.config),
        /** The model's own routing Top-P and top-k (what a null Routing Top-P / top-k override means). */
        topP: m.config.mlp_dynamic_top_p,
        topK: m.config.mlp_dynamic_top_k,
      };
    } catch (err) {
      throw new TRPCError({ code: "NOT_FOUND", message: (err as Error).message });
    }
  }),
  /** Everything the Models page shows about each installed model (seeded ones are not built just to list them). */
  installed: protectedProcedure.query(async ({ ctx }) => {
    const root = modelsDir();
    const { defaults, own } = await effectiveDefaults(ctx.userId);
    const rows = [];
    for (const ref of listModels()) {
      const seeded = ref.startsWith("uni-moe-tiny/");
      const dir = path.join(root, ref);
      const base = { ref, seeded, defaultFor: Object.entries(defaults).filter(([, r]) => r === ref).map(([t]) => t) };
      if (!existsSync(path.join(dir, "config.json"))) {
        rows.push({ ...base, family: "uni-moe-tiny", built: false, label: "seeded, untrained (built on first use)" });
        continue;
      }
      try {
        const m = openModelDir(dir, ref);
        const manifest = readManifest(dir);
        const counts = parameterCounts(m.config);
        rows.push({
          ...base,
          built: true,
          // The folder the model lives in names its family, the same spelling the model ref and the node lists use.
          family: ref.split("/")[0]!,
          label: seeded ? "seeded, untrained" : manifest ? "imported" : "local",
          parameters: counts.total,
          activeParameters: counts.active,
          dtype: manifest?.dtype ?? "fp32",
          quantization: manifest?.quant ? { label: quantLabel(manifest.quant), matrices: manifest.quant.matrices, parameters: manifest.quant.parameters, compute: manifest.quant.accuracyLevel === 4 ? "int8" : "fp32" } : null,
          sizeOnDisk: dirBytes(dir),
          source: displayPath(manifest?.sourceDir ?? dir),
          hash: manifest?.sourceHash ?? m.contentHash,
          convention: conventionText(m.config),
          routing: architectureOf(m.config).routing,
          memoryToRun: estimateFromConfig(m.config, 4096, "fp32", manifest?.quant).bytes,
          memoryToRunFp16: estimateFromConfig(m.config, 4096, "fp16", manifest?.quant).bytes,
          sessions: await loadedSessions(dir),
          unclaimed: manifest?.unclaimed ?? [],
        });
      } catch (err) {
        rows.push({ ...base, built: false, family: "?", label: `unreadable: ${redactPaths((err as Error).message)}` });
      }
    }
    return { models: rows, importRoots: importRoots().map((r) => r.label), nodeTypes: [...MODEL_NODE_TYPES], machineMemory: os.totalmem(), admin: await isAdmin(ctx.userId), ownDefaults: own };
  }),
  /** The graphs the app builds (placement reports are made per graph and provider) and the provider runs use here. */
  graphs: protectedProcedure.query(async () => {
    const runtime = runManager().runtime;
    const ep = await runtime.resolveExecutionProvider();
    return { graphs: listAppGraphs(), executionProvider: providerLabel(ep), preference: runtime.preference, stats: redactStrings(runtime.stats()) };
  }),
  /** Where ONNX Runtime places the nodes of one graph on a provider, and the Memcpy nodes it inserts (from its own log). */
  // admins only: a check builds the graph and loads it in a child process (seconds of CPU and a model's memory)
  placement: adminProcedure.input(z.object({ graph: z.string().min(1).max(400), provider: z.enum(["webgpu", "cuda", "cpu"]) })).mutation(async ({ input }) => {
    try {
      const r = await graphPlacement(input.graph, input.provider);
      return { ...r, memcpy: { ...r.memcpy, sites: r.memcpy.sites.slice(0, 50) } };
    } catch (err) {
      throw new TRPCError({ code: "BAD_REQUEST", message: redactPaths((err as Error).message) });
    }
  }),
  /**
   * Checkpoint folders (with a config.json) inside the import folders, up to two levels deep, then the
   * Hugging Face cache's snapshots by repo id and revision (complete ones only).
   */
  browse: adminProcedure.query(() => {
    const found: { dir: string; modelType: string | null; repoId?: string; revision?: string; refs?: string[] }[] = [];
    const visit = (dir: string, depth: number) => {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      if (!entries.some((e) => e.name === "config.json") && wavTokenizerSource(dir)) found.push({ dir: displayPath(dir), modelType: "wavtokenizer" });
      if (entries.some((e) => e.name === "config.json")) {
        let modelType: string | null = null;
        try {
          modelType = String((JSON.parse(readFileSync(path.join(dir, "config.json"), "utf8")) as { model_type?: string }).model_type ?? null);
        } catch {
          // unreadable config: listed, the inspection will say why
        }
        found.push({ dir: displayPath(dir), modelType });
      }
      if (depth > 0) for (const e of entries) if (e.isDirectory() && !e.name.startsWith(".")) visit(path.join(dir, e.name), depth - 1);
    };
    const hf = config().STUDIO_HF_CACHE === "on" && existsSync(hfCacheDir()) ? realpathSync(hfCacheDir()) : undefined;
    for (const r of importRoots()) if (r.dir !== hf) visit(r.dir, 2);
    for (const c of listHfCache()) if (!c.missing.length) found.push({ dir: displayPath(c.dir), modelType: c.modelType, repoId: c.repoId, revision: c.revision, refs: c.refs });
    return found;
  }),
  /** inspect-checkpoint for a folder: family, tensors claimed, unclaimed and missing. */
  inspect: adminProcedure.input(z.object({ dir: z.string().min(1).max(1000) })).query(({ input }) => {
    const dir = allowedCheckpoint(input.dir);
    try {
      if (!existsSync(path.join(dir, "config.json"))) {
        const c = inspectWavTokenizer(dir);
        const parameters = c.config.codebook_size * c.config.codebook_dim; // plus the backbone, counted on import
        return { family: "wavtokenizer", title: `WavTokenizer decoder (the MoE-TTS codec: ${c.config.codebook_size} codes, ${c.config.sample_rate / c.config.hop_length} codes/s, ${c.config.sample_rate} Hz; ${c.unused} tensors off the decode path are not read)`, tensors: c.tensors, unclaimed: [], missing: c.missing, parameters, activeParameters: { min: parameters, max: parameters }, parts: [] as PartReport[], unusedConfig: [] as { key: string; note: string }[], convention: "", quantization: null, memoryToRun: 0, memoryToRunFp16: 0, memoryToRunInt8: 0, memoryToRunInt4: 0, speech: null };
      }
      const map = inspectCheckpoint(dir);
      return {
        family: map.family.name,
        title: map.family.title,
        tensors: map.tensors.length,
        unclaimed: map.unclaimed.map((t) => t.name),
        missing: map.missing.map((m) => m.expected),
        parts: map.parts,
        unusedConfig: map.unusedConfig,
        activeParameters: parameterCounts(map.config).active,
        parameters: parameterCounts(map.config).total,
        convention: conventionText(map.config),
        quantization: map.fp8Block ? `fp8 (E4M3, ${map.fp8Block.join("×")} block scales), dequantised at import` : map.tensors.some((t) => t.name.endsWith("_blocks") && t.dtype === "U8") ? "MXFP4 experts, dequantised at import" : null,
        memoryToRun: estimateFromConfig(map.config).bytes,
        memoryToRunFp16: estimateFromConfig(map.config, 4096, "fp16").bytes,
        // CPU memory with each quantisation at its default block size (the import records the exact figure)
        memoryToRunInt8: estimateFromConfig(map.config, 4096, "fp32", quantizedShare(map.config, resolveQuant({ kind: "int8" }))).bytes,
        memoryToRunInt4: estimateFromConfig(map.config, 4096, "fp32", quantizedShare(map.config, resolveQuant({ kind: "int4" }))).bytes,
        speech: map.speech ? { parameters: speechParameters(map.speech).total, layers: map.speech.transformer_num_blocks } : null,
      };
    } catch (err) {
      throw new TRPCError({ code: "BAD_REQUEST", message: (err as Error).message });
    }
  }),
  /** MoE-TTS models (seeded and imported released ones) and codecs, with this user's defaults for new MoE-TTS nodes. */
  tts: protectedProcedure.query(async ({ ctx }) => {
    const { defaults: d } = await effectiveDefaults(ctx.userId);
    const speech = listSpeechModels().map((ref) => {
      const m = resolveSpeechRef(ref)!;
      return { ref, parameters: speechParameters(m.config).total, layers: m.config.transformer_num_blocks, source: m.config.source_layout };
    });
    const codecs = listCodecs().map((ref) => {
      const c = resolveCodec(ref);
      return { ref, codes: c.config.codebook_size, sampleRate: c.config.sample_rate, codesPerSecond: c.config.sample_rate / c.config.hop_length };
    });
    return { models: [{ ref: TTS_REFERENCE_REF, parameters: 0, layers: 0, source: "seeded" }, ...speech], codecs, model: d[TTS_MODEL_KEY] ?? TTS_REFERENCE_REF, codec: d[TTS_CODEC_KEY] ?? null };
  }),
  /** The MoE-TTS model and codec for new nodes: the server's (an admin) or this user's own, as setDefault. */
  setTtsDefaults: protectedProcedure
    .input(z.object({ model: z.string().min(1).max(300).optional(), codec: z.string().min(1).max(300).nullable().optional(), scope: z.enum(["server", "own"]).optional() }))
    .mutation(async ({ input, ctx }) => {
      if (input.model !== undefined && input.model !== TTS_REFERENCE_REF && !listSpeechModels().includes(input.model)) throw new TRPCError({ code: "NOT_FOUND", message: `no MoE-TTS "${input.model}"` });
      if (input.codec && !listCodecs().includes(input.codec)) throw new TRPCError({ code: "NOT_FOUND", message: `no codec "${input.codec}"` });
      const scope = await defaultScope(ctx.userId, input.scope);
      if (input.model !== undefined) await setDefault(scope, ctx.userId, TTS_MODEL_KEY, input.model);
      if (input.codec !== undefined) await setDefault(scope, ctx.userId, TTS_CODEC_KEY, input.codec);
      return (await effectiveDefaults(ctx.userId)).defaults;
    }),
  import: adminProcedure
    .input(
      z.object({
        dir: z.string().min(1).max(1000),
        name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/).optional(),
        dtype: z.enum(["fp32", "fp16", "bf16"]).default("fp32"),
        /** Weight-only quantisation (cli import --quant); block size default per kind (models/onnx/quantize.ts resolveQuant). */
        quant: z.object({ kind: z.enum(["int8", "int4"]), blockSize: z.union([z.literal(16), z.literal(32), z.literal(64), z.literal(128)]).optional(), asymmetric: z.boolean().optional() }).optional(),
      }),
    )
    .mutation(({ input }) => {
      const dir = allowedCheckpoint(input.dir);
      if ([...jobs.values()].some((j) => j.state === "running" && j.dir === dir)) throw new TRPCError({ code: "CONFLICT", message: `${input.dir} is already being imported` });
      return { jobId: startImport(dir, input.name, input.dtype, input.quant).id };
    }),
  importStatus: adminProcedure.input(z.object({ jobId: z.string() })).query(({ input }) => {
    const job = jobs.get(input.jobId);
    if (!job) throw new TRPCError({ code: "NOT_FOUND", message: "no such import" });
    return { state: job.state, progress: job.progress ?? null, result: job.result ?? null, error: job.error ?? null, seconds: (Date.now() - job.startedAt) / 1000 };
  }),
  delete: adminProcedure.input(z.object({ ref: z.string().min(1).max(300) })).mutation(async ({ input }) => {
    try {
      await releaseSessions(path.join(modelsDir(), input.ref));
      deleteImportedModel(input.ref);
    } catch (err) {
      throw new TRPCError({ code: "BAD_REQUEST", message: (err as Error).message });
    }
    await forgetDefaultsFor(input.ref);
    return { ok: true };
  }),
  /** This user's default model per node type: their own where set, else the server's (<models dir>/defaults.json). */
  defaults: protectedProcedure.query(async ({ ctx }) => (await effectiveDefaults(ctx.userId)).defaults),
  /**
   * Sets the default model of a node type: an admin sets the server's (everybody's, unless they chose
   * their own), anyone else their own. `scope: "server"` needs an admin.
   */
  setDefault: protectedProcedure
    .input(z.object({ nodeType: z.enum(MODEL_NODE_TYPES), ref: z.string().min(1).max(300).nullable(), scope: z.enum(["server", "own"]).optional() }))
    .mutation(async ({ input, ctx }) => {
      if (input.ref !== null && !listModels().includes(input.ref)) throw new TRPCError({ code: "NOT_FOUND", message: `no model "${input.ref}"` });
      await setDefault(await defaultScope(ctx.userId, input.scope), ctx.userId, input.nodeType, input.ref);
      return (await effectiveDefaults(ctx.userId)).defaults;
    }),
});
