/**
 * The one progress bar of the command-line tools (cli run, datasets, import, models:build): in a
 * terminal one line rewritten in place; in a log (not a TTY) a line at every `steps`-th of the way and
 * at the end, so logs stay short.
 */

/** `[#####.....]` for a fraction in 0..1. */
export function bar(fraction: number, width = 24): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

export interface ProgressBarOptions {
  /** Default process.stdout. */
  stream?: Pick<NodeJS.WriteStream, "write"> & { isTTY?: boolean };
  width?: number;
  /** Lines written over the whole way when the stream is not a terminal (default 10). */
  steps?: number;
  /** Before the bar, e.g. a model name. */
  prefix?: string;
}

export interface ProgressBar {
  /** Shows `fraction` done with `text` after the bar and the percentage. */
  update(fraction: number, text?: string): void;
  /** Prints a line of its own (a finished node, a warning) without garbling the bar. */
  line(text: string, stream?: Pick<NodeJS.WriteStream, "write">): void;
  /** Ends the bar's line (terminal). */
  done(): void;
}

export function progressBar(options: ProgressBarOptions = {}): ProgressBar {
  const stream = options.stream ?? process.stdout;
  const tty = stream.isTTY === true;
  const steps = options.steps ?? 10;
  const prefix = options.prefix ? `${options.prefix} ` : "";
  let shown = 0; // characters of the bar line on screen
  let lastStep = -1;
  const clear = () => {
    if (tty && shown > 0) stream.write(`\r${" ".repeat(shown)}\r`);
    shown = 0;
  };
  return {
    update(fraction, text = "") {
      const f = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
      const line = `${prefix}${bar(f, options.width)} ${String(Math.floor(f * 100)).padStart(3)}%${text ? `  ${text}` : ""}`;
      if (tty) {
        stream.write(`\r${line.padEnd(shown)}`);
        shown = Math.max(shown, line.length);
        return;
      }
      const step = Math.floor(f * steps);
      if (step === lastStep) return;
      lastStep = step;
      stream.write(`${line}\n`);
    },
    line(text, to = stream) {
      clear();
      to.write(`${text}\n`);
    },
    done() {
      if (tty && shown > 0) stream.write("\n");
      shown = 0;
      lastStep = -1;
    },
  };
}
