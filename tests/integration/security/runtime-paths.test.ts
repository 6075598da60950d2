import { describe, expect, it } from "vitest";
import { freshDataDir } from "../fresh-db";

// Status answers name no server path (docs/security.md): the engine's notes on providers it could not load
// ("the CUDA provider libraries are not installed in /…/node_modules/onnxruntime-node/…") are redacted.
process.env.STUDIO_DATA_DIR = freshDataDir();
process.env.STUDIO_EP = "auto";
const { appRouter } = await import("@/app/server/routers");
const { redactStrings } = await import("@/app/server/redact");

describe("runtime status without server paths", () => {
  it("redactStrings takes the paths out of every string of a status object, and keeps the rest", () => {
    const status = { sessions: 2, note: `not installed in ${process.cwd()}/node_modules/onnxruntime-node/bin`, list: [`${process.cwd()}/x`, 3], ok: true, none: null };
    expect(redactStrings(status)).toEqual({ sessions: 2, note: "not installed in <app>/node_modules/onnxruntime-node/bin", list: ["<app>/x", 3], ok: true, none: null });
  });

  it("run.runtime and models.graphs answer without the install path", async () => {
    const caller = appRouter.createCaller({ origin: null, host: "studio.test", userId: "local" });
    const runtime = await caller.run.runtime();
    const graphs = await caller.models.graphs();
    for (const answer of [runtime, graphs]) expect(JSON.stringify(answer)).not.toContain(process.cwd());
  });
});
