"use client";
import Link from "next/link";
import { useEffect, useState } from "react";
import { trpc } from "../lib/trpc";

const bytes = (b?: number) => (b === undefined ? "—" : b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : b >= 1e6 ? `${(b / 1e6).toFixed(1)} MB` : `${(b / 1e3).toFixed(0)} kB`);
const count = (n?: number) => (n === undefined ? "—" : n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n.toLocaleString());

function ImportPanel({ onDone }: { onDone: () => void }) {
  const browse = trpc.models.browse.useQuery();
  const [dir, setDir] = useState("");
  const [name, setName] = useState("");
  const [dtype, setDtype] = useState<"fp32" | "fp16" | "bf16">("fp32");
  const [quant, setQuant] = useState<"none" | "int8" | "int4">("none");
  const [block, setBlock] = useState<"auto" | "16" | "32" | "64" | "128">("auto");
  const [jobId, setJobId] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const inspect = trpc.models.inspect.useQuery({ dir }, { enabled: dir !== "", retry: false });
  const start = trpc.models.import.useMutation({ onSuccess: (r) => setJobId(r.jobId), onError: (e) => setError(e.message) });
  const status = trpc.models.importStatus.useQuery({ jobId: jobId ?? "" }, { enabled: jobId !== null, refetchInterval: (q) => (q.state.data?.state === "running" ? 500 : false) });
  const s = status.data;
  useEffect(() => {
    if (s && s.state !== "running") onDone();
  }, [s?.state]); // eslint-disable-line react-hooks/exhaustive-deps
  const frac = s?.progress && s.progress.totalBytes > 0 ? Math.min(1, s.progress.bytes / s.progress.totalBytes) : 0;
  return (
    <section className="import-panel" aria-label="Import a checkpoint">
      <strong>Import a checkpoint</strong>
      <span className="muted">
        Put the downloaded folder (config.json, *.safetensors, tokenizer.json) in an import folder on the server; models already in the Hugging Face cache are listed by repo id {browse.data ? "" : "…"}
      </span>
      <div className="row">
        <select aria-label="Checkpoint folder" value={dir} onChange={(e) => { setDir(e.target.value); setJobId(null); setError(null); }}>
          <option value="">{browse.data?.length ? "Pick a checkpoint folder…" : "No checkpoint folders found"}</option>
          {browse.data?.map((c) => (
            <option key={c.dir} value={c.dir}>
              {c.repoId ? `${c.repoId} @ ${c.revision!.slice(0, 12)}${c.refs?.length ? ` (${c.refs.join(", ")})` : ""} · Hugging Face cache` : c.dir} {c.modelType ? `(${c.modelType})` : ""}
            </option>
          ))}
        </select>
        <input type="text" aria-label="Model name" placeholder="name (default: folder or repo name)" value={name} onChange={(e) => setName(e.target.value)} />
        <select aria-label="Stored dtype" value={dtype} onChange={(e) => setDtype(e.target.value as typeof dtype)}>
          <option value="fp32">fp32 storage</option>
          <option value="fp16">fp16 storage (half the disk; for CUDA, no second copy)</option>
          <option value="bf16">bf16 storage (half the disk)</option>
        </select>
        <select aria-label="Quantisation" value={quant} onChange={(e) => setQuant(e.target.value as typeof quant)} title="Weight-only quantisation of attention, experts and MLPs (ONNX Runtime MatMulNBits); routers, norms, embeddings and the LM head stay in the stored dtype">
          <option value="none">full-precision weights</option>
          <option value="int8">int8 weights</option>
          <option value="int4">int4 weights</option>
        </select>
        {quant !== "none" && (
          <select aria-label="Quantisation block" value={block} onChange={(e) => setBlock(e.target.value as typeof block)}>
            <option value="auto">block {quant === "int4" ? 32 : 128} (default)</option>
            {(["16", "32", "64", "128"] as const).map((b) => (
              <option key={b} value={b}>
                block {b}
              </option>
            ))}
          </select>
        )}
        <button
          className="primary"
          disabled={!dir || start.isPending || s?.state === "running" || !!inspect.data?.missing.length}
          onClick={() => {
            setError(null);
            const q = quant === "none" ? {} : { quant: { kind: quant, ...(block !== "auto" ? { blockSize: Number(block) as 16 | 32 | 64 | 128 } : {}) } };
            start.mutate({ dir, dtype, ...q, ...(name ? { name } : {}) });
          }}
        >
          Import
        </button>
      </div>
      {inspect.data && (
        <div className="muted" data-testid="inspect-summary">
          {inspect.data.family}: {inspect.data.title} · {inspect.data.tensors} tensors · {count(inspect.data.parameters)} params · needs ~{bytes(inspect.data.memoryToRun)} to run on CPU, ~{bytes(inspect.data.memoryToRunFp16)} on CUDA (fp16); as int8 ~{bytes(inspect.data.memoryToRunInt8)}, as int4 ~{bytes(inspect.data.memoryToRunInt4)} on CPU
          {inspect.data.activeParameters.min === inspect.data.activeParameters.max
            ? ` · ${count(inspect.data.activeParameters.min)} active per token`
            : ` · ${count(inspect.data.activeParameters.min)} – ${count(inspect.data.activeParameters.max)} active per token (Top-P: varies per token)`}
          {inspect.data.speech && <div>+ MoE-TTS (speech_generator.*, {inspect.data.speech.layers} layers, {count(inspect.data.speech.parameters)} params): imported as …/speech for the MoE-TTS node</div>}
          {inspect.data.quantization && <div>{inspect.data.quantization}</div>}
          {inspect.data.convention && <div className="sub">{inspect.data.convention}</div>}
          <ul className="parts" data-testid="checkpoint-parts">
            {inspect.data.parts.map((p) => (
              <li key={p.id} data-part={p.id} data-imported={p.imported}>
                <strong>{p.title}</strong>: {p.tensors} tensors, {count(p.parameters)} params{p.unclaimed ? `, ${p.unclaimed} unclaimed` : ""} — {p.what}
              </li>
            ))}
          </ul>
          {inspect.data.unclaimed.length > 0 && <div>Unclaimed (not used): {inspect.data.unclaimed.join(", ")}</div>}
          {inspect.data.unusedConfig.length > 0 && (
            <details data-testid="unused-config">
              <summary>{inspect.data.unusedConfig.length} config.json fields not used (listed, not a problem)</summary>
              <ul>
                {inspect.data.unusedConfig.map((f) => (
                  <li key={f.key}>
                    <code>{f.key}</code>: {f.note}
                  </li>
                ))}
              </ul>
            </details>
          )}
          {inspect.data.missing.length > 0 && <div className="error-text">Missing: {inspect.data.missing.join(", ")}</div>}
        </div>
      )}
      {inspect.error && <div className="error-text">{inspect.error.message}</div>}
      {s && (
        <div className="row" data-testid="import-status">
          <div className="progress" role="progressbar" aria-valuenow={Math.round(frac * 100)} aria-valuemin={0} aria-valuemax={100}>
            <div style={{ width: `${frac * 100}%` }} />
          </div>
          <span className="muted">
            {s.state === "running" && (s.progress ? `${s.progress.phase === "hashing" ? "hashing " : s.progress.phase === "quantising" ? "quantising " : "writing "}${bytes(s.progress.bytes)} / ${bytes(s.progress.totalBytes)}${s.progress.resumedBytes ? ` · resumed at ${bytes(s.progress.resumedBytes)}` : ""}${s.progress.etaSeconds !== undefined ? ` · ETA ${Math.ceil(s.progress.etaSeconds)} s` : ""}` : "starting…")}
            {s.state === "done" && s.result && `${s.result.status === "unchanged" ? "Already imported (same files)" : s.result.build?.resumedBytes ? `Imported (resumed an interrupted import at ${bytes(s.result.build.resumedBytes)})` : "Imported"}: ${s.result.ref}`}
          </span>
        </div>
      )}
      {(error ?? s?.error) && <div className="banner error">{error ?? s?.error}</div>}
    </section>
  );
}

