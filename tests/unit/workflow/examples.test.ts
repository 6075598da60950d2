import { describe, expect, it } from "vitest";
import { EXAMPLES } from "@/app/examples";
import { loadWorkflow } from "@/engine/workflow/load";
import { zWorkflow } from "@/engine/workflow/schema";
import { catalogue } from "@/nodes";

describe("shipped example workflows", () => {
  it.each(EXAMPLES.map((e) => [e.id, e] as const))("%s is a valid document with no problems", (_id, example) => {
    expect(zWorkflow.safeParse(example.document).success).toBe(true);
    const { problems } = loadWorkflow(example.document, catalogue);
    expect(problems).toEqual([]);
  });
});
