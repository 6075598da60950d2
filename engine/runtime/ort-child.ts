/**
 * ONNX Runtime in a short-lived child process, for what the binding does not expose to JavaScript:
 * its verbose session log (node placement, Memcpy nodes) and the Vulkan loader's report of the device Dawn
 * opened both go to the native stderr, which a process can read only from outside. A child also keeps a
 * driver that fails or hangs while a GPU adapter is requested away from the server. The child's code is a
 * self-contained function (its source is passed to `node -e`), so it runs the same under tsx and Next.
 */
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";

export interface ChildSpec {
  /** "probe": a one-op fp32 and fp16 graph on WebGPU; "session": create (not run) a session of `file` on `ep`. */
  task: "probe" | "session";
  /** base64 ONNX models of the probe: y = relu(x) in fp32, y = x * x in fp16 (task "probe") */
  f32?: string;
  f16?: string;
  file?: string;
  ep?: string;
  /** ONNX Runtime log severity for the session (0 = verbose) */
  severity?: number;
}

export interface ChildResult {
  ok: boolean;
  error?: string;
  /** task "probe": whether the fp16 graph ran (the adapter has shader-f16) and, if not, why */
  shaderF16?: boolean;
  f16Error?: string;
}

/** The child's program. Self-contained: it may use only `load` (require from the project) and its own locals. */
export async function ortChildMain(load: (name: string) => unknown, spec: ChildSpec): Promise<ChildResult> {
  type Ort = {
    InferenceSession: { create(m: unknown, o: unknown): Promise<{ run(f: unknown): Promise<Record<string, { data: ArrayLike<number> }>>; release(): Promise<void> }> };
    Tensor: new (type: string, data: unknown, dims: number[]) => unknown;
  };
  const ort = load("onnxruntime-node") as Ort;
  const message = (e: unknown) => String((e as Error)?.message ?? e);
  if (spec.task === "session") {
    try {
      const s = await ort.InferenceSession.create(spec.file, { executionProviders: [spec.ep], logSeverityLevel: spec.severity ?? 0, logVerbosityLevel: 0, graphOptimizationLevel: "all" });
      await s.release();
      return { ok: true };
    } catch (e) {
      return { ok: false, error: message(e) };
    }
  }
  const model = (b64: string | undefined) => Uint8Array.from(Buffer.from(b64 ?? "", "base64"));
  try {
    const s = await ort.InferenceSession.create(model(spec.f32), { executionProviders: ["webgpu"], logSeverityLevel: 3 });
    const r = await s.run({ x: new ort.Tensor("float32", Float32Array.from([-1, 2]), [2]) });
    const y = r.y!.data;
    if (y[0] !== 0 || y[1] !== 2) return { ok: false, error: `the probe graph computed [${Array.from(y).join(", ")}], expected [0, 2]` };
  } catch (e) {
    return { ok: false, error: message(e) };
  }
  try {
    const s = await ort.InferenceSession.create(model(spec.f16), { executionProviders: ["webgpu"], logSeverityLevel: 3 });
    // fp16 bits of 1 and 2; x * x = 1, 4 (0x3c00, 0x4400)
    const r = await s.run({ x: new ort.Tensor("float16", Uint16Array.from([0x3c00, 0x4000]), [2]) });
    const y = r.y!.data;
    if (y[0] !== 0x3c00 || y[1] !== 0x4400) return { ok: true, shaderF16: false, f16Error: "the fp16 probe graph computed a wrong result" };
    return { ok: true, shaderF16: true };
  } catch (e) {
    return { ok: true, shaderF16: false, f16Error: message(e) };
  }
}

/**
 * A file onnxruntime-node resolves from: the project's package.json (the working directory `npm run` and `next start`
 * use; bundled server code has no useful __dirname), else the running script (the CLI started by its path from
 * elsewhere).
 */
export function ortRequireBase(): string {
  const project = path.join(process.cwd(), "package.json");
  for (const base of [project, process.argv[1]]) {
    if (!base) continue;
    try {
      createRequire(base).resolve("onnxruntime-node");
      return base;
    } catch {
      // not from here
    }
  }
  return project;
}

const SOURCE = (spec: ChildSpec) => `
function __name(fn) { return fn; }
const load = require("node:module").createRequire(${JSON.stringify(ortRequireBase())});
(${ortChildMain.toString()})(load, ${JSON.stringify(spec)})
  .catch((e) => ({ ok: false, error: String((e && e.message) || e) }))
  .then((r) => { process.stdout.write("\\n@@ort-child@@" + JSON.stringify(r) + "\\n", () => process.exit(0)); });
`;

export interface ChildRun {
  result: ChildResult;
  /** everything the child wrote to stderr: ONNX Runtime's log, Dawn's and the Vulkan loader's messages */
  stderr: string;
}

/** Runs `spec` in a child Node process with `env` added to this process's environment. */
export function runOrtChild(spec: ChildSpec, env: Record<string, string> = {}, timeoutMs = 120_000): Promise<ChildRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["-e", SOURCE(spec)], { cwd: process.cwd(), env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], windowsHide: true });
    let out = "";
    let err = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    timer.unref();
    // a child that cannot start (EAGAIN, ENOMEM) is an answer, not an uncaught error that ends this process
    child.on("error", (e) => {
      clearTimeout(timer);
      resolve({ result: { ok: false, error: `ONNX Runtime's process could not start: ${e.message}` }, stderr: err });
    });
    child.stdout.on("data", (d: Buffer) => void (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => void (err += d.toString()));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const line = out.split("\n").find((l) => l.startsWith("@@ort-child@@"));
      let result: ChildResult;
      if (line) result = JSON.parse(line.slice("@@ort-child@@".length)) as ChildResult;
      else if (timedOut) result = { ok: false, error: `ONNX Runtime did not answer within ${Math.round(timeoutMs / 1000)} s` };
      else result = { ok: false, error: `ONNX Runtime's process ended (${signal ?? `status ${code}`}) before it answered: ${lastLines(err)}` };
      resolve({ result, stderr: err });
    });
  });
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-3).join(" | ").slice(0, 600) || "no message";
}
