import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseConfig } from "@/engine/config";

const ROOT = path.resolve(__dirname, "../../..");
const composeText = readFileSync(path.join(ROOT, "compose.yaml"), "utf8");
const dockerfile = readFileSync(path.join(ROOT, "Dockerfile"), "utf8");

interface Service {
  image?: string;
  build?: { context: string; target?: string };
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
  deploy?: { replicas?: number };
}

/** ${VAR:-default} as compose substitutes it when VAR is unset. */
const substitute = (v: string) => v.replace(/\$\{(\w+):-([^}]*)\}/g, (_m, _name: string, d: string) => d);

/** `docker compose config`, else Debian's `docker-compose config` (.ci/run installs it); null when neither is here. */
function composeConfig(): { tool: string; status: number | null; out: string } | null {
  for (const [tool, args] of [["docker", ["compose", "-f", "compose.yaml", "config"]], ["docker-compose", ["-f", "compose.yaml", "config"]]] as const) {
    const probe = spawnSync(tool, tool === "docker" ? ["compose", "version"] : ["version"], { encoding: "utf8" });
    if (probe.error || probe.status !== 0) continue;
    const r = spawnSync(tool, args, { cwd: ROOT, encoding: "utf8" });
    return { tool: `${tool} ${args.join(" ")}`, status: r.status, out: r.stdout + r.stderr };
  }
  return null;
}

describe("deployment files", () => {
  const compose = parse(composeText, { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
  const s = compose.services;

  it("compose.yaml is valid for the compose tool (when one is installed; the engine is not needed)", () => {
    const r = composeConfig();
    if (!r) {
      console.log("no docker compose / docker-compose here: only the structural checks below ran");
      return;
    }
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/STUDIO_QUEUE: redis:\/\/redis:6379/);
    console.log(`${r.tool}: valid`);
  });

  it("has web, worker, Redis and PostgreSQL, with a shared artifact volume, wired to each other", () => {
    expect(Object.keys(s).sort()).toEqual(["postgres", "redis", "web", "worker"]);
    for (const name of ["web", "worker"]) {
      const env = Object.fromEntries(Object.entries(s[name]!.environment!).map(([k, v]) => [k, substitute(String(v))]));
      // Every setting the image gets passes the app's own configuration schema.
      const c = parseConfig(env);
      expect(new URL(c.STUDIO_QUEUE!).hostname).toBe("redis");
      expect(new URL(c.DATABASE_URL!).hostname).toBe("postgres");
      expect(c.STUDIO_ARTIFACTS!.startsWith("/data/")).toBe(true);
      expect(s[name]!.volumes).toContain("artifacts:/data");
      expect(s[name]!.build).toEqual({ context: ".", target: "runtime" });
    }
    expect(compose.volumes).toHaveProperty("artifacts");
    expect(s.worker!.command).toEqual(["npm", "run", "worker"]);
    expect(JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).scripts.worker).toBeTruthy();
    expect(s.worker!.deploy!.replicas).toBeGreaterThanOrEqual(1);
    expect(s.web!.ports).toContain("3000:3000");
    for (const [name, svc] of Object.entries(s)) {
      for (const [dep, { condition }] of Object.entries(svc.depends_on ?? {})) {
        expect(s[dep], `${name} depends on ${dep}`).toBeDefined();
        if (condition === "service_healthy") expect(s[dep]!.healthcheck?.disable ?? false, `${dep} has a healthcheck`).toBe(false);
      }
    }
    expect(s.worker!.depends_on).toHaveProperty("web"); // the web process applies the migrations first
  });

  it("the Dockerfile is multi-stage: the runtime runs as a non-root user without a browser; Chromium only in the test stage", () => {
    const stages = new Map<string, string>();
    for (const part of dockerfile.split(/^FROM /m).slice(1)) {
      const name = /^\S+ AS (\S+)/.exec(part)![1]!;
      stages.set(name, part);
    }
    expect([...stages.keys()]).toEqual(["base", "deps", "build", "runtime", "test"]);
    const runtime = stages.get("runtime")!;
    expect(runtime).toMatch(/^USER studio$/m);
    expect(runtime).toMatch(/useradd --system --uid 10001/);
    expect(runtime).not.toMatch(/chromium/);
    expect(runtime).toMatch(/HEALTHCHECK .*\n.*\/api\/health/);
    expect(stages.get("test")!).toMatch(/apt-get install .*chromium/s);
    for (const [name, body] of stages) if (name !== "test") expect(body, name).not.toMatch(/chromium/);
    expect(dockerfile).toMatch(/ONNXRUNTIME_NODE_INSTALL=skip/);
  });
});
