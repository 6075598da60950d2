import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(__dirname, "../../..");

describe("the sandbox under other TypeScript runners", () => {
  it("works under tsx (the CLI's runner), and the process exits when the script is done", () => {
    // The worker body is sent as source text (Function#toString); tsx's esbuild inserts helpers into it.
    const dir = mkdtempSync(path.join(tmpdir(), "sandbox-tsx-"));
    try {
      const file = path.join(dir, "main.mts");
      writeFileSync(
        file,
        `import { runScript } from ${JSON.stringify(path.join(ROOT, "engine/sandbox/index.ts"))};
const ok = await runScript({ code: "const sq = (x) => x * x; return inputs.a.map(sq)", inputs: { a: [1, 2, 3] } });
let timedOut = "";
try { await runScript({ code: "for (;;) {}", timeoutMs: 200 }); } catch (e) { timedOut = (e as Error).constructor.name; }
console.log(JSON.stringify({ ok: ok.outputs, timedOut }));
`,
      );
      const r = spawnSync(path.join(ROOT, "node_modules/.bin/tsx"), [file], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
      expect(r.error).toBeUndefined(); // a timeout here would mean an idle worker kept the process alive
      expect(r.stderr).toBe("");
      expect(JSON.parse(r.stdout.trim().split("\n").pop()!)).toEqual({ ok: [1, 4, 9], timedOut: "ScriptTimeoutError" });
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
