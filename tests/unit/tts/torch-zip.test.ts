/**
 * The safe torch-checkpoint reader (models/import/torch-zip.ts) on checkpoints written in torch.save's zip layout by
 * tests/unit/tts/torch-ckpt-writer.ts (torch is not installed here). The generated files are first checked against
 * the formats with Python's own zipfile (CRC, stored entries) and pickle modules (a restricted Unpickler that maps
 * the torch/collections globals to stand-ins and records the persistent ids), so the reader is tested on files
 * Python reads the way torch.load would.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TorchCheckpoint, unpickle } from "@/models/import/torch-zip";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "@/models/io/safetensors";
import { SeededRandom } from "@/models/io/seeded-random";
import type { Tensor32 } from "@/models/io/weights";
import { lightningCheckpoint, writeTorchCheckpoint } from "./torch-ckpt-writer";

const tmp = mkdtempSync(path.join(os.tmpdir(), "torch-zip-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function tensors(seed: number): Map<string, Tensor32> {
  const r = new SeededRandom(seed);
  const t = (shape: number[]) => ({ shape, data: r.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1))) });
  return new Map([
    ["feature_extractor.encodec.quantizer.vq.layers.0._codebook.embed", t([16, 4])],
    ["backbone.embed.weight", t([8, 4, 7])],
    ["backbone.embed.bias", t([8])],
    ["head.istft.window", t([12])],
    ...Array.from({ length: 300 }, (_, i) => [`discriminators.${i}.w`, t([2, 3])] as [string, Tensor32]), // > 256 memo slots
  ]);
}

const PY_CHECK = `
import sys, zipfile, pickle, collections, json
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None, "bad CRC"
assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
rec = [n for n in z.namelist() if n.endswith("/data.pkl")][0][:-8]
class Storage:
    def __init__(self, name): self.name = name
class U(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"): return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, rg, hooks: ("tensor", storage, offset, list(size), list(stride))
        if module == "torch" and name.endswith("Storage"): return Storage(name)
        if (module, name) == ("pathlib", "PosixPath"): return lambda *a: ("path", a)
        raise pickle.UnpicklingError(f"global {module}.{name}")
    def persistent_load(self, pid):
        kind, st, key, loc, numel = pid
        assert kind == "storage" and loc == "cpu"
        data = z.read(rec + "data/" + key)
        size = {"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2}[st.name]
        assert len(data) == numel * size, (key, len(data), numel)
        return (st.name, key, numel)
root = U(z.open(rec + "data.pkl")).load()
sd = root["state_dict"]
assert isinstance(sd, collections.OrderedDict)
print(json.dumps({"n": len(sd), "first": list(sd.items())[0][1][3], "epoch": root["epoch"], "version": z.read(rec + "version").decode()}))
`;

describe("safe torch checkpoint reader", () => {
  for (const dtype of ["F32", "F16", "BF16"] as const) {
    it(`a Lightning-style ${dtype} checkpoint: Python's zipfile/pickle read the generated file; the reader returns its state_dict exactly`, () => {
      const sd = tensors(dtype.length);
      const file = path.join(tmp, `wavtokenizer_${dtype}.ckpt`);
      writeTorchCheckpoint(file, lightningCheckpoint(sd, dtype), `wavtokenizer_${dtype}`);
      const py = spawnSync("python3", ["-c", PY_CHECK, file], { encoding: "utf8" });
      expect(py.stderr).toBe("");
      expect(JSON.parse(py.stdout)).toEqual({ n: sd.size, first: [16, 4], epoch: 12, version: "3\n" });

      const ck = new TorchCheckpoint(file);
      try {
        expect(ck.names().sort()).toEqual([...sd.keys()].sort());
        const round = (x: number) => (dtype === "F32" ? Math.fround(x) : dtype === "F16" ? f16BitsToF32(f32ToF16Bits(x)) : bf16BitsToF32(f32ToBf16Bits(x)));
        for (const [name, t] of sd) {
          const got = ck.get(name);
          expect(got.shape).toEqual(t.shape);
          expect(Array.from(got.data)).toEqual(Array.from(t.data, round));
        }
        expect(ck.info("backbone.embed.weight")).toEqual({ shape: [8, 4, 7], dtype });
      } finally {
        ck.close();
      }
    });
  }

  it("never runs or resolves globals: an unknown one (pathlib.PosixPath) stays inert; strict mode refuses it; a non-tensor is named", () => {
    const file = path.join(tmp, "lightning.ckpt");
    writeTorchCheckpoint(file, lightningCheckpoint(tensors(3)));
    expect(() => new TorchCheckpoint(file, { strict: true })).toThrow(/refusing the unknown global pathlib\.PosixPath/);
    // a "state_dict" entry built by an unknown global is not a tensor: listed as skipped, never called
    const evil = path.join(tmp, "evil.ckpt");
    writeTorchCheckpoint(evil, { dict: [["state_dict", { dict: [["w", { global: ["os", "system"], args: ["touch /tmp/pwned"] }], ["b", { tensor: { shape: [2], data: Float32Array.of(1, 2) } }]] }]] });
    const ck = new TorchCheckpoint(evil);
    expect(ck.names()).toEqual(["b"]);
    expect(ck.skipped).toEqual(["w (an object built by os.system)"]);
    expect(() => ck.get("w")).toThrow(/missing/);
    ck.close();
  });

  it("refuses what is not a torch zip checkpoint, and unknown opcodes, with a clear error", () => {
    const f = path.join(tmp, "legacy.pt");
    writeFileSync(f, Buffer.from([0x80, 0x02, 0x8a, 0x0a]));
    expect(() => new TorchCheckpoint(f)).toThrow(/not a zip file/);
    expect(() => unpickle(Buffer.from([0x80, 0x02, 0xff]))).toThrow(/unsupported pickle opcode 0xff/);
    expect(() => unpickle(Buffer.from([0x80, 0x02, 0x4e]))).toThrow(/no STOP/);
  });
});
