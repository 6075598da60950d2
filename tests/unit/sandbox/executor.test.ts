import { describe, expect, it } from "vitest";
import { OutputCache } from "@/engine/cache";
import { Executor } from "@/engine/executor";
import type { RunEvent } from "@/engine/events";
import { catalogue } from "@/nodes";
import { MemoryStorage, wf } from "../engine/helpers";

/** text input → script (a) → script (b): the real catalogue, the real executor, the real sandbox. */
function pipeline(code: string, timeoutMs = 2000) {
  return wf(
    [
      { id: "t", type: "input.text", params: { text: "3,4,5" } },
      { id: "s", type: "utility.script", params: { code, timeoutMs } },
      { id: "d", type: "utility.script", params: { code: "return { total: inputs.a.reduce((x, y) => x + y, 0) }" } },
    ],
    [
      ["t", "s", "a", "text"],
      ["s", "d", "a", "result"],
    ],
  );
}

function setup() {
  const storage = new MemoryStorage();
  const logs: string[] = [];
  const executor = new Executor({
    catalogue,
    storage,
    cache: new OutputCache({ maxBytes: 1 << 20, storage }),
    log: (_run, nodeId, message) => logs.push(`${nodeId}: ${message}`),
  });
  return { executor, logs };
}

describe("Script node through the executor", () => {
  it("runs scripts on upstream values, passes JSON downstream and logs console output", async () => {
    const { executor, logs } = setup();
    const r = await executor.run(pipeline("console.log('parsing', inputs.a); return inputs.a.split(',').map(Number)"), { runId: "r1" });
    expect(r.status).toBe("finished");
    expect(r.outputs.get("s")).toEqual({ result: [3, 4, 5], text: "[\n  3,\n  4,\n  5\n]" });
    expect(r.outputs.get("d")!.result).toEqual({ total: 12 });
    expect(r.nodes.get("d")!.summary).toBe('{"total":12}');
    expect(logs).toContain("s: parsing 3,4,5");
  });

  it("an endless loop fails that node with a clear timeout; dependents are skipped; the next run works", async () => {
    const { executor } = setup();
    const events: RunEvent[] = [];
    const t0 = performance.now();
    const bad = await executor.run(pipeline("while (true) {}", 400), { runId: "r1", onEvent: (e) => events.push(e) });
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(bad.status).toBe("failed");
    expect(bad.nodes.get("t")!.status).toBe("done");
    expect(bad.nodes.get("s")!.status).toBe("error");
    expect(bad.nodes.get("s")!.error).toBe('Node "s" (utility.script): the script ran longer than its time limit of 400 ms and was stopped (an endless loop?)');
    expect(bad.nodes.get("d")!.status).toBe("skipped");
    const nodeError = events.find((e) => e.type === "node-error");
    expect(nodeError && "nodeId" in nodeError && nodeError.nodeId).toBe("s");

    // The same executor, a fixed script: everything runs (the failed node left no cache entry).
    const good = await executor.run(pipeline("return inputs.a.split(',').map(Number)"), { runId: "r2" });
    expect(good.status).toBe("finished");
    expect(good.nodes.get("t")!.status).toBe("cached");
    expect(good.nodes.get("s")!.status).toBe("done");
    expect(good.outputs.get("d")!.result).toEqual({ total: 12 });
  });

  it("syntax and runtime errors land on the node with line numbers", async () => {
    const { executor } = setup();
    const syntax = await executor.run(pipeline("const x = 1;\nreturn x +;"), { runId: "r1" });
    expect(syntax.nodes.get("s")!.error).toMatch(/^Node "s" \(utility\.script\): syntax error at line 2, column \d+: /);
    const runtime = await executor.run(pipeline("\n\nreturn inputs.nothing.here"), { runId: "r2" });
    expect(runtime.nodes.get("s")!.error).toMatch(/^Node "s" \(utility\.script\): TypeError: .* \(line 3\)$/);
  });

  it("an unchanged rerun is served from the cache; a code change runs again", async () => {
    const { executor } = setup();
    const code = "return inputs.a.split(',').map(Number)";
    await executor.run(pipeline(code), { runId: "r1" });
    const again = await executor.run(pipeline(code), { runId: "r2" });
    expect(again.nodes.get("s")!.status).toBe("cached");
    const changed = await executor.run(pipeline(code + ".reverse()"), { runId: "r3" });
    expect(changed.nodes.get("s")!.status).toBe("done");
    expect(changed.outputs.get("d")!.result).toEqual({ total: 12 });
  });

  it("cancelling the run interrupts a running script", async () => {
    const { executor } = setup();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const t0 = performance.now();
    const r = await executor.run(pipeline("while (true) {}", 20_000), { runId: "r1", signal: controller.signal });
    expect(r.status).toBe("cancelled");
    expect(r.nodes.get("s")!.status).toBe("cancelled");
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});
