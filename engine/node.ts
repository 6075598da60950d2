import { z } from "zod";
import { isSocketType, SOCKET_KINDS, type SocketType, type SocketValue } from "./sockets";
import { kindTest, matchesKind, type ValueKind } from "./values/kind";
import type { Runtime } from "./runtime/types";
import type { Workflow } from "./workflow/schema";

export interface InputSpec<S extends SocketType = SocketType> {
  type: S;
  label?: string;
  /** An optional input may be left unconnected. */
  optional?: boolean;
  /** What a JSON input must be, when more specific (as an output spec's `kind`): checked, and typed for execute. */
  kind?: ValueKind<unknown>;
}

export interface OutputSpec<S extends SocketType = SocketType> {
  type: S;
  label?: string;
  /** What the value on this socket is, when more specific than its socket type (a report on a JSON socket): its schema, TypeScript type and preview. */
  kind?: ValueKind<unknown>;
}

/** The values a node's execute receives, typed by its input specs (an optional input may be absent or null). */
export type InputValues<I extends Record<string, InputSpec>> = {
  -readonly [K in keyof I]: I[K] extends { optional: true } ? InputValue<I[K]> | null | undefined : InputValue<I[K]>;
};

/** The TypeScript type of an input socket's value: its `kind`'s, else its socket type's. */
export type InputValue<S extends InputSpec> = S extends { kind: ValueKind<infer T> } ? T : SocketValue<S["type"]>;

/** The TypeScript type of an output socket's value: its `kind`'s, else its socket type's. */
export type OutputValue<S extends OutputSpec> = S extends { kind: ValueKind<infer T> } ? T : SocketValue<S["type"]>;

/** What execute returns, typed by the output specs (a socket no dependent reads may be left out). */
export type OutputValues<O extends Record<string, OutputSpec>> = { -readonly [K in keyof O]?: OutputValue<O[K]> | null };

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
  /** The document being run, without its words (documentForFiles), when the host passes it (nodes embed it in the files they write: engine/provenance.ts). */
  workflow?: Workflow;
  /** The node types this host runs: a node that runs a sub-workflow (a dataset batch) runs it with these. */
  catalogue?: NodeCatalogue;
  /** Whose cached results this run may reuse (RunOptions.cacheScope: the app's run owner); none for the CLI. */
  cacheScope?: string;
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

/** The same storage, telling `onWrite` the id of every file written through it (a write returns once onWrite is done). */
export function recordingWrites(base: Storage, onWrite: (id: string) => void | Promise<void>): Storage {
  return {
    pathOf: (id) => base.pathOf(id),
    read: (id) => base.read(id),
    exists: (id) => base.exists(id),
    write: async (bytes, ext) => {
      const id = await base.write(bytes, ext);
      await onWrite(id);
      return id;
    },
  };
}

export type Outputs = Record<string, unknown>;

export interface ExecuteArgs<P> {
  inputs: Record<string, unknown>;
  params: P;
  ctx: RunContext;
}

/** What a node file writes: `defineNode` checks it and types `execute`'s inputs and outputs from the specs. */
export interface NodeSpec<P extends z.ZodObject<z.ZodRawShape>, I extends Record<string, InputSpec>, O extends Record<string, OutputSpec>>
  extends Omit<NodeDefinition<P>, "inputs" | "outputs" | "execute" | "summarize"> {
  inputs: I;
  outputs: O;
  execute(args: { inputs: InputValues<I>; params: z.infer<P>; ctx: RunContext }): Promise<OutputValues<O>>;
  /** One-line summary of outputs for events, previews and the CLI. */
  summarize?(outputs: OutputValues<O>): string;
}

export interface NodeDefinition<P extends z.ZodObject<z.ZodRawShape> = z.ZodObject<z.ZodRawShape>> {
  type: string;
  /** Bumped when params or behaviour change; `migrateParams` upgrades older params. */
  typeVersion: number;
  title: string;
  category: Category;
  description: string;
  inputs: Record<string, InputSpec>;
  /**
   * Optional inputs of which at least one must be connected (`exclusive`: exactly one, e.g. a prompt or a sequence):
   * validation says so before a run; `execute` must refuse the same.
   */
  connectOneOf?: { inputs: readonly string[]; exclusive: boolean };
  outputs: Record<string, OutputSpec>;
  params: P;
  /** Outputs differ between calls with equal inputs: the node is never served from the cache (nor its dependents). */
  nondeterministic?: boolean;
  /** Random nodes must take a `seed` param so their cache key changes with it. Checks each input against its socket kind first. */
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
  /**
   * What the editor should point out before a run without refusing it (an input node with no file chosen, an empty
   * text): short phrases, checked with every validation, so cheap and synchronous.
   */
  warnings?(params: z.infer<P>): string[];
  /** One-line summary of outputs for events, previews and the CLI. */
  summarize?(outputs: Outputs): string;
}

const TYPE_NAME = /^[a-z][a-z0-9]*(\.[a-z][a-z0-9-]*)+$/;

