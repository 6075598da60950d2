/**
 * What every CLI command is made of: its help text, its options for node:util `parseArgs` (so `--out DIR`
 * and `--out=DIR` both work, unknown options are refused) and a `run` that returns the exit status.
 * cli.ts lists the commands; adding one is one more entry in that list.
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";

/** Bad usage or input: the CLI prints the message and exits with status 2. */
export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig["options"]>;

export interface CliCommand {
  name: string;
  /** Lines for `--help`, starting with the command's usage. */
  help: string;
  run(argv: string[]): Promise<number>;
}

/** Parses `argv` (the words after the command name) against `options`; a parse error is a UsageError. */
export function parseCommand<O extends Options>(command: string, argv: string[], options: O) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    const message = (err as Error).message
      .replace(/\. To specify a positional argument.*$/s, "")
      .replace(/^Unknown option '([^']+)'.*$/s, "unknown option $1")
      .replace(/^Option '(-[^' ]+)(?: <value>)?' argument missing$/, "$1 needs a value")
      .replace(/^Option '(-[^' ]+)' argument is ambiguous\..*$/s, (_, opt: string) => `${opt} needs a value (one starting with "-" is written ${opt}=-…)`);
    throw new UsageError(`${command}: ${message}`);
  }
  // parseArgs keeps the last of a repeated option: `--out a --out b` would drop a without a word
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== "option" || options[token.name]?.type !== "string" || options[token.name]?.multiple) continue;
    if (seen.has(token.name)) throw new UsageError(`${command}: --${token.name} is given more than once`);
    seen.add(token.name);
  }
  const { tokens: _, ...result } = parsed;
  return result;
}

/** A number option: undefined when absent, else a finite number in [min, max] (an integer with `integer`), or a UsageError. */
export function numberOption(value: string | undefined, name: string, range: { min?: number; max?: number; integer?: boolean; aboveMin?: boolean } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = value.trim() === "" ? NaN : Number(value);
  const { min = -Infinity, max = Infinity, integer = false, aboveMin = false } = range;
  const kind = integer ? "an integer" : "a number";
  const low = Number.isFinite(min), high = Number.isFinite(max);
  const bounds = low && high ? (aboveMin ? ` in (${min}, ${max}]` : ` in ${min}..${max}`) : low ? ` ${aboveMin ? ">" : "≥"} ${min}` : high ? ` ≤ ${max}` : "";
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || (aboveMin && n === min) || n > max) throw new UsageError(`${name} must be ${kind}${bounds} (got "${value}")`);
  return n;
}

/** The one positional argument a command takes (or a UsageError naming what is missing or extra). */
export function onePositional(positionals: string[], what: string): string {
  if (positionals.length === 0) throw new UsageError(`which ${what}?`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  return positionals[0]!;
}

/**
 * Makes the folder an `--out` names, before any work: a UsageError naming the cause when it cannot be (a file in the
 * way, no permission). Made one level at a time: Node's recursive mkdir loops forever where the kernel answers ENOENT
 * inside an existing folder (/proc, /sys).
 */
export async function outputDir(dir: string, option = "--out"): Promise<string> {
  const target = path.resolve(dir);
  const missing: string[] = [];
  for (let at = target; ; at = path.dirname(at)) {
    try {
      if (!(await stat(at)).isDirectory()) throw new UsageError(`cannot write ${option} ${dir}: ${at} is not a folder`);
      break;
    } catch (err) {
      if (err instanceof UsageError) throw err;
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || path.dirname(at) === at) throw new UsageError(`cannot write ${option} ${dir}: ${(err as Error).message}`);
      missing.push(at);
    }
  }
  for (const at of missing.reverse()) {
    try {
      await mkdir(at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new UsageError(`cannot write ${option} ${dir}: ${(err as Error).message}`);
    }
  }
  return target;
}

/**
 * File names for one --out directory, each given once: `run.json` is the run's own; a name already given (a node
 * called `run`, or ids like `a.trace` next to node `a`'s trace) gets a number before its extension (`run.2.json`).
 */
export function outputNames(): (name: string) => string {
  const taken = new Set(["run.json"]);
  return (name) => {
    const dot = name.lastIndexOf(".");
    const [stem, ext] = dot < 0 ? [name, ""] : [name.slice(0, dot), name.slice(dot)];
    let free = name;
    for (let n = 2; taken.has(free); n++) free = `${stem}.${n}${ext}`;
    taken.add(free);
    return free;
  };
}

/**
 * Writes an output file whole or not at all: through a temp file beside it, renamed into place, so a full disk or a
 * kill leaves no truncated JSON or safetensors for a script to read. A target that is not a regular file (/dev/stdout,
 * /dev/null, a pipe) is written directly.
 */
export async function writeOutput(file: string, data: string | Uint8Array): Promise<void> {
  await viaTemp(file, (target) => writeFile(target, data));
}

/** copyFile, whole or not at all (writeOutput). */
export async function copyOutput(source: string, file: string): Promise<void> {
  await viaTemp(file, (target) => copyFile(source, target));
}

async function viaTemp(file: string, write: (target: string) => Promise<void>): Promise<void> {
  const existing = await stat(file).catch(() => undefined);
  if (existing && !existing.isFile()) return write(file);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await write(tmp);
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
