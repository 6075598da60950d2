"use client";
import { memo, useEffect, useRef, useState } from "react";
import { useFileUrl } from "./file-url";

/** In-place radix-2 FFT of (re, im), length a power of two. */
function fft(re: Float32Array, im: Float32Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < len / 2; k++) {
        const wr = Math.cos(ang * k), wi = Math.sin(ang * k);
        const a = i + k, b = a + len / 2;
        const xr = re[b]! * wr - im[b]! * wi, xi = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a]! += xr;
        im[a]! += xi;
      }
    }
  }
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

/** Log-magnitude STFT (Hann window 512, hop 256), low frequencies at the bottom. */
function drawSpectrogram(canvas: HTMLCanvasElement, x: Float32Array) {
  const N = 512, hop = 256;
  const frames = Math.max(1, Math.floor((x.length - N) / hop) + 1);
  const bins = N / 2;
  const db = new Float32Array(frames * bins);
  const re = new Float32Array(N), im = new Float32Array(N);
  let max = -Infinity;
  for (let f = 0; f < frames; f++) {
    for (let i = 0; i < N; i++) {
      re[i] = (x[f * hop + i] ?? 0) * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / N));
      im[i] = 0;
    }
    fft(re, im);
    for (let b = 0; b < bins; b++) {
      const v = 10 * Math.log10(re[b]! ** 2 + im[b]! ** 2 + 1e-10);
      db[f * bins + b] = v;
      max = Math.max(max, v);
    }
  }
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
        drawSpectrogram(spec.current, x);
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
