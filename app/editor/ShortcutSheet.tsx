"use client";
import { useEscape } from "../lib/use-escape";

/** Every keyboard shortcut of the editor (opened with ?). README "Using it" lists the same. */
export const SHORTCUTS: [keys: string, what: string][] = [
  ["Ctrl+K · Shift+A · double-click", "add a node (palette)"],
  ["Ctrl+Enter", "run the workflow"],
  ["Ctrl+S", "save a new version"],
  ["Ctrl+Z · Ctrl+Shift+Z (Ctrl+Y)", "undo · redo"],
  ["Ctrl+C · Ctrl+V", "copy · paste nodes (also into another workflow)"],
  ["Ctrl+D", "duplicate the selection"],
  ["Delete · Backspace", "remove the selection"],
  ["Escape", "close the open dialog, inspector or panel"],
  ["?", "this list"],
];

export function ShortcutSheet({ onClose }: { onClose: () => void }) {
  useEscape(onClose);
  return (
    <div className="dialog-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="dialog" role="dialog" aria-label="Keyboard shortcuts">
        <h2>Keyboard shortcuts</h2>
        <table className="balance">
          <tbody>
            {SHORTCUTS.map(([keys, what]) => (
              <tr key={keys}>
                <td>
                  <kbd>{keys}</kbd>
                </td>
                <td>{what}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <p className="muted">On a Mac, ⌘ works wherever Ctrl does.</p>
        <div className="buttons">
          <button onClick={onClose}>Close</button>
        </div>
      </div>
    </div>
  );
}
