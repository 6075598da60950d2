import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { decodeSafetensors } from "@/engine/safetensors";
import { traceToJSON } from "@/engine/routing/export";
import { computeMetrics } from "@/engine/routing/metrics";
import { RoutingAggregate, recordGroup } from "@/engine/routing/aggregate";
import { aggregateToSafetensors, traceToSafetensors } from "@/engine/routing/safetensors-export";
import { syntheticTrace } from "@/engine/routing/synthetic";
import { readSafetensorsHeader, SafetensorsFile } from "@/models/io/safetensors";

const ROOT = path.resolve(__dirname, "../../..");
const dir = mkdtempSync(path.join(os.tmpdir(), "trace-st-"));

function traceWithBan() {
  const t = syntheticTrace({ seed: 11, layers: 5, tokens: 37, routed: 6, nulls: 1, shared: 2 });
  // A banned expert's logit is -inf; the export must keep it.
  t.layers[2]!.routerLogits[3] = -Infinity;
  t.tokens[4] = { ...t.tokens[4]!, text: 'quote " and ☃ and \n newline' };
  return t;
}

const python = spawnSync("python3", ["-c", "import numpy"], { encoding: "utf8" }).status === 0;

describe("routing traces as safetensors", () => {
  it("read back (TypeScript): every array equals the JSON trace's, metadata names model, convention, experts, tokens", () => {
    const trace = traceWithBan();
    const bytes = traceToSafetensors(trace, { workflowFingerprint: "f".repeat(64) });
    const file = path.join(dir, "t.safetensors");
    writeFileSync(file, bytes);
    const json = traceToJSON(trace);
    const L = trace.layers.length, N = trace.tokens.length, E = trace.experts.length;
    // The models/ reader (the importer's) agrees on the header; the in-memory decoder gives the values.
    const header = readSafetensorsHeader(file);
    expect(header.tensors.get("router_logits")).toMatchObject({ dtype: "F32", shape: [L, N, E] });
    expect(header.tensors.get("mask")).toMatchObject({ dtype: "U8", shape: [L, N, E] });
    expect(header.tensors.get("k")).toMatchObject({ dtype: "I32", shape: [L, N] });
    const sf = SafetensorsFile.open(file);
    expect(sf.read("weights").shape).toEqual([L, N, E]);
    sf.close();
    const { metadata, tensors } = decodeSafetensors(bytes);
    let maxDiff = 0;
    for (let l = 0; l < L; l++) {
      const jl = json.layers[l]!;
      for (let i = 0; i < N * E; i++) {
        const z = jl.routerLogits[i]!;
        const want = typeof z === "number" ? z : z === "-Infinity" ? -Infinity : z === "Infinity" ? Infinity : NaN;
        const got = tensors.get("router_logits")!.data[l * N * E + i]!;
        if (Number.isFinite(want)) maxDiff = Math.max(maxDiff, Math.abs(got - Math.fround(want)), Math.abs(tensors.get("weights")!.data[l * N * E + i]! - Math.fround(jl.weights[i]!)));
        else expect(got).toBe(want);
        expect(tensors.get("mask")!.data[l * N * E + i]).toBe(jl.mask[i]);
      }
      expect(Array.from(tensors.get("k")!.data.subarray(l * N, (l + 1) * N))).toEqual(jl.k);
    }
    console.log(`safetensors vs JSON trace: max |Δ| ${maxDiff}`);
    expect(maxDiff).toBe(0); // the JSON's shortest decimals read back to the same float32 values
    expect(tensors.get("router_logits")!.data[2 * N * E + 3]).toBe(-Infinity);
    expect(Array.from(tensors.get("token_ids")!.data)).toEqual(json.tokens.map((t) => t.id));
    expect(Array.from(tensors.get("positions")!.data)).toEqual(json.tokens.flatMap((t) => t.position));
    expect(metadata).toMatchObject({ format: "moe-studio/routing-trace", version: "1", model: trace.model, convention: trace.convention, workflow_fingerprint: "f".repeat(64) });
    expect(JSON.parse(metadata.experts!)).toEqual(json.experts);
    expect(JSON.parse(metadata.tokens!)).toEqual(json.tokens.map((t) => ({ text: t.text, modality: t.modality, phase: t.phase })));
  });

  it("an aggregate: counts per group (all, then each task) equal the aggregate's own metrics", () => {
    const a = syntheticTrace({ seed: 1, layers: 3, tokens: 20 });
    const b = syntheticTrace({ seed: 2, layers: 3, tokens: 9 });
    const agg = new RoutingAggregate(a.experts, 3).add(a, { group: recordGroup("math", "") }).add(b, { group: recordGroup("=code", "x") });
    const { metadata, tensors } = decodeSafetensors(aggregateToSafetensors(agg, { workflowFingerprint: "w", datasetFingerprint: "d" }));
    const tasks = JSON.parse(metadata.tasks!) as string[];
    expect(tasks.sort()).toEqual(["=code", "math"]);
    const D = agg.metrics().experts.dynamic.length;
    expect(tensors.get("selection_counts")!.shape).toEqual([3, 3, D]);
    expect(Array.from(tensors.get("tokens")!.data)).toEqual([29, ...tasks.map((t) => (t === "math" ? 20 : 9))]);
    const m = agg.metrics();
    expect(Array.from(tensors.get("selection_counts")!.data.subarray(D, 2 * D))).toEqual(m.layers[1]!.selectionCounts);
    expect(Array.from(tensors.get("k_counts")!.data.subarray(0, D + 2))).toEqual(m.layers[0]!.kCounts);
    expect(metadata).toMatchObject({ format: "moe-studio/routing-aggregate", workflow_fingerprint: "w", dataset_fingerprint: "d" });
  });

  it.skipIf(!python)("read with Python's numpy through a reader written from the safetensors spec, and the README's Fig. 7 snippet", () => {
    const trace = traceWithBan();
    writeFileSync(path.join(dir, "routing-trace.safetensors"), traceToSafetensors(trace));
    writeFileSync(path.join(dir, "trace.json"), JSON.stringify(traceToJSON(trace)));
    // Stand-ins (no PyPI here): `safetensors` implemented from the format's spec with numpy, and recorders
    // for the pandas DataFrame / matplotlib calls the snippet makes.
    const lib = path.join(dir, "pylib");
    mkdirSync(path.join(lib, "safetensors"), { recursive: true });
    mkdirSync(path.join(lib, "matplotlib"), { recursive: true });
    writeFileSync(path.join(lib, "safetensors", "__init__.py"), `import json, struct
def _header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), 8 + n
class safe_open:
    def __init__(self, path, framework):
        self._h, _ = _header(path)
    def metadata(self):
        return self._h.get("__metadata__", {})
`);
    writeFileSync(path.join(lib, "safetensors", "numpy.py"), `import numpy as np
from . import _header
_DT = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "U8": "u1"}
def load_file(path):
    h, start = _header(path)
    raw = open(path, "rb").read()
    return {k: np.frombuffer(raw[start + v["data_offsets"][0]:start + v["data_offsets"][1]], dtype=_DT[v["dtype"]]).reshape(v["shape"]) for k, v in h.items() if k != "__metadata__"}
`);
    writeFileSync(path.join(lib, "pandas.py"), `import numpy as np
calls = []
class _Plot:
    def __init__(self, df): self.df = df
    def bar(self, **kw): calls.append(("bar", kw))
class DataFrame:
    def __init__(self, values, columns):
        self.values, self.columns = np.asarray(values), list(columns)
        self.plot = _Plot(self)
`);
    writeFileSync(path.join(lib, "matplotlib", "__init__.py"), "");
    writeFileSync(path.join(lib, "matplotlib", "pyplot.py"), "def show(): pass\n");
    const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
    const block = /<!-- snippet:fig7 -->\n\s*```python\n([\s\S]*?)\n\s*```\n\s*<!-- \/snippet:fig7 -->/.exec(readme);
    expect(block, "README snippet:fig7").not.toBeNull();
    const snippet = block![1]!.split("\n").map((l) => l.replace(/^  /, "")).join("\n");
    const check = `${snippet}
import json as _json, numpy as _np, pandas as _pd
out = {"fig7": fig7.values.tolist(), "columns": fig7.columns, "calls": [c[0] for c in _pd.calls]}
# The arrays against the JSON trace, independently of the snippet.
j = _json.load(open("trace.json"))
f = lambda v: float(v) if not isinstance(v, str) else float(v.replace("Infinity", "inf"))
d = 0.0
for l, jl in enumerate(j["layers"]):
    z = _np.array([f(v) for v in jl["routerLogits"]], dtype=_np.float32).reshape(t["router_logits"][l].shape)
    fin = _np.isfinite(z)
    assert (_np.isfinite(t["router_logits"][l]) == fin).all() and (t["router_logits"][l][~fin] == z[~fin]).all()
    d = max(d, float(_np.abs(t["router_logits"][l][fin] - z[fin]).max()), float(_np.abs(t["weights"][l] - _np.array(jl["weights"], dtype=_np.float32).reshape(z.shape)).max()))
    assert (t["mask"][l].ravel() == _np.array(jl["mask"])).all() and (t["k"][l] == _np.array(jl["k"])).all()
assert t["mask"].dtype == _np.uint8 and t["k"].dtype == _np.int32 and t["router_logits"].dtype == _np.float32
assert (t["token_ids"] == [tok["id"] for tok in j["tokens"]]).all() and (t["positions"] == [tok["position"] for tok in j["tokens"]]).all()
assert json.loads(meta["tokens"])[4]["text"] == j["tokens"][4]["text"]
out["maxDiff"] = d
print(_json.dumps(out))
`;
    writeFileSync(path.join(dir, "check.py"), check);
    const r = spawnSync("python3", ["check.py"], { cwd: dir, encoding: "utf8", env: { ...process.env, PYTHONPATH: lib } });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { fig7: number[][]; columns: string[]; calls: string[]; maxDiff: number };
    console.log(`Python (numpy) vs JSON trace: max |Δ| ${out.maxDiff}`);
    expect(out.maxDiff).toBe(0);
    const m = computeMetrics(trace);
    expect(out.columns).toEqual(m.experts.dynamic.map((e) => e.name));
    let figDiff = 0;
    m.layers.forEach((l, li) => l.selectionShare.forEach((v, d) => (figDiff = Math.max(figDiff, Math.abs(out.fig7[li]![d]! - v)))));
    console.log(`README Fig. 7 snippet vs the inspector's selection share: max |Δ| ${figDiff}`);
    expect(figDiff).toBeLessThan(1e-12);
    expect(out.calls).toEqual(["bar"]);
  });
});
