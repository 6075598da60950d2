import { onnx } from "onnx-proto";
import { describe, expect, it } from "vitest";
import { buildMoeLlmGraph, type MoeGraphOptions } from "@/models/moe-llm/moe-llm-graph";
import { decodeTwinOptions } from "@/models/moe-llm/moe-llm-model";
import { randomConfig, randomWeights } from "../../../reference/random";

/**
 * Every decoder graph the builder emits uses every initializer it declares: ONNX Runtime removes an unused one with a
 * warning ("Removing initializer … It is not used by any node") on each session load, i.e. in the server's log at every
 * model load (the decode-step twin carried one, an int64 1 only the other forms count with).
 */
describe("decoder graphs declare no unused initializer", () => {
  const unused = (bytes: Uint8Array) => {
    const graph = onnx.ModelProto.decode(bytes).graph!;
    const used = new Set<string>();
    for (const n of graph.node!) for (const i of n.input!) used.add(i);
    for (const o of graph.output!) used.add(o.name!);
    return graph.initializer!.map((t) => t.name!).filter((name) => !used.has(name));
  };
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: sparse, dense, padded, embeds, lens, unfused, the device-resident form and the CPU decode twin`, () => {
      const c = randomConfig(seed);
      const w = randomWeights(c, seed);
      const base: MoeGraphOptions = { moe: "sparse", trace: true, kvCache: true };
      const twin = decodeTwinOptions(c, base, "cpu");
      expect(twin?.decodeStep, "this config's twin is the decode-step form").toBe(true);
      const forms: Record<string, MoeGraphOptions> = {
        sparse: base,
        dense: { ...base, moe: "dense" },
        padded: { ...base, padding: true },
        "padded embeds": { ...base, padding: true, embeds: true },
        lens: { ...base, lens: true },
        "no cache, no trace": { moe: "sparse", trace: false, kvCache: false },
        unfused: { ...base, unfused: true },
        gpu: { ...base, moe: "dense", gpu: true },
        "decode twin": twin!,
      };
      for (const [name, o] of Object.entries(forms)) expect(unused(buildMoeLlmGraph(c, w, o)), name).toEqual([]);
    });
  }
});
