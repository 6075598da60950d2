/** How run memory figures read, the same in the CLI, the worker's log and the editor (no Node or browser APIs). */

/** Decimal units, like the Models page: 1 MB = 10^6 bytes. */
export function formatBytes(bytes: number): string {
  const abs = Math.abs(bytes);
  if (abs >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (abs >= 1e6) return `${(bytes / 1e6).toFixed(abs >= 1e8 ? 0 : 1)} MB`;
  return `${(bytes / 1e3).toFixed(0)} kB`;
}

export interface MemoryFigures {
  startRssBytes?: number | null;
  peakRssBytes?: number | null;
  peakDeviceBytes?: number | null;
}

/** "peak RSS 412 MB (+38 MB during the run), CUDA 1.20 GB", or undefined when nothing was recorded. */
export function describeRunMemory(m: MemoryFigures): string | undefined {
  if (m.peakRssBytes == null) return undefined;
  let text = `peak RSS ${formatBytes(m.peakRssBytes)}`;
  if (m.startRssBytes != null) text += ` (+${formatBytes(Math.max(0, m.peakRssBytes - m.startRssBytes))} during the run)`;
  if (m.peakDeviceBytes != null) text += `, CUDA ${formatBytes(m.peakDeviceBytes)}`;
  return text;
}

/** Said wherever the figures are shown: they describe the whole process. */
export const RSS_NOTE =
  "Resident memory of the process that executed the run, sampled every 50 ms and at node starts and ends. It is process-wide: runs executing at the same time in that process share it.";