/** Declares a node type; malformed definitions fail here, at registration, not at run time. */
export function defineNode<P extends z.ZodObject<z.ZodRawShape>, const I extends Record<string, InputSpec>, const O extends Record<string, OutputSpec>>(spec: NodeSpec<P, I, O>): NodeDefinition<P> {
  const where = `node definition "${spec.type}"`;
  if (!TYPE_NAME.test(spec.type)) throw new Error(`${where}: type must look like "category.name"`);
  if (!Number.isInteger(spec.typeVersion) || spec.typeVersion < 1) throw new Error(`${where}: typeVersion must be a positive integer`);
  for (const [name, s] of [...Object.entries(spec.inputs), ...Object.entries(spec.outputs)]) {
    if (!/^[a-zA-Z][a-zA-Z0-9_]*$/.test(name)) throw new Error(`${where}: bad socket name "${name}"`);
    if (!isSocketType(s.type)) throw new Error(`${where}: socket "${name}" has unknown type "${s.type}"`);
  }
  for (const [name, s] of Object.entries(spec.inputs)) {
    if (s.kind !== undefined && s.type !== "JSON") throw new Error(`${where}: input "${name}" names a kind; only a JSON socket carries one`);
  }
  for (const name of spec.connectOneOf?.inputs ?? []) {
    if (!spec.inputs[name]?.optional) throw new Error(`${where}: connectOneOf names "${name}", which is not an optional input`);
  }
  for (const [name, s] of Object.entries(spec.outputs)) {
    if (s.type === "ANY") throw new Error(`${where}: output "${name}" cannot be ANY`);
    if (s.kind !== undefined && s.type !== "JSON") throw new Error(`${where}: output "${name}" names a kind; only a JSON socket carries one`);
  }
  if (typeof spec.execute !== "function") throw new Error(`${where}: execute is missing`);
  const defaults = spec.params.safeParse({});
  if (!defaults.success) throw new Error(`${where}: every param needs a default (${defaults.error.issues[0]?.message})`);
  // each input's check compiled once (ANY and plain JSON inputs have none)
  const inputNames: string[] = [];
  const inputChecks: ((value: unknown) => void)[] = [];
  for (const [name, s] of Object.entries(spec.inputs)) {
    const check = inputCheck(name, s);
    if (check) inputNames.push(name), inputChecks.push(check);
  }
  const summarize = spec.summarize?.bind(spec);
  return {
    ...spec,
    // The inputs are what the specs say (checked here), so the node's own code reads them typed.
    execute: (args) => {
      try {
        for (let i = 0; i < inputChecks.length; i++) inputChecks[i]!(args.inputs[inputNames[i]!]);
      } catch (err) {
        return Promise.reject(err);
      }
      return spec.execute(args as never) as Promise<Outputs>;
    },
    ...(summarize ? { summarize: (outputs: Outputs) => summarize(outputs as never) } : {}),
  };
}

/** An input's check (throws naming the input), or none for ANY and plain JSON inputs. */
function inputCheck(name: string, spec: InputSpec): ((value: unknown) => void) | undefined {
  if (spec.type === "ANY" || (spec.type === "JSON" && !spec.kind)) return undefined;
  const kind: ValueKind<unknown> = spec.kind ?? SOCKET_KINDS[spec.type];
  const test = kindTest(kind);
  return (value) => {
    if (value === undefined || value === null) {
      if (spec.optional) return;
      throw new Error(`input ${name} is missing: connect ${kind.noun} (${kind.name})`);
    }
    if (!test(value) && !kind.schema.safeParse(value).success) throw new Error(`input ${name} is not ${kind.noun}: connect ${kind.noun} (${kind.name})`);
  };
}

/** Throws, naming the socket, when an output is not a value of its kind (`spec.kind`, else its socket type). Shallow and cheap. */
export function checkOutput(name: string, spec: OutputSpec, value: unknown): void {
  if (value === undefined || value === null) return;
  const kind: ValueKind<unknown> = spec.kind ?? SOCKET_KINDS[spec.type];
  if (!matchesKind(kind, value)) outputMismatch(name, kind, value);
}

/** The fast test said no: zod's parse words the error (and has the last say). */
function outputMismatch(name: string, kind: ValueKind<unknown>, value: unknown): void {
  const r = kind.schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Error(`output "${name}" is not ${kind.noun} (${kind.name})${issue ? `: ${issue.path.length ? `${issue.path.join(".")}: ` : ""}${issue.message}` : ""}`);
  }
}

const outputCheckers = new WeakMap<Record<string, OutputSpec>, (outputs: Outputs) => void>();

/** checkOutput for every output socket of a node, its kinds' tests looked up once per node type (the executor's hot path). */
export function checkOutputs(specs: Record<string, OutputSpec>, outputs: Outputs): void {
  let check = outputCheckers.get(specs);
  if (!check) {
    const names = Object.keys(specs);
    const kinds = names.map((n) => specs[n]!.kind ?? SOCKET_KINDS[specs[n]!.type]);
    const tests = kinds.map(kindTest);
    check = (out) => {
      for (let i = 0; i < names.length; i++) {
        const value = out[names[i]!];
        if (value !== undefined && value !== null && !tests[i]!(value)) outputMismatch(names[i]!, kinds[i]!, value);
      }
    };
    outputCheckers.set(specs, check);
  }
  check(outputs);
}

/** Default params of a node type (every param has a default). */
export function defaultParams(def: NodeDefinition): Record<string, unknown> {
  return def.params.parse({}) as Record<string, unknown>;
}

/** What the editor and the connection check need to know about a node type (no code). */
export type NodeSignature = Pick<NodeDefinition, "type" | "typeVersion" | "title" | "category" | "description"> & { inputs: Record<string, Omit<InputSpec, "kind">>; outputs: Record<string, Omit<OutputSpec, "kind">> };

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
