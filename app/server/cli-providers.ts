/**
 * `providers`: what each ONNX Runtime execution provider can do on this machine (CUDA, WebGPU with its adapter, CPU)
 * and which one STUDIO_EP picks; with --placement, the placement report of the app's graphs on a provider.
 *   npm run cli -- providers [--placement all|<graph id>] [--ep webgpu|cuda|cpu] [--json]
 */
import { parseEpPreference } from "@/engine/runtime/providers";
import { describePlacement } from "@/engine/runtime/placement";
import { chooseProviders, probeCuda } from "@/engine/runtime/select";
import type { ExecutionProvider } from "@/engine/runtime/types";
import { adapterLabel, noAdapterHelp, probeWebGpu } from "@/engine/runtime/webgpu";
import { graphPlacement, listAppGraphs } from "@/models/graphs";
import { parseCommand, UsageError, type CliCommand } from "./cli-args";

export const providersCommand: CliCommand = {
  name: "providers",
  help: `  providers [--placement all|<graph>] [--ep webgpu|cuda|cpu] [--json]
                                            The execution providers here: CUDA (or why not), the WebGPU adapter
                                            (name, backend, software or not, shader-f16) or what to install, and the
                                            one STUDIO_EP picks. --placement: where ONNX Runtime puts each node of the
                                            app's graphs on --ep (default webgpu) and the Memcpy nodes it inserts
                                            (graph ids: "decoder:uni-moe-tiny/tiny", "DiT:uni-moe-tiny/dit", …).`,
  async run(argv) {
    const { values: a, positionals } = parseCommand("providers", argv, { placement: { type: "string" }, ep: { type: "string" }, json: { type: "boolean" } });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const ep = (a.ep ?? "webgpu") as ExecutionProvider;
    if (!["webgpu", "cuda", "cpu"].includes(ep)) throw new UsageError(`--ep must be webgpu, cuda or cpu (got "${a.ep}")`);
    const [cuda, webgpu] = await Promise.all([probeCuda(), probeWebGpu()]);
    const pref = parseEpPreference();
    const chosen = await chooseProviders(pref).then(
      (c) => c.order[0]!,
      (e: unknown) => `none: ${(e as Error).message}`,
    );
    const status = {
      cuda: cuda ? { ok: false, reason: cuda } : { ok: true },
      webgpu: webgpu.ok ? { ok: true, adapter: adapterLabel(webgpu.adapter), ...webgpu.adapter } : { ok: false, reason: webgpu.reason, install: noAdapterHelp() },
      cpu: { ok: true },
      preference: pref,
      chosen,
    };
    if (!a.json) {
      console.log(`cuda    ${cuda ? `unavailable: ${cuda}` : "available"}`);
      if (webgpu.ok) {
        const f16 = webgpu.adapter.shaderF16 ? "shader-f16" : `no shader-f16 (fp32 compute)`;
        console.log(`webgpu  ${adapterLabel(webgpu.adapter)}, ${f16}${webgpu.adapter.driver ? `, driver ${webgpu.adapter.driver}` : ""}${webgpu.adapter.icd ? ` (VK_ICD_FILENAMES=${webgpu.adapter.icd} set by MoE Studio)` : ""}`);
      } else console.log(`webgpu  no adapter: ${webgpu.reason}\n        ${noAdapterHelp()}`);
      console.log("cpu     available");
      console.log(`STUDIO_EP=${pref} → ${chosen}`);
    }
    if (a.placement === undefined) {
      if (a.json) console.log(JSON.stringify(status, null, 2));
      return 0;
    }
    const known = listAppGraphs().map((g) => g.id);
    if (a.placement !== "all" && !known.includes(a.placement)) throw new UsageError(`--placement: unknown graph "${a.placement}" (all, or one of: ${known.join(", ")})`);
    const ids = a.placement === "all" ? known : [a.placement];
    const reports = [];
    for (const id of ids) {
      const r = await graphPlacement(id, ep);
      reports.push(r);
      if (!a.json) console.log(`${id.padEnd(40)} ${describePlacement(r)}${r.cpuFallbacks.length ? ` — on the CPU: ${r.cpuFallbacks.map((f) => `${f.op} ×${f.nodes}`).join(", ")}` : ""}`);
    }
    if (a.json) console.log(JSON.stringify({ ...status, placement: reports }, null, 2));
    return 0;
  },
};
