/**
 * ONNX Runtime's WebGPU execution provider (Dawn, compiled into onnxruntime-node): which adapter it gets.
 *
 * Dawn drives the GPU through Vulkan on Linux, Metal on macOS and D3D12 on Windows. ONNX Runtime does not
 * tell JavaScript which adapter it opened, so a probe in a child process (ort-child.ts) runs a one-op graph
 * in fp32 and one in fp16 on WebGPU. On Linux the child runs with `VK_LOADER_DEBUG=driver`, and the Vulkan
 * loader's own line `Using "<device>" with driver: "<library>"` (written when Dawn creates its device) names
 * the adapter; on macOS and Windows the backend is known and the device name is not reported.
 *
 * Software GPU: when Dawn finds no adapter with the system's Vulkan drivers (none installed, or Mesa's
 * lavapipe of Debian 12, which lacks what Dawn requires) and the user has set neither VK_ICD_FILENAMES nor
 * VK_DRIVER_FILES, the probe tries SwiftShader's Vulkan driver that Debian's chromium package ships, and if
 * that works sets VK_ICD_FILENAMES for this process (before any WebGPU session of it exists: Dawn reads the
 * drivers once per process). A user's own setting is never overridden.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { onnx } from "onnx-proto";
import { runOrtChild, type ChildRun } from "./ort-child";

export type WebGpuBackend = "Vulkan" | "Metal" | "D3D12";

export interface WebGpuAdapter {
  /** The device as its driver names it (Linux); undefined where it cannot be told (macOS, Windows). */
  name?: string;
  backend: WebGpuBackend;
  /** The driver library (Linux) */
  driver?: string;
  /** A CPU implementation of the GPU API (SwiftShader, lavapipe, WARP): correct, and slow. */
  software: boolean;
  /** The adapter has WebGPU's `shader-f16` feature (fp16 graphs can run). */
  shaderF16: boolean;
  /** Why fp16 does not run, when it does not. */
  f16Reason?: string;
  /** The Vulkan driver manifest this process set VK_ICD_FILENAMES to (SwiftShader), if it did. */
  icd?: string;
}

export type WebGpuProbe = { ok: true; adapter: WebGpuAdapter } | { ok: false; reason: string };

/** SwiftShader's Vulkan driver manifest as Debian's (and Ubuntu's) chromium packages install it. */
export const SWIFTSHADER_ICDS = ["/usr/lib/chromium/vk_swiftshader_icd.json", "/usr/lib/chromium-browser/vk_swiftshader_icd.json"];

export function webGpuBackend(platform: NodeJS.Platform = process.platform): WebGpuBackend {
  return platform === "darwin" ? "Metal" : platform === "win32" ? "D3D12" : "Vulkan";
}

const SOFTWARE = /swiftshader|llvmpipe|lavapipe|libvulkan_lvp|softpipe|microsoft basic render|\bwarp\b/i;

export function isSoftwareAdapter(name: string | undefined, driver?: string): boolean {
  return SOFTWARE.test(name ?? "") || SOFTWARE.test(driver ?? "");
}

/** The device Dawn opened, from the Vulkan loader's `VK_LOADER_DEBUG=driver` output (the last device created). */
export function parseVulkanLoaderLog(text: string): { name: string; driver: string } | undefined {
  const all = [...text.matchAll(/Using "([^"\n]+)" with driver: "([^"\n]+)"/g)];
  const last = all[all.length - 1];
  return last ? { name: last[1]!, driver: path.normalize(last[2]!) } : undefined;
}

/** "SwiftShader Device (Subzero) (Vulkan, software)", "NVIDIA GeForce RTX 4090 (Vulkan)", "WebGPU adapter (Metal)". */
export function adapterLabel(a: WebGpuAdapter): string {
  return `${a.name ?? "WebGPU adapter"} (${a.backend}${a.software ? ", software" : ""})`;
}

/** What to install when no adapter is found. */
export function noAdapterHelp(platform: NodeJS.Platform = process.platform): string {
  if (platform === "darwin") return "WebGPU uses Metal on macOS 13 or later (Apple silicon or a Metal-capable GPU)";
  if (platform === "win32") return "WebGPU uses D3D12 on Windows 10/11: install your GPU vendor's current driver";
  return (
    "WebGPU needs the Vulkan loader and a Vulkan driver: `apt-get install libvulkan1` plus your GPU's driver (NVIDIA's proprietary " +
    "driver, or Mesa's `mesa-vulkan-drivers` for AMD/Intel), or, for a software GPU with no hardware, `apt-get install chromium` " +
    "(it ships SwiftShader's Vulkan driver, which this app uses when no other adapter works)"
  );
}

