"use client";
import { useEscape } from "../lib/use-escape";

/** Every keyboard shortcut of the editor (opened with ? or the header's ? button). docs/editor.md lists the same. */
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

/** The docs pages (served at /docs/<page>) the editor's help links to; they open in a new tab, so unsaved work stays. */
const HELP_PAGES: [page: string, title: string][] = [
  ["editor", "Using the editor"],
  ["models", "Models and import"],
  ["datasets-and-analysis", "Datasets and analysis"],
  ["cli-and-api", "CLI and HTTP API"],
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
        <h2>Documentation</h2>
        <ul className="help-links" data-testid="help-links">
          {HELP_PAGES.map(([page, title]) => (
            <li key={page}>
              <a href={`/docs/${page}`} target="_blank" rel="noopener">
                {title}
              </a>
            </li>
          ))}
          <li>
            <a href="/docs" target="_blank" rel="noopener">
              All pages
            </a>
          </li>
        </ul>
        <div className="buttons">
          <button onClick={onClose}>Close</button>
        </div>
      </div>
    </div>
  );
}
