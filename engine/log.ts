/**
 * Structured logs (pino) for the server, the worker and the engine's host services: readable lines in a
 * terminal (pino-pretty), one JSON object per line with LOG_FORMAT=json (the default when stdout is not
 * a terminal, e.g. under Docker). Lines about a run carry `runId`, about a node also `nodeId`, as fields.
 * Text that came from users (a Script node's console output) is logged as one field (`output`), which
 * both formats print escaped: a newline in it cannot start a forged log line.
 */
import pino, { type Logger } from "pino";
import pretty from "pino-pretty";
import { config } from "./config";

let root: Logger | undefined;

function makeLogger(stream: NodeJS.WritableStream = process.stdout, format = config().LOG_FORMAT, level: string = config().LOG_LEVEL): Logger {
  const json = (format ?? ((stream as { isTTY?: boolean }).isTTY ? "pretty" : "json")) === "json";
  const options = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (json) return pino(options, stream);
  // In-process (not a transport thread): works inside Next's server bundle and in tsx scripts alike.
  return pino(options, pretty({ destination: stream, colorize: (stream as { isTTY?: boolean }).isTTY === true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname", singleLine: true, sync: true }));
}

/** The process's logger (created on first use, after start-up has checked LOG_FORMAT and LOG_LEVEL). */
export function log(): Logger {
  return (root ??= makeLogger());
}

/**
 * The command-line tools print their own progress on stdout: their logs go to stderr, and only from
 * `warn` up unless LOG_LEVEL says otherwise (LOG_LEVEL=info shows run milestones and Script output).
 */
export function logToStderr(): void {
  root = makeLogger(process.stderr, config().LOG_FORMAT, process.env.LOG_LEVEL ? config().LOG_LEVEL : "warn");
}

/** A logger writing to `stream` in `format` (tests, and tools that log elsewhere). */
export function loggerTo(stream: NodeJS.WritableStream, format: "json" | "pretty"): Logger {
  return makeLogger(stream, format);
}

/**
 * Text with the characters JSON leaves alone but logs and terminals treat specially (DEL, C1 controls
 * such as the 8-bit CSI, U+2028/U+2029, bidirectional overrides) written as \uXXXX escapes.
 */
export function escapeLogControls(text: string): string {
  return text.replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * Text from a workflow (an error, a node's summary) as one inert terminal line: escapeLogControls, and the C0 controls
 * (newline, carriage return, escape, …) written as JSON writes them.
 */
export function terminalLine(text: string): string {
  return escapeLogControls(text).replace(/[\u0000-\u001f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

/** What a node wrote (a Script's console.log, a TTS warning): one escaped field, with the run and node ids. */
export function nodeOutput(logger: Logger, runId: string, nodeId: string, output: string): void {
  logger.info({ runId, nodeId: escapeLogControls(nodeId), output: escapeLogControls(output) }, "node output");
}
