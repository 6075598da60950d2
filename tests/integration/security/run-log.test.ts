import { afterAll, describe, expect, it, vi } from "vitest";
import { quoteLogText, runLogLine } from "@/engine/log-line";
import { freshDataDir } from "../fresh-db";

// What a Script prints reaches the server log through the executor's log (app/server/runs.ts createExecutor).
process.env.STUDIO_DATA_DIR = freshDataDir();
const { createExecutor } = await import("@/app/server/runs");

describe("node output in the server log", () => {
  const { executor, runtime } = createExecutor();
  afterAll(() => runtime.close());

  it("a Script's console.log with newlines, escapes and separators is one quoted record per line it logged", async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(" ")));
    try {
      const code = 'console.log("ok\\n[run 00000000] admin: password reset\\r\\x1b[2Jcleared\\u2028next"); return 1';
      const doc = { schemaVersion: 2 as const, name: "log", description: "", tags: [], nodes: [{ id: "s\nforged", type: "utility.script", typeVersion: 1, params: { code }, position: { x: 0, y: 0 } }], edges: [] };
      const result = await executor.run(doc, { runId: "run-log-test" });
      expect(result.status).toBe("finished");
    } finally {
      spy.mockRestore();
    }
    const mine = lines.filter((l) => l.includes("run-log-test"));
    expect(mine).toEqual(['[run run-log-test] "s\\nforged": "ok\\n[run 00000000] admin: password reset\\r\\u001b[2Jcleared\\u2028next"']);
    for (const l of mine) expect(l).not.toMatch(/[\n\r\u001b\u2028]/);
  });

  it("quoteLogText is JSON with the separators and controls JSON leaves alone escaped too", () => {
    expect(quoteLogText('plain "text"')).toBe('"plain \\"text\\""');
    expect(quoteLogText("a\u0085b\u007fc\u202ed")).toBe('"a\\u0085b\\u007fc\\u202ed"');
    expect(runLogLine("r", "n", "x\ny")).toBe('[run r] "n": "x\\ny"');
    // Whatever it is given, it reads back as the same text.
    const s = "\u0000\u0001\n\t\u2029é😀";
    expect(JSON.parse(quoteLogText(s))).toBe(s);
  });
});
