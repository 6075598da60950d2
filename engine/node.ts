import { z } from "zod";
import { isSocketType, type SocketType } from "./sockets";
import type { Runtime } from "./runtime/types";
import type { Workflow } from "./workflow/schema";

export interface InputSpec {
  type: SocketType;
  label?: string;
  /** An optional input may be left unconnected. */
  optional?: boolean;
}

export interface OutputSpec {
  type: SocketType;
  label?: string;
}

export type Category = "Inputs" | "Encoders" | "Prompt" | "Models" | "Inspect" | "Generate" | "Utility" | "Outputs";

/** Host services a node may use while it runs (injected by the executor; no framework imports). */
export interface RunContext {
  runId: string;
  nodeId: string;
  signal: AbortSignal;
  /** Report progress of the current node: fraction in [0, 1]; `preview` is a stored file id (e.g. an image refining). */
  progress(fraction: number, message?: string, preview?: string): void;
  /** Where uploads and artifacts live. */
  storage: Storage;
  log(message: string): void;
  /** The ONNX Runtime layer (session pool), when the host attached one. */
  runtime?: Runtime;
  /** The document being run, when the host passes it (nodes embed it in the files they write: engine/provenance.ts). */
  workflow?: Workflow;
}

/** Content-addressed file storage (uploads and artifacts), rooted in the data directory. */
export interface Storage {
  /** Absolute path of a stored blob, or throws if the id is malformed or the file is missing. */
  pathOf(id: string): string;
  read(id: string): Promise<Buffer>;
  /** Stores bytes, returns their content id (sha256 hex + extension). */
  write(bytes: Uint8Array, ext: string): Promise<string>;
  exists(id: string): Promise<boolean>;
}

export type Outputs = Record<string, unknown>;

export interface ExecuteArgs<P> {
  inputs: Record<string, unknown>;
  params: P;
  ctx: RunContext;
}

export interface NodeDefinition<P extends z.ZodObject<z.ZodRawShape> = z.ZodObject<z.ZodRawShape>> {
  type: string;
  /** Bumped when params or behaviour change; `migrateParams` upgrades older params. */
  typeVersion: number;
  title: string;
  category: Category;
  description: string;
  inputs: Record<string, InputSpec>;
  outputs: Record<string, OutputSpec>;
  params: P;
  /** Outputs differ between calls with equal inputs: the node is never served from the cache (nor its dependents). */
  nondeterministic?: boolean;
  /** Random nodes must take a `seed` param so their cache key changes with it. */
  execute(args: ExecuteArgs<z.infer<P>>): Promise<Outputs>;
  /** Upgrades params saved by an older typeVersion. */
  migrateParams?(params: Record<string, unknown>, fromVersion: number): Record<string, unknown>;
  /** Extra cache-key material, e.g. hashes of the files the node reads. */
  fingerprint?(params: z.infer<P>, storage: Storage): Promise<string>;
  /**
   * Throws the reason when params cannot mean anything for this node as configured (e.g. a routing override the chosen
   * model's router ignores). Sweeps call it for every value before anything runs; `execute` must refuse the same.
   */
  checkParams?(params: z.infer<P>): Promise<void>;
  /** One-line summary of outputs for events, previews and the CLI. */
  summarize?(outputs: Outputs): string;
}

const TYPE_NAME = /^[a-z][a-z0-9]*(\.[a-z][a-z0-9-]*)+$/;

/** Declares a node type; malformed definitions fail here, at registration, not at run time. */
export function defineNode<P extends z.ZodObject<z.ZodRawShape>>(def: NodeDefinition<P>): NodeDefinition<P> {
  const where = `node definition "${def.type}"`;
  if (!TYPE_NAME.test(def.type)) throw new Error(`${where}: type must look like "category.name"`);
  if (!Number.isInteger(def.typeVersion) || def.typeVersion < 1) throw new Error(`${where}: typeVersion must be a positive integer`);
  for (const [name, spec] of [...Object.entries(def.inputs), ...Object.entries(def.outputs)]) {
    if (!/^[a-zA-Z][a-zA-Z0-9_]*$/.test(name)) throw new Error(`${where}: bad socket name "${name}"`);
    if (!isSocketType(spec.type)) throw new Error(`${where}: socket "${name}" has unknown type "${spec.type}"`);
  }
  for (const [name, spec] of Object.entries(def.outputs)) {
    if (spec.type === "ANY") throw new Error(`${where}: output "${name}" cannot be ANY`);
  }
  if (typeof def.execute !== "function") throw new Error(`${where}: execute is missing`);
  const defaults = def.params.safeParse({});
  if (!defaults.success) throw new Error(`${where}: every param needs a default (${defaults.error.issues[0]?.message})`);
  return def;
}

/** Default params of a node type (every param has a default). */
export function defaultParams(def: NodeDefinition): Record<string, unknown> {
  return def.params.parse({}) as Record<string, unknown>;
}

/** What the editor and the connection check need to know about a node type (no code). */
export type NodeSignature = Pick<NodeDefinition, "type" | "typeVersion" | "title" | "category" | "description" | "inputs" | "outputs">;

export type AnyNodeDefinition = NodeDefinition<z.ZodObject<z.ZodRawShape>>;

/** A catalogue of node types, built from an explicit list; duplicate types throw. */
export class NodeCatalogue {
  private readonly byType = new Map<string, AnyNodeDefinition>();

  constructor(defs: readonly AnyNodeDefinition[]) {
    for (const def of defs) {
      if (this.byType.has(def.type)) throw new Error(`node type "${def.type}" is registered twice`);
      this.byType.set(def.type, def);
    }
  }

  get(type: string): AnyNodeDefinition | undefined {
    return this.byType.get(type);
  }

  list(): AnyNodeDefinition[] {
    return [...this.byType.values()];
  }
}
