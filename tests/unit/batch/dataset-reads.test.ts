import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { OutputCache } from "../../../engine/cache";
import { Executor } from "../../../engine/executor";
import { NodeCatalogue } from "../../../engine/node";
import { datasetNode, datasetReader, type DatasetSummary } from "../../../nodes/dataset";
import { MemoryStorage, wf } from "../engine/helpers";

const userRoot = mkdtempSync(path.join(os.tmpdir(), "dataset-reads-"));
const saved = process.env.STUDIO_DATASETS_DIR;
beforeAll(() => {
  process.env.STUDIO_DATASETS_DIR = userRoot;
  mkdirSync(path.join(userRoot, "set"));
  writeFileSync(path.join(userRoot, "set", "d.jsonl"), ['{"text": "first"}', "oops", '{"text": "second", "task": "t"}', '{"text": "third"}'].join("\n") + "\n");
});
afterAll(() => {
  if (saved === undefined) delete process.env.STUDIO_DATASETS_DIR;
  else process.env.STUDIO_DATASETS_DIR = saved;
});
afterEach(() => vi.restoreAllMocks());

const doc = (previewRow: number) => wf([{ id: "ds", type: datasetNode.type, params: { source: "set/d.jsonl", previewRow } }], []);

/** An executor of the Dataset node (with an output cache or without), and spies counting its dataset reads. */
function setup(withCache: boolean) {
  const storage = new MemoryStorage();
  const cache = withCache ? new OutputCache({ maxBytes: 1 << 24, storage }) : undefined;
  const executor = new Executor({ catalogue: new NodeCatalogue([datasetNode] as never[]), storage, cache });
  return { executor, reads: { fingerprint: vi.spyOn(datasetReader, "fingerprint"), rows: vi.spyOn(datasetReader, "rows") } };
}

describe("Dataset node reads its dataset once per execution", () => {
  it("with a cache: one fingerprint and one pass over the rows on a miss, one fingerprint and no pass on a hit", async () => {
    const { executor, reads } = setup(true);
    const miss = await executor.run(doc(1), { runId: "r1" });
    expect(miss.nodes.get("ds")!.status).toBe("done");
    expect([reads.fingerprint.mock.calls.length, reads.rows.mock.calls.length]).toEqual([1, 1]);
    const out = miss.outputs.get("ds")!;
    expect(out.text).toBe("second");
    const summary = out.dataset as DatasetSummary;
    expect([summary.count, summary.errorCount, summary.previewRow]).toEqual([3, 1, 1]);
    // the summary carries the same fingerprint the cache key was made from
    expect(summary.fingerprint).toBe(await reads.fingerprint.mock.results[0]!.value);

    const hit = await executor.run(doc(1), { runId: "r2" });
    expect(hit.nodes.get("ds")!.status).toBe("cached");
    expect([reads.fingerprint.mock.calls.length, reads.rows.mock.calls.length]).toEqual([2, 1]);
  });

  it("without a cache (no fingerprint hook call): execute fingerprints and reads once itself", async () => {
    const { executor, reads } = setup(false);
    const run = await executor.run(doc(2), { runId: "r3" });
    expect(run.outputs.get("ds")!.text).toBe("third");
    expect([reads.fingerprint.mock.calls.length, reads.rows.mock.calls.length]).toEqual([1, 1]);
  });

  it("a preview row past the end fails after the one pass, naming the count", async () => {
    const { executor, reads } = setup(false);
    const run = await executor.run(doc(3), { runId: "r4" });
    expect(run.status).toBe("failed");
    expect(run.error).toMatch(/record 3 does not exist: the dataset has 3 valid record\(s\)/);
    expect(reads.rows.mock.calls.length).toBe(1);
  });
});
