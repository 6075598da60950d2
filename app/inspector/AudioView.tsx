"use client";
import { memo, useEffect, useRef, useState } from "react";
import { useFileUrl } from "./file-url";
import { spectrogramDb, type Spectrogram } from "./spectrogram";

let worker: Worker | null | undefined;
let nextId = 1;
const pending = new Map<number, { samples: Float32Array; resolve: (s: Spectrogram) => void }>();

/** The spectrogram from the worker (spectrogram-worker.ts); on the main thread where workers are unavailable. */
function spectrogramOf(x: Float32Array): Promise<Spectrogram> {
  if (worker === undefined) {
    try {
      worker = new Worker(new URL("./spectrogram-worker.ts", import.meta.url), { type: "module" });
      worker.onmessage = (e: MessageEvent<Spectrogram & { id: number }>) => {
        pending.get(e.data.id)?.resolve(e.data);
        pending.delete(e.data.id);
      };
      worker.onerror = () => {
        worker = null;
        // The worker failed to load or crashed: compute what it was asked for here.
        for (const { samples, resolve } of pending.values()) resolve(spectrogramDb(samples));
        pending.clear();
      };
    } catch {
      worker = null;
    }
  }
  if (!worker) return Promise.resolve(spectrogramDb(x));
  const id = nextId++;
  return new Promise((resolve) => {
    const samples = x.slice();
    pending.set(id, { samples, resolve });
    worker!.postMessage({ id, samples });
  });
}

function drawWaveform(canvas: HTMLCanvasElement, x: Float32Array) {
  const ctx = canvas.getContext("2d")!;
  const { width: W, height: H } = canvas;
  ctx.fillStyle = "#0c0e14";
  ctx.fillRect(0, 0, W, H);
  ctx.strokeStyle = "#a78bfa";
  ctx.beginPath();
  const per = Math.max(1, Math.floor(x.length / W));
  for (let px = 0; px < W; px++) {
    let lo = 1, hi = -1;
    for (let i = px * per; i < Math.min(x.length, (px + 1) * per); i++) {
      lo = Math.min(lo, x[i]!);
      hi = Math.max(hi, x[i]!);
    }
    if (lo > hi) continue;
    ctx.moveTo(px + 0.5, ((1 - hi) / 2) * H);
    ctx.lineTo(px + 0.5, ((1 - lo) / 2) * H + 1);
  }
  ctx.stroke();
}

/** The log-power STFT (spectrogram.ts) as an image, low frequencies at the bottom. */
function drawSpectrogram(canvas: HTMLCanvasElement, { db, frames, bins, max }: Spectrogram) {
  const ctx = canvas.getContext("2d")!;
  const img = ctx.createImageData(frames, bins);
  for (let f = 0; f < frames; f++) {
    for (let b = 0; b < bins; b++) {
      const v = Math.max(0, Math.min(1, (db[f * bins + b]! - (max - 80)) / 80));
      const o = ((bins - 1 - b) * frames + f) * 4;
      img.data[o] = Math.round(255 * Math.min(1, v * 1.6));
      img.data[o + 1] = Math.round(255 * Math.max(0, v * 1.6 - 0.6));
      img.data[o + 2] = Math.round(120 * (1 - v) + 60 * v);
      img.data[o + 3] = 255;
    }
  }
  const off = document.createElement("canvas");
  off.width = frames;
  off.height = bins;
  off.getContext("2d")!.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
}

/** An audio player with its waveform and spectrogram (decoded in the browser). */
export const AudioView = memo(function AudioView({ file }: { file: string }) {
  const wave = useRef<HTMLCanvasElement>(null);
  const spec = useRef<HTMLCanvasElement>(null);
  const [error, setError] = useState<string | null>(null);
  const fileUrl = useFileUrl();
  useEffect(() => {
    let live = true;
    (async () => {
      const bytes = await (await fetch(fileUrl(file))).arrayBuffer();
      const ac = new AudioContext();
      try {
        const audio = await ac.decodeAudioData(bytes);
        if (!live || !wave.current || !spec.current) return;
        const x = audio.getChannelData(0);
        drawWaveform(wave.current, x);
        const spectrogram = await spectrogramOf(x);
        if (live && spec.current) drawSpectrogram(spec.current, spectrogram);
      } finally {
        void ac.close();
      }
    })().catch((err: Error) => live && setError(`cannot draw this audio: ${err.message}`));
    return () => {
      live = false;
    };
  }, [file, fileUrl]);
  return (
    <div className="audio-view" data-testid="audio-view">
      <audio controls src={fileUrl(file)} style={{ width: "100%" }} />
      <canvas ref={wave} width={260} height={48} aria-label="waveform" data-testid="waveform" />
      <canvas ref={spec} width={260} height={64} aria-label="spectrogram" data-testid="spectrogram" />
      {error && <div className="error-text">{error}</div>}
    </div>
  );
});
