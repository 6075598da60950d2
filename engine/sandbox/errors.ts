/**
 * What can go wrong with a user script, one class per cause, so callers (the Script node, tests) can
 * tell a timeout from a syntax error without parsing messages. Every error carries the log lines the
 * script wrote before it failed.
 */
export type ScriptErrorKind = "timeout" | "memory" | "stack" | "syntax" | "runtime" | "output" | "input" | "cancelled" | "sandbox";

export class ScriptError extends Error {
  readonly kind: ScriptErrorKind;
  logs: string[] = [];

  constructor(kind: ScriptErrorKind, message: string) {
    super(message);
    this.kind = kind;
    this.name = new.target.name;
  }
}

/** The script ran past its time limit and was interrupted. */
export class ScriptTimeoutError extends ScriptError {
  constructor(readonly timeoutMs: number) {
    super("timeout", `the script ran longer than its time limit of ${timeoutMs} ms and was stopped (an endless loop?)`);
  }
}

/** The script allocated more than its memory limit. */
export class ScriptMemoryError extends ScriptError {
  constructor(readonly memoryBytes: number) {
    super("memory", `the script ran out of memory: it needed more than its limit of ${formatBytes(memoryBytes)} and was stopped`);
  }
}

/** The script recursed deeper than the sandbox's stack allows. */
export class ScriptStackOverflowError extends ScriptError {
  constructor(readonly line?: number) {
    super("stack", `stack overflow${line ? ` near line ${line}` : ""}: the script recursed too deeply`);
  }
}

/** The script does not parse. Line and column count from 1 in the user's code. */
export class ScriptSyntaxError extends ScriptError {
  constructor(
    readonly detail: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super("syntax", `syntax error${line ? ` at line ${line}${column ? `, column ${column}` : ""}` : ""}: ${detail}`);
  }
}

/** The script threw (or its promise rejected). `scriptStack` is the stack inside the script. */
export class ScriptRuntimeError extends ScriptError {
  constructor(
    readonly errorName: string,
    readonly detail: string,
    readonly line?: number,
    readonly scriptStack?: string,
  ) {
    super("runtime", `${errorName}: ${detail}${line ? ` (line ${line})` : ""}`);
  }
}

/** What the script returned cannot leave the sandbox: not JSON-serialisable, or too large. */
export class ScriptOutputError extends ScriptError {
  constructor(detail: string) {
    super("output", `the script's result cannot be returned: ${detail}`);
  }
}

/** An input cannot be passed into the sandbox (not JSON-serialisable, or too large). */
export class ScriptInputError extends ScriptError {
  constructor(readonly socket: string, detail: string) {
    super("input", `input "${socket}" cannot be passed to the script: ${detail}`);
  }
}

/** The run was cancelled while the script ran (or waited for a sandbox). */
export class ScriptCancelledError extends ScriptError {
  constructor() {
    super("cancelled", "the script was cancelled");
  }
}

/** The sandbox itself failed (could not start, or its worker died); not the script's fault. */
export class SandboxError extends ScriptError {
  constructor(detail: string) {
    super("sandbox", `the script sandbox failed: ${detail}`);
  }
}

export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${+(n / (1024 * 1024)).toFixed(1)} MB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KB`;
  return `${n} bytes`;
}
