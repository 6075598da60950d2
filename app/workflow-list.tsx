"use client";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useRef, useState } from "react";
import { trpc } from "./lib/trpc";

function when(iso: string): string {
  return new Date(iso).toLocaleString();
}

export function WorkflowList() {
  const router = useRouter();
  const [search, setSearch] = useState("");
  const [trash, setTrash] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [renaming, setRenaming] = useState<{ id: string; name: string } | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const utils = trpc.useUtils();
  const list = trpc.workflow.list.useQuery({ search: search || undefined, trash });
  const onError = (e: { message: string }) => setError(e.message);
  const refresh = () => utils.workflow.list.invalidate();
  const create = trpc.workflow.create.useMutation({ onError, onSuccess: ({ id }) => router.push(`/w/${id}`) });
  const rename = trpc.workflow.rename.useMutation({ onError, onSuccess: () => { setRenaming(null); void refresh(); } });
  const duplicate = trpc.workflow.duplicate.useMutation({ onError, onSuccess: refresh });
  const toTrash = trpc.workflow.trash.useMutation({ onError, onSuccess: refresh });
  const restore = trpc.workflow.restore.useMutation({ onError, onSuccess: refresh });
  const purge = trpc.workflow.deleteForever.useMutation({ onError, onSuccess: refresh });
  const check = trpc.workflow.check.useMutation();
  const examples = trpc.workflow.examples.useQuery();
  const fromExample = trpc.workflow.createFromExample.useMutation({ onError, onSuccess: ({ id }) => router.push(`/w/${id}`) });

  async function importFile(file: File) {
    setError(null);
    try {
      const { workflow, problems } = await check.mutateAsync({ document: await file.text() });
      const { id } = await create.mutateAsync({ document: workflow, message: `Imported from ${file.name}` });
      const errors = problems.filter((p) => p.severity === "error").length;
      router.push(`/w/${id}${problems.length ? `?imported=${problems.length}&errors=${errors}` : ""}`);
    } catch (e) {
      setError(`Could not import ${file.name}: ${(e as Error).message}`);
    }
  }

  return (
    <main className="page">
      <h1>MoE Studio</h1>
      <p className="muted">Wire encoders, MoE-LLMs, routing inspectors, TTS and DiT nodes into pipelines; run them and look inside.</p>
      <div className="toolbar">
        <input type="search" placeholder="Search workflows…" value={search} onChange={(e) => setSearch(e.target.value)} aria-label="Search workflows" />
        <button className="primary" onClick={() => create.mutate({ name: "Untitled workflow" })} disabled={create.isPending}>
          New workflow
        </button>
        <button onClick={() => fileInput.current?.click()}>Import…</button>
        <input
          ref={fileInput}
          type="file"
          accept=".json,application/json"
          hidden
          data-testid="import-input"
          onChange={(e) => {
            const f = e.target.files?.[0];
            e.target.value = "";
            if (f) void importFile(f);
          }}
        />
        <button onClick={() => setTrash(!trash)} aria-pressed={trash}>
          {trash ? "← Back to workflows" : "Trash"}
        </button>
        <Link className="button-like" href="/models">
          Models
        </Link>
        <Link className="button-like" href="/account">
          API tokens
        </Link>
        <Link className="button-like" href="/docs">
          Docs
        </Link>
      </div>
      {!trash && examples.data && examples.data.length > 0 && (
        <section className="examples" aria-label="Examples">
          {examples.data.map((ex) => (
            <button key={ex.id} className="example" onClick={() => fromExample.mutate({ exampleId: ex.id })} disabled={fromExample.isPending}>
              <strong>{ex.title}</strong>
              <span className="muted">{ex.description}</span>
            </button>
          ))}
        </section>
      )}
      {error && (
        <div className="banner error" role="alert">
          {error} <button onClick={() => setError(null)}>Dismiss</button>
        </div>
      )}
      {list.isLoading && <p className="muted">Loading…</p>}
      {list.error && <div className="banner error">{list.error.message}</div>}
      {list.data && list.data.length === 0 && <p className="muted">{trash ? "The trash is empty." : search ? "No workflow matches." : "No workflows yet: create one or import a .json file."}</p>}
      {list.data && list.data.length > 0 && (
        <ul className="wf-list" aria-label={trash ? "Trash" : "Workflows"}>
          {list.data.map((wf) => (
            <li key={wf.id} data-testid="workflow-row">
              <div className="name">
                {renaming?.id === wf.id ? (
                  <form onSubmit={(e) => { e.preventDefault(); rename.mutate(renaming); }} className="row">
                    <input autoFocus value={renaming.name} onChange={(e) => setRenaming({ id: wf.id, name: e.target.value })} aria-label="New name" />
                    <button type="submit">Rename</button>
                    <button type="button" onClick={() => setRenaming(null)}>Cancel</button>
                  </form>
                ) : trash ? (
                  <span>{wf.name}</span>
                ) : (
                  <a href={`/w/${wf.id}`}>{wf.name}</a>
                )}
                <div className="muted">
                  v{wf.latestVersion} · {trash && wf.deletedAt ? `deleted ${when(wf.deletedAt)}` : `updated ${when(wf.updatedAt)}`}
                  {wf.tags.length > 0 && ` · ${wf.tags.join(", ")}`}
                </div>
              </div>
              <div className="actions">
                {trash ? (
                  <>
                    <button onClick={() => restore.mutate({ id: wf.id })}>Restore</button>
                    <button className="danger" onClick={() => confirm(`Delete "${wf.name}" and all its versions for good?`) && purge.mutate({ id: wf.id })}>
                      Delete forever
                    </button>
                  </>
                ) : (
                  <>
                    <button onClick={() => setRenaming({ id: wf.id, name: wf.name })}>Rename</button>
                    <button onClick={() => duplicate.mutate({ id: wf.id })}>Duplicate</button>
                    <button className="danger" onClick={() => toTrash.mutate({ id: wf.id })}>Delete</button>
                  </>
                )}
              </div>
            </li>
          ))}
        </ul>
      )}
    </main>
  );
}
