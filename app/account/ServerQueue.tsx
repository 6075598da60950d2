"use client";
import { trpc } from "../lib/trpc";

/**
 * For an admin: every user's queued and running runs, oldest first, each with Cancel (a run that holds the queue for
 * everyone else can be stopped without restarting the server). Shows nothing to other users.
 */
export function ServerQueue() {
  const utils = trpc.useUtils();
  const queue = trpc.run.serverQueue.useQuery(undefined, { refetchInterval: 3000 });
  const cancel = trpc.run.cancel.useMutation({ onSettled: () => void utils.run.serverQueue.invalidate() });
  if (!queue.data?.admin) return null;
  const runs = queue.data.runs;
  return (
    <section data-testid="server-queue">
      <h2>Server queue (admin)</h2>
      <p className="muted">Every user&apos;s queued and running runs, oldest first. Cancelling someone else&apos;s run is written to the server log.</p>
      {cancel.error && <div className="error-text">{cancel.error.message}</div>}
      <table className="models-table">
        <thead>
          <tr>
            <th>run</th>
            <th>owner</th>
            <th>status</th>
            <th>queued at</th>
            <th>started at</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.id}>
              <td>
                <code>{r.id}</code>
              </td>
              <td>{r.mine ? `${r.owner} (you)` : r.owner}</td>
              <td>{r.status === "queued" && r.position !== null ? `queued, #${r.position + 1}` : r.status}</td>
              <td>{new Date(r.createdAt).toLocaleString()}</td>
              <td>{r.startedAt ? new Date(r.startedAt).toLocaleString() : "–"}</td>
              <td>
                <button onClick={() => cancel.mutate({ runId: r.id })} disabled={cancel.isPending} aria-label={`Cancel run ${r.id} of ${r.owner}`}>
                  Cancel
                </button>
              </td>
            </tr>
          ))}
          {runs.length === 0 && (
            <tr>
              <td colSpan={6} className="muted">
                no run is queued or running
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
