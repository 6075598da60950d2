import { describe, expect, it } from "vitest";
import { EXAMPLES } from "@/app/examples";
import { loadWorkflow } from "@/engine/workflow/load";
import { zWorkflow } from "@/engine/workflow/schema";
import { catalogue } from "@/nodes";

describe("shipped example workflows", () => {
  it.each(EXAMPLES.map((e) => [e.id, e] as const))("%s is a valid document with no problems once its sample media are filled in", (_id, example) => {
    expect(zWorkflow.safeParse(example.document).success).toBe(true);
    // Opening an example fills these params with the stored sample media's ids; until then their nodes warn.
    const opened = structuredClone(example.document);
    for (const m of example.sampleMedia ?? []) opened.nodes.find((n) => n.id === m.node)!.params[m.param] = `${m.media}-sample-id`;
    expect(loadWorkflow(opened, catalogue).problems).toEqual([]);
    const unfilled = loadWorkflow(example.document, catalogue).problems;
    expect(unfilled.map((p) => `${p.severity}:${p.nodeId}`)).toEqual((example.sampleMedia ?? []).map((m) => `warning:${m.node}`));
  });
});
