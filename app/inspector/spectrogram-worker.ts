/// <reference lib="webworker" />
import { spectrogramDb } from "./spectrogram";

// One request per waveform: { id, samples } → { id, db, frames, bins, max } (db transferred, not copied).
self.onmessage = (e: MessageEvent<{ id: number; samples: Float32Array }>) => {
  const s = spectrogramDb(e.data.samples);
  (self as unknown as Worker).postMessage({ id: e.data.id, ...s }, [s.db.buffer]);
};
