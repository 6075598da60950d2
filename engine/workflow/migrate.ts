import { z } from "zod";
import { CURRENT_SCHEMA_VERSION, zWorkflow, type Workflow } from "./schema";
import { zWorkflowV1, type WorkflowV1 } from "./v1";

/** Thrown when a document cannot be read at all (not JSON, not an object, unknown version, bad shape). */
export class WorkflowParseError extends Error {
  constructor(
    message: string,
    readonly issues: { path: string; message: string }[] = [],
  ) {
    super(message);
    this.name = "WorkflowParseError";
  }
}

function splitEnd(end: string, what: string): [string, string] {
  const at = end.lastIndexOf(":");
  if (at <= 0 || at === end.length - 1) throw new WorkflowParseError(`edge ${what} "${end}" is not "nodeId:socket"`);
  return [end.slice(0, at), end.slice(at + 1)];
}

function migrateV1toV2(doc: WorkflowV1): unknown {
  return {
    schemaVersion: 2,
    name: doc.title || "Untitled workflow",
    description: doc.description ?? "",
    tags: [],
    nodes: doc.nodes.map((n) => ({
      id: n.id,
      type: n.type,
      typeVersion: n.version ?? 1,
      params: n.data ?? {},
      position: { x: n.x, y: n.y },
      ...(n.label ? { label: n.label } : {}),
    })),
    edges: doc.edges.map((e, i) => {
      const [source, sourceSocket] = splitEnd(e.from, "from");
      const [target, targetSocket] = splitEnd(e.to, "to");
      return { id: e.id ?? `e${i + 1}`, source, sourceSocket, target, targetSocket };
    }),
    notes: [],
  };
}

/** Each step reads one version with its frozen schema and returns the next version's raw shape. */
const MIGRATIONS: Record<number, (doc: unknown) => unknown> = {
  1: (doc) => migrateV1toV2(parseWith(zWorkflowV1, doc, 1)),
};

function zodIssues(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.join(".") || "(document)", message: i.message }));
}

function parseWith<T>(schema: z.ZodType<T>, doc: unknown, version: number): T {
  const r = schema.safeParse(doc);
  if (!r.success) {
    const issues = zodIssues(r.error);
    throw new WorkflowParseError(
      `not a valid schemaVersion ${version} workflow: ${issues.slice(0, 3).map((i) => `${i.path}: ${i.message}`).join("; ")}`,
      issues,
    );
  }
  return r.data;
}

/** Reads a workflow of any known schemaVersion (object or JSON text) and returns it in the current format. */
export function parseAndMigrate(input: unknown): Workflow {
  let doc: unknown = input;
  if (typeof input === "string") {
    try {
      doc = JSON.parse(input);
    } catch (err) {
      throw new WorkflowParseError(`not valid JSON: ${(err as Error).message}`);
    }
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new WorkflowParseError("a workflow must be a JSON object");
  }
  doc = structuredClone(doc);
  const version = (doc as { schemaVersion?: unknown }).schemaVersion;
  if (typeof version !== "number" || !Number.isInteger(version)) {
    throw new WorkflowParseError('the document has no numeric "schemaVersion"; is it a MoE Studio workflow?');
  }
  if (version > CURRENT_SCHEMA_VERSION) {
    throw new WorkflowParseError(
      `schemaVersion ${version} is newer than this MoE Studio understands (${CURRENT_SCHEMA_VERSION}); update the app`,
    );
  }
  for (let v = version; v < CURRENT_SCHEMA_VERSION; v++) {
    const step = MIGRATIONS[v];
    if (!step) throw new WorkflowParseError(`no migration from schemaVersion ${v}`);
    doc = step(doc);
  }
  return parseWith(zWorkflow, doc, CURRENT_SCHEMA_VERSION);
}
