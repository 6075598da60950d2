"use client";

/** A Text Stats output in the node (app/inspector/views.tsx "text-stats"): one row of counts. */
export function TextStatsView({ value }: { value: Record<string, unknown> }) {
  return (
    <table className="balance" data-testid="text-stats">
      <tbody>
        <tr>
          <td>{String(value.words)} words</td>
          <td>{String(value.chars)} chars</td>
          <td>{String(value.lines)} lines</td>
        </tr>
      </tbody>
    </table>
  );
}