/** The MoE-TTS defaults for new nodes: which speech generator, and which codec turns its codes into audio. */
function TtsPanel() {
  const utils = trpc.useUtils();
  const tts = trpc.models.tts.useQuery();
  const [error, setError] = useState<string | null>(null);
  const save = trpc.models.setTtsDefaults.useMutation({ onSuccess: () => void utils.models.tts.invalidate(), onError: (e) => setError(e.message) });
  const d = tts.data;
  return (
    <section className="import-panel" aria-label="MoE-TTS" data-testid="tts-panel">
      <strong>MoE-TTS</strong>
      <span className="muted">New MoE-TTS nodes start on these. A released MoE-TTS (imported with an Omni checkpoint as …/speech) needs a codec: import a WavTokenizer folder (its .ckpt + yaml) above.</span>
      <div className="row">
        <label>
          TTS model{" "}
          <select aria-label="MoE-TTS model" value={d?.model ?? ""} onChange={(e) => save.mutate({ model: e.target.value })}>
            {d?.models.map((m) => (
              <option key={m.ref} value={m.ref}>
                {m.ref} {m.source === "seeded" ? "(seeded, untrained)" : `(${m.layers} layers, ${count(m.parameters)} params)`}
              </option>
            ))}
          </select>
        </label>
        <label>
          Codec{" "}
          <select aria-label="MoE-TTS codec" value={d?.codec ?? ""} onChange={(e) => save.mutate({ codec: e.target.value || null })}>
            <option value="">{d?.codecs.length ? "none chosen (the seeded TTS uses its own)" : "no codec imported"}</option>
            {d?.codecs.map((c) => (
              <option key={c.ref} value={c.ref}>
                {c.ref} ({c.codes} codes, {c.codesPerSecond}/s, {c.sampleRate} Hz)
              </option>
            ))}
          </select>
        </label>
      </div>
      {error && <div className="banner error">{error}</div>}
    </section>
  );
}