let probeBytes: { f32: string; f16: string } | undefined;
/** y = relu(x) in fp32 and y = x * x in fp16, [2] each. */
function probeModels(): { f32: string; f16: string } {
  const T = onnx.TensorProto.DataType;
  const model = (elemType: number, node: onnx.INodeProto) => {
    const vi = (name: string) => ({ name, type: { tensorType: { elemType, shape: { dim: [{ dimValue: 2 }] } } } });
    const bytes = onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }], graph: { name: "probe", node: [node], input: [vi("x")], output: [vi("y")] } }).finish();
    return Buffer.from(bytes).toString("base64");
  };
  probeBytes ??= { f32: model(T.FLOAT, { opType: "Relu", input: ["x"], output: ["y"] }), f16: model(T.FLOAT16, { opType: "Mul", input: ["x", "x"], output: ["y"] }) };
  return probeBytes;
}

async function probeWith(env: Record<string, string>): Promise<WebGpuProbe> {
  const run: ChildRun = await runOrtChild({ task: "probe", ...probeModels() }, { VK_LOADER_DEBUG: "driver", ...env }, 60_000);
  if (!run.result.ok) return { ok: false, reason: cleanOrtError(run.result.error ?? "unknown error", run.stderr) };
  const backend = webGpuBackend();
  const device = backend === "Vulkan" ? parseVulkanLoaderLog(run.stderr) : undefined;
  const adapter: WebGpuAdapter = {
    backend,
    software: isSoftwareAdapter(device?.name, device?.driver),
    shaderF16: !!run.result.shaderF16,
    ...(device ? { name: device.name, driver: device.driver } : {}),
    ...(run.result.shaderF16 ? {} : { f16Reason: cleanOrtError(run.result.f16Error ?? "unknown", "") }),
  };
  return { ok: true, adapter };
}

/** ORT's message without its source location prefix, plus Dawn's own warning when it said why. */
function cleanOrtError(message: string, stderr: string): string {
  const core = message
    .replace(/^.*?(Failed to get a WebGPU adapter)/s, "$1")
    .replace(/^Non-zero status code returned while running .*? Status Message: /s, "")
    .replace(/^\S+\.cc:\d+ \S+ /, "")
    .trim();
  const dawn = stderr
    .split("\n")
    .filter((l) => /^Warning: /.test(l))
    .map((l) => l.replace(/^Warning: /, "").trim());
  return dawn.length > 0 ? `${core} (${[...new Set(dawn)].slice(0, 2).join("; ")})` : core;
}

let probe: Promise<WebGpuProbe> | undefined;
let probed: WebGpuProbe | undefined;

/** Finds the WebGPU adapter once per process (see the file comment for the SwiftShader fallback). */
export function probeWebGpu(): Promise<WebGpuProbe> {
  probe ??= (async () => {
    const first = await probeWith({});
    const userSet = !!(process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES);
    if (first.ok || process.platform !== "linux" || userSet) return (probed = first);
    const icd = SWIFTSHADER_ICDS.find((f) => existsSync(f));
    if (!icd) return (probed = first);
    const second = await probeWith({ VK_ICD_FILENAMES: icd });
    if (!second.ok) return (probed = { ok: false, reason: `${first.reason}; with SwiftShader (${icd}): ${second.reason}` });
    process.env.VK_ICD_FILENAMES = icd;
    return (probed = { ok: true, adapter: { ...second.adapter, icd } });
  })();
  return probe;
}

/** The probe's answer if it has finished (for labels); undefined before. */
export function webGpuProbed(): WebGpuProbe | undefined {
  return probed;
}

/** Whether the probed adapter runs fp16 graphs (false before the probe, and without an adapter). */
export function webGpuShaderF16(): boolean {
  return probed?.ok === true && probed.adapter.shaderF16;
}

/** "webgpu · SwiftShader Device (Subzero) (Vulkan, software)" once the adapter is known; other providers as they are. */
export function providerLabel(ep: string): string {
  return ep === "webgpu" && probed?.ok ? `webgpu · ${adapterLabel(probed.adapter)}` : ep;
}

/**
 * Whether `auto` should look for a WebGPU adapter at all: on Linux only when a Vulkan driver for real hardware
 * is installed (a manifest in the loader's standard folders that is not a software driver), or the user named
 * drivers; `auto` never picks a software adapter, so it need not start a probe to find SwiftShader.
 */
export function mayHaveHardwareAdapter(platform: NodeJS.Platform = process.platform, env: Record<string, string | undefined> = process.env): boolean {
  if (platform !== "linux") return true;
  if (env.VK_ICD_FILENAMES || env.VK_DRIVER_FILES) return true;
  const dataDirs = (env.XDG_DATA_DIRS || "/usr/local/share:/usr/share").split(":");
  const dirs = ["/etc/vulkan/icd.d", ...dataDirs.map((d) => path.join(d, "vulkan", "icd.d"))];
  for (const dir of dirs) {
    let files: string[];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith(".json"));
    } catch {
      continue;
    }
    for (const f of files) {
      try {
        const lib = (JSON.parse(readFileSync(path.join(dir, f), "utf8")) as { ICD?: { library_path?: string } }).ICD?.library_path ?? "";
        if (!isSoftwareAdapter(undefined, lib)) return true;
      } catch {
        // an unreadable manifest is the loader's problem, not a hardware driver
      }
    }
  }
  return false;
}
