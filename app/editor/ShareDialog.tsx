"use client";
import { useState } from "react";
import { trpc } from "@/app/lib/trpc";
import "@/app/s/history-share.css";
import { useEscape } from "@/app/lib/use-escape";

const EXPIRY: { label: string; hours: number | null }[] = [
  { label: "Never", hours: null },
  { label: "1 hour", hours: 1 },
  { label: "1 day", hours: 24 },
  { label: "7 days", hours: 24 * 7 },
  { label: "30 days", hours: 24 * 30 },
];

function absolute(path: string): string {
  return typeof window === "undefined" ? path : `${window.location.origin}${path}`;
}

/** Create, copy, list and revoke read-only links to the open workflow. */
export function ShareDialog({ workflowId, version, dirty, onClose }: { workflowId: string; version: number; dirty: boolean; onClose: () => void }) {
  useEscape(onClose);
  const utils = trpc.useUtils();
  const links = trpc.share.list.useQuery({ workflowId }, { staleTime: 0 });
  const create = trpc.share.create.useMutation({ onSuccess: () => utils.share.list.invalidate({ workflowId }) });
  const revoke = trpc.share.revoke.useMutation({ onSuccess: () => utils.share.list.invalidate({ workflowId }) });
  const [expiry, setExpiry] = useState(0);
  const [pin, setPin] = useState(false);
  const [copied, setCopied] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const copy = async (path: string) => {
    const url = absolute(path);
    try {
      await navigator.clipboard.writeText(url);
      setCopied(path);
    } catch {
      // No clipboard permission (plain http, old browser): the URL is selectable in the list.
      setError(`Copy this address by hand: ${url}`);
    }
  };

  const make = async () => {
    setError(null);
    const hours = EXPIRY[expiry]!.hours;
    try {
      const link = await create.mutateAsync({
        workflowId,
        ...(pin ? { version } : {}),
        ...(hours ? { expiresAt: new Date(Date.now() + hours * 3600_000).toISOString() } : {}),
      });
      await copy(link.path);
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <div className="dialog-backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div className="dialog share-dialog" role="dialog" aria-label="Share">
        <h2>Share a read-only link</h2>
        <p className="muted">
          Anyone with the link sees the graph, its notes and the outputs of the last finished run of the shared version (none until that version has been
          run), and can fork a copy into their own workspace. They cannot change or run yours.
        </p>
        {dirty && <div className="banner warn">You have unsaved changes: links show saved versions only. Save first to share them.</div>}
        <div className="row">
          <label>
            Expires{" "}
            <select value={expiry} onChange={(e) => setExpiry(Number(e.target.value))} aria-label="Expires">
              {EXPIRY.map((x, i) => (
                <option key={x.label} value={i}>
                  {x.label}
                </option>
              ))}
            </select>
          </label>
          <label>
            <input type="checkbox" checked={pin} onChange={(e) => setPin(e.target.checked)} /> Pin to version {version} (otherwise the link follows the latest)
          </label>
        </div>
        <div className="row">
          <button className="primary" onClick={() => void make()} disabled={create.isPending}>
            Create link
          </button>
          {copied && <span className="muted" role="status">Link copied.</span>}
        </div>
        {error && <div className="banner error">{error}</div>}
        {links.error && <div className="banner error">{links.error.message}</div>}
        {links.data && links.data.length > 0 && (
          <ul className="share-links" aria-label="Links">
            {links.data.map((l) => (
              <li key={l.id} data-testid="share-link" data-status={l.status}>
                <div className="row">
                  <input className={`link-url st-${l.status}`} readOnly value={absolute(l.path)} onFocus={(e) => e.target.select()} aria-label="Link address" />
                  {l.status === "active" && (
                    <>
                      <button onClick={() => void copy(l.path)}>Copy</button>
                      <button className="danger" onClick={() => revoke.mutate({ id: l.id })} disabled={revoke.isPending}>
                        Revoke
                      </button>
                    </>
                  )}
                </div>
                <div className="muted">
                  {l.status} · {l.version ? `version ${l.version}` : "latest version"} · created {new Date(l.createdAt).toLocaleString()}
                  {l.expiresAt ? ` · expires ${new Date(l.expiresAt).toLocaleString()}` : " · no expiry"}
                  {l.revokedAt ? ` · revoked ${new Date(l.revokedAt).toLocaleString()}` : ""}
                </div>
              </li>
            ))}
          </ul>
        )}
        <div className="buttons">
          <button onClick={onClose}>Close</button>
        </div>
      </div>
    </div>
  );
}
