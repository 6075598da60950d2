"use client";
import Link from "next/link";
import { useState } from "react";
import { trpc } from "../lib/trpc";
import { ServerQueue } from "./ServerQueue";

/** Personal API tokens: create (shown once), list, revoke. docs/cli-and-api.md "HTTP API" says how scripts use them. */
export function TokensPage() {
  const utils = trpc.useUtils();
  const tokens = trpc.tokens.list.useQuery();
  const [name, setName] = useState("");
  const [days, setDays] = useState("");
  const [fresh, setFresh] = useState<{ name: string; token: string } | null>(null);
  const create = trpc.tokens.create.useMutation({
    onSuccess: (r) => {
      setFresh({ name: r.info.name, token: r.token });
      setName("");
      void utils.tokens.list.invalidate();
    },
  });
  const revoke = trpc.tokens.revoke.useMutation({ onSuccess: () => void utils.tokens.list.invalidate() });
  return (
    <main className="page" style={{ maxWidth: 1000 }}>
      <p>
        <Link href="/">← Workflows</Link>
      </p>
      <h1>Account: API tokens</h1>
      <p className="muted">
        A personal API token lets a script act as you through the HTTP API (<a href="/api/v1/openapi.json">OpenAPI document</a>): send it as{" "}
        <code>Authorization: Bearer mst_…</code>. It is shown once; the server keeps only its SHA-256. Revoke a token you no longer use. The endpoints,
        with a Python example: <Link href="/docs/cli-and-api#http-api-scripts-and-notebooks">HTTP API</Link>.
      </p>
      <form
        className="row import-panel"
        onSubmit={(e) => {
          e.preventDefault();
          create.mutate({ name: name.trim(), ...(days ? { days: Number(days) } : {}) });
        }}
      >
        <input aria-label="Token name" placeholder="name (e.g. laptop notebook)" value={name} onChange={(e) => setName(e.target.value)} />
        <input aria-label="Expires after days" placeholder="expires after N days (optional)" type="number" min={1} value={days} onChange={(e) => setDays(e.target.value)} />
        <button className="primary" type="submit" disabled={!name.trim() || create.isPending}>
          Create token
        </button>
      </form>
      {create.error && <div className="error-text">{create.error.message}</div>}
      {fresh && (
        <div className="banner" data-testid="new-token">
          Token “{fresh.name}”: <code>{fresh.token}</code> <button onClick={() => void navigator.clipboard?.writeText(fresh.token)}>Copy</button> — copy it now, it is not shown again.
        </div>
      )}
      <table className="models-table" data-testid="token-list">
        <thead>
          <tr>
            <th>name</th>
            <th>token</th>
            <th>created</th>
            <th>last used</th>
            <th>expires</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {tokens.data?.map((t) => (
            <tr key={t.id}>
              <td>{t.name}</td>
              <td>
                <code>{t.prefix}…</code>
              </td>
              <td>{new Date(t.createdAt).toLocaleString()}</td>
              <td>{t.lastUsedAt ? new Date(t.lastUsedAt).toLocaleString() : "never"}</td>
              <td>{t.expiresAt ? new Date(t.expiresAt).toLocaleDateString() : "never"}</td>
              <td>
                <button onClick={() => revoke.mutate({ id: t.id })} aria-label={`Revoke ${t.name}`}>
                  Revoke
                </button>
              </td>
            </tr>
          ))}
          {tokens.data?.length === 0 && (
            <tr>
              <td colSpan={6} className="muted">
                no tokens yet
              </td>
            </tr>
          )}
        </tbody>
      </table>
      <ServerQueue />
    </main>
  );
}
