/**
 * One log record per call, whatever the text holds. Node output (a Script's console.log above all) is
 * untrusted: a newline in it must not start what reads as another server log line, nor an escape
 * sequence drive the terminal. The text is quoted JSON-style, with the characters JSON leaves alone but
 * logs and terminals treat specially (DEL, C1 controls, U+2028/U+2029, bidirectional overrides) escaped.
 */
export function quoteLogText(text: string): string {
  return JSON.stringify(text).replace(/[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The server log line of a node's ctx.log message: `[run <id>] "<node>": "<message>"`. */
export function runLogLine(runId: string, nodeId: string, message: string): string {
  return `[run ${runId}] ${quoteLogText(nodeId)}: ${quoteLogText(message)}`;
}
