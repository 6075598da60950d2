"use client";
import { AudioView } from "./AudioView";
import { useFileUrl } from "./file-url";

/** Previews of media and text outputs (app/inspector/views.tsx): what the run stored, by file id. */
export function ImagePreview({ socket, value }: { socket: string; value: Record<string, unknown> }) {
  const fileUrl = useFileUrl();
  return typeof value.file === "string" ? <img className="thumb" src={fileUrl(value.file)} alt={`${socket} output`} /> : null;
}

export function AudioPreview({ value }: { value: Record<string, unknown> }) {
  return typeof value.file === "string" ? <AudioView file={value.file} /> : null;
}

export function VideoPreview({ value }: { value: Record<string, unknown> }) {
  const fileUrl = useFileUrl();
  return typeof value.file === "string" ? <video controls src={fileUrl(value.file)} className="thumb" /> : null;
}

export function TextPreview({ value }: { value: Record<string, unknown> }) {
  return typeof value.text === "string" ? <pre className="out-text nowheel">{value.text}</pre> : null;
}
