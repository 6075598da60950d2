"use client";
import { useEffect, useRef } from "react";

// Open dialogs, innermost last: Escape closes only the top one (an inspector opened over the runs panel
// closes first, then the panel).
const stack: { current: () => void }[] = [];

function onKey(e: KeyboardEvent) {
  if (e.key !== "Escape" || e.defaultPrevented || stack.length === 0) return;
  // Monaco and other widgets use Escape themselves (closing a suggestion list): let them.
  const t = e.target as HTMLElement | null;
  if (t?.closest?.(".monaco-editor")) return;
  e.preventDefault();
  stack[stack.length - 1]!.current();
}

/** Closes a dialog, inspector or panel with Escape while it is open (the most recently opened first). */
export function useEscape(onClose: () => void, active = true): void {
  const ref = useRef(onClose);
  ref.current = onClose;
  useEffect(() => {
    if (!active) return;
    const entry = { get current() { return ref.current; } };
    if (stack.length === 0) window.addEventListener("keydown", onKey);
    stack.push(entry);
    return () => {
      stack.splice(stack.indexOf(entry), 1);
      if (stack.length === 0) window.removeEventListener("keydown", onKey);
    };
  }, [active]);
}