type Provider = "webgpu" | "cuda" | "cpu";
type Placement = NonNullable<ReturnType<typeof trpc.models.placement.useMutation>["data"]>;

function PlacementRow({ id, family, model, provider }: { id: string; family: string; model: string; provider: Provider }) {
  const [reports, setReports] = useState<Partial<Record<Provider, Placement>>>({});
  const run = trpc.models.placement.useMutation({ onSuccess: (r) => setReports((x) => ({ ...x, [r.provider]: r })) });
  const r = reports[provider];
  const copies = r ? r.memcpy.fromHost + r.memcpy.toHost : 0;
  return (
    <tr data-graph={id}>
      <td>{family}</td>
      <td className="ref">{model}</td>
      <td>
        <button disabled={run.isPending} onClick={() => run.mutate({ graph: id, provider })}>
          {run.isPending ? "Checking…" : `Check on ${provider}`}
        </button>
      </td>
      <td data-testid="placement-result">
        {run.error && <span className="banner error">{run.error.message}</span>}
        {r && (
          <>
            <div data-testid="placement-summary" data-memcpy={copies} data-providers={r.byProvider.length}>
              {r.byProvider.map((p) => `${p.nodes} on ${p.provider.replace("ExecutionProvider", "")}`).join(" · ")} ·{" "}
              <strong className={copies ? "warn" : ""}>{copies ? `${r.memcpy.fromHost} MemcpyFromHost, ${r.memcpy.toHost} MemcpyToHost inside the graph` : "no Memcpy inside the graph"}</strong>
            </div>
            {r.adapter && <div className="sub">adapter: {r.adapter}</div>}
            {r.cpuFallbacks.length > 0 && (
              <details>
                <summary className="sub">on the CPU: {r.cpuFallbacks.map((f) => `${f.op} ×${f.nodes}`).join(", ")}</summary>
                <table className="models-table">
                  <thead>
                    <tr>
                      <th>op</th>
                      <th>nodes</th>
                      <th>no {provider} kernel</th>
                      <th>kept on CPU by ORT</th>
                    </tr>
                  </thead>
                  <tbody>
                    {r.cpuFallbacks.map((f) => (
                      <tr key={f.op}>
                        <td>{f.op}</td>
                        <td className="num">{f.nodes}</td>
                        <td className="num">{f.noKernel}</td>
                        <td className="num">{f.preferredOnCpu}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                {copies > 0 && <div className="sub">copies at: {r.memcpy.sites.slice(0, 12).map((c) => `${c.kind === "MemcpyFromHost" ? "→GPU after" : "→CPU before"} ${c.tensor}`).join(", ")}{r.memcpy.sites.length > 12 ? ", …" : ""}</div>}
              </details>
            )}
          </>
        )}
      </td>
    </tr>
  );
}

/** Placement report: where ONNX Runtime puts each graph's nodes on a provider, from its own session log. */
function PlacementPanel() {
  const graphs = trpc.models.graphs.useQuery();
  const [provider, setProvider] = useState<Provider>("webgpu");
  return (
    <section className="import-panel" aria-label="Placement" data-testid="placement-panel">
      <strong>Graphs and providers</strong>
      <span className="muted">
        Runs here use <span className="ep-tag" data-testid="models-ep">{graphs.data?.executionProvider ?? "…"}</span> (STUDIO_EP={graphs.data?.preference ?? "…"}
        {graphs.data?.stats.webgpuUnavailable ? `; WebGPU not used by auto: ${graphs.data.stats.webgpuUnavailable}` : ""}). A check creates a session of the graph on the provider and reads ONNX Runtime&apos;s log: nodes per
        provider, and the Memcpy nodes it inserts where a node falls back to the CPU (the first check on a software GPU takes a few seconds).
      </span>
      <label className="row">
        Provider{" "}
        <select aria-label="Placement provider" value={provider} onChange={(e) => setProvider(e.target.value as Provider)}>
          <option value="webgpu">webgpu</option>
          <option value="cuda">cuda</option>
          <option value="cpu">cpu</option>
        </select>
      </label>
      <table className="models-table" data-testid="placement-table">
        <thead>
          <tr>
            <th>Graph</th>
            <th>Model</th>
            <th />
            <th>Placement</th>
          </tr>
        </thead>
        <tbody>
          {graphs.data?.graphs.map((g) => (
            <PlacementRow key={g.id} {...g} provider={provider} />
          ))}
        </tbody>
      </table>
      {graphs.error && <div className="banner error">{graphs.error.message}</div>}
    </section>
  );
}

export function ModelsPage() {
  const utils = trpc.useUtils();
  const installed = trpc.models.installed.useQuery();
  const [error, setError] = useState<string | null>(null);
  const refresh = () => {
    void utils.models.installed.invalidate();
    void utils.models.list.invalidate();
    void utils.models.tts.invalidate();
  };
  const del = trpc.models.delete.useMutation({ onSuccess: refresh, onError: (e) => setError(e.message) });
  const setDefault = trpc.models.setDefault.useMutation({ onSuccess: refresh, onError: (e) => setError(e.message) });
  const data = installed.data;
  return (
    <main className="page" style={{ maxWidth: 1200 }}>
      <p>
        <Link href="/">← Workflows</Link>
      </p>
      <h1>Models</h1>
      <p className="muted">
        Seeded reference models show the mechanics (their weights are random, not trained). Import a real checkpoint to inspect its routing. Import folders: {data?.importRoots.join(", ") ?? "…"}
      </p>
      <p className="muted">
        How to bring a checkpoint and what the import does: <Link href="/docs/models#run-a-real-model">Models and import</Link>; CPU, WebGPU and CUDA:{" "}
        <Link href="/docs/gpu-providers">GPU providers</Link>.
      </p>
      {error && <div className="banner error">{error}</div>}
      {data?.admin && <ImportPanel onDone={refresh} />}
      {data && !data.admin && (
        <p className="muted" data-testid="models-not-admin">
          Only an admin of this server imports and deletes models and sets everybody&apos;s defaults; the defaults you tick here are yours alone.
        </p>
      )}
      <TtsPanel />
      {data?.admin && <PlacementPanel />}
      <table className="models-table" data-testid="models-table">
        <thead>
          <tr>
            <th>Model</th>
            <th>Family</th>
            <th>Params</th>
            <th>Active / token</th>
            <th>dtype</th>
            <th>On disk</th>
            <th>Needs to run</th>
            <th>Source · hash</th>
            <th>Default for</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {data?.models.map((m) => (
            <tr key={m.ref} data-ref={m.ref}>
              <td>
                <span className="ref">{m.ref}</span>
                <span className={`tag ${m.seeded ? "seeded" : m.label === "imported" ? "imported" : ""}`}>{m.seeded ? "seeded, untrained" : m.label}</span>
                {"convention" in m && <div className="sub">{m.convention}</div>}
                {"sessions" in m && m.sessions && m.sessions.length > 0 && <div className="sub">loaded on {m.sessions.map((s) => `${s.provider} ${s.computeDtype} (+${bytes(s.memoryBytes)})`).join(", ")}</div>}
              </td>
              <td>{m.family}</td>
              <td className="num">{"parameters" in m ? count(m.parameters) : "—"}</td>
              <td className="num" data-testid="active-parameters" title={"activeParameters" in m && m.activeParameters.min !== m.activeParameters.max ? "Top-P routing: a token runs a varying number of routed experts. The Routing Inspector gives the expectation for a trace." : undefined}>
                {"activeParameters" in m ? (m.activeParameters.min === m.activeParameters.max ? count(m.activeParameters.min) : `${count(m.activeParameters.min)} – ${count(m.activeParameters.max)}`) : "—"}
              </td>
              <td data-testid="model-dtype">
                {"dtype" in m ? m.dtype : "—"}
                {"quantization" in m && m.quantization && (
                  <div className="sub" title={`${m.quantization.matrices} matrices (${count(m.quantization.parameters)} params) run as MatMulNBits with ${m.quantization.compute} compute; routers, norms, embeddings and the LM head keep ${m.dtype}`}>
                    {m.quantization.label}
                  </div>
                )}
              </td>
              <td className="num">{"sizeOnDisk" in m ? bytes(m.sizeOnDisk) : "—"}</td>
              <td className="num" title="fp32 compute on CPU / fp16 compute on CUDA (weights + KV cache for 4,096 tokens + 15 %)">
                {"memoryToRun" in m ? (
                  <>
                    {bytes(m.memoryToRun)} <span className="sub">CPU</span>
                    <div className="sub">{bytes(m.memoryToRunFp16)} CUDA fp16</div>
                  </>
                ) : (
                  "—"
                )}
              </td>
              <td>
                {"source" in m ? <div className="sub">{m.source}</div> : <span className="muted">{m.label}</span>}
                {"hash" in m && <div className="sub" title={m.hash}>{m.hash?.slice(0, 16)}</div>}
              </td>
              <td>
                {data.nodeTypes.map((t) => (
                  <label key={t} className="sub" style={{ display: "block" }}>
                    <input type="checkbox" checked={m.defaultFor.includes(t)} onChange={(e) => setDefault.mutate({ nodeType: t, ref: e.target.checked ? m.ref : null })} /> {t}
                    {m.defaultFor.includes(t) && data.ownDefaults.includes(t) && " (yours)"}
                  </label>
                ))}
              </td>
              <td>
                {m.label === "imported" && data.admin && (
                  <button className="danger" onClick={() => window.confirm(`Delete ${m.ref}? (the checkpoint folder is kept)`) && del.mutate({ ref: m.ref })}>
                    Delete
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {installed.isLoading && <p className="muted">Loading…</p>}
      {installed.error && <div className="banner error">{installed.error.message}</div>}
    </main>
  );
}
