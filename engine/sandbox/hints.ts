/**
 * Type hints for the editor: a TypeScript declaration of a script's `inputs`, from what is connected to
 * each input — the shape of the value the upstream output last produced (its preview summary), or,
 * before any run, what its socket type says. Pure, so both the browser and tests can use it.
 */
import type { SocketType } from "../sockets";

/** The preview summary of a value (nodes/preview.ts describeValue), as far as types can be read from it. */
export interface ValueSummary {
  type?: unknown;
  items?: unknown;
  keys?: unknown;
}

export interface InputHint {
  socket: string;
  /** Undefined when nothing is connected. */
  sourceType?: SocketType;
  /** Where the value comes from, for the doc comment (e.g. `t1.text`). */
  source?: string;
  /** The upstream output's preview from the last run, when there is one. */
  preview?: ValueSummary;
}

const SOCKET_TS: Partial<Record<SocketType, string>> = {
  TEXT: "string",
  NUMBER: "number",
};

/** The TypeScript type a socket type's values have inside the sandbox (after the JSON round trip). */
export function typeFromSocket(type: SocketType): string {
  return SOCKET_TS[type] ?? "any";
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** The TypeScript type read from a preview summary; `undefined` when the summary says too little. */
export function typeFromPreview(summary: ValueSummary | undefined, depth = 0): string | undefined {
  if (!summary || typeof summary.type !== "string" || depth > 3) return undefined;
  switch (summary.type) {
    case "text":
      return "string";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "typed-array":
      return "number[]";
    case "array": {
      const items = Array.isArray(summary.items) ? (summary.items as ValueSummary[]) : [];
      const types = [...new Set(items.map((it) => typeFromPreview(it, depth + 1) ?? "any"))];
      if (types.length === 0 || types.includes("any")) return "any[]";
      return types.length === 1 ? `${types[0]}[]` : `(${types.join(" | ")})[]`;
    }
    case "object": {
      const keys = Array.isArray(summary.keys) ? summary.keys.filter((k): k is string => typeof k === "string") : [];
      if (keys.length === 0) return "Record<string, any>";
      // Only the names are known (the preview keeps no field values), so each field is `any`.
      return `{ ${keys.map((k) => `${IDENT.test(k) ? k : JSON.stringify(k)}: any;`).join(" ")} }`;
    }
    default:
      return undefined;
  }
}

/** The extra lib Monaco gets: `inputs`, and the one host object a script has, `console`. */
export function inputsDeclaration(hints: InputHint[]): string {
  const fields = hints.map((h) => {
    if (!h.sourceType) return `  /** Not connected. */\n  ${h.socket}: undefined;`;
    const fromRun = typeFromPreview(h.preview);
    const type = fromRun ?? typeFromSocket(h.sourceType);
    const doc = `${h.sourceType} from ${h.source ?? "upstream"}${fromRun ? " (shape seen in the last run)" : ""}`;
    return `  /** ${doc.replace(/\*\//g, "* /")} */\n  ${h.socket}: ${type};`;
  });
  return [
    "/** The values on this Script node's inputs (JSON: numeric arrays arrive as plain arrays). */",
    "declare const inputs: {",
    ...fields,
    "};",
    "/** Lines written here appear in the run log. */",
    "declare const console: { log(...data: any[]): void; info(...data: any[]): void; debug(...data: any[]): void; warn(...data: any[]): void; error(...data: any[]): void };",
    "",
  ].join("\n");
}
