"use client";
import { useMemo, useState } from "react";
import type { RoutingTrace } from "@/engine/trace";
import { colorOf } from "./CanvasChart";
import { Chart } from "./Chart";
import type { EChartsOption } from "./echarts";

/** Tokens shown at once in the grid; a slider moves the window. */
const WINDOW = 32;

const shown = (s: string) => s.replace(/\n/g, "⏎").replace(/ /g, "␣") || "·";

/** Colour of a cell by the rank of the final prediction at that layer: 0 (already the top) bright, far ranks dark. */
const rankColor = colorOf({ min: 0, max: 4, stops: ["#15803d", "#3f6212", "#713f12", "#3b1f1f", "#1f2937"] });
export const rankShade = (rank: number) => rankColor(Math.log10(rank + 1));

/** Mean KL(final ‖ layer) over the tokens, per layer (and one token's, when given). */
export function klPerLayer(trace: RoutingTrace, token?: number): { mean: number[]; token: number[] | null } {
  const lens = trace.lens!;
  const N = trace.tokens.length;
  const mean = lens.layers.map((l) => {
    let s = 0;
    for (let n = 0; n < N; n++) s += l.kl[n]!;
    return N ? s / N : 0;
  });
  return { mean, token: token === undefined ? null : lens.layers.map((l) => l.kl[token]!) };
}

function klOption(trace: RoutingTrace, token: number | null): EChartsOption {
  const kl = klPerLayer(trace, token ?? undefined);
  return {
    title: { text: "KL(final ‖ layer) per layer (nats)", textStyle: { fontSize: 12 } },
    tooltip: { trigger: "axis" },
    legend: { top: 24 },
    grid: { left: 50, right: 16, top: 56, bottom: 28 },
    xAxis: { type: "category", data: kl.mean.map((_, l) => `L${l}`) },
    yAxis: { type: "value", min: 0 },
    series: [
      { name: "mean over tokens", type: "line", data: kl.mean.map((v) => +v.toFixed(5)), lineStyle: { width: 3 } },
      ...(kl.token ? [{ name: `token ${token}`, type: "line", data: kl.token.map((v) => +v.toFixed(5)) }] : []),
    ],
  };
}

/**
 * The logit lens of a trace: a layer × token grid (top-1 next token of the residual stream after each layer,
 * shaded by the rank of the model's final prediction there), the top-5 of a cell on hover, and the KL to the
 * final distribution per layer as a line.
 */
export function LensView({ trace }: { trace: RoutingTrace }) {
  const lens = trace.lens!;
  const N = trace.tokens.length;
  const L = lens.layers.length;
  const K = lens.k;
  const [start, setStart] = useState(Math.max(0, N - WINDOW));
  const [hover, setHover] = useState<{ layer: number; token: number } | null>(null);
  const text = (id: number) => lens.texts?.[id] ?? `#${id}`;
  const tokens = useMemo(() => Array.from({ length: Math.min(WINDOW, N - start) }, (_, i) => start + i), [start, N]);
  const option = useMemo(() => klOption(trace, hover?.token ?? null), [trace, hover?.token]);
  const cell = hover && lens.layers[hover.layer];
  return (
    <div data-testid="lens-view">
      {N > WINDOW && (
        <label className="muted">
          tokens {start}–{start + tokens.length - 1} of {N}{" "}
          <input type="range" min={0} max={N - WINDOW} value={start} onChange={(e) => setStart(Number(e.target.value))} aria-label="Lens token window" />
        </label>
      )}
      <div style={{ overflowX: "auto" }}>
        <table className="lens-grid" data-testid="lens-grid">
          <thead>
            <tr>
              <th>layer</th>
              {tokens.map((n) => (
                <th key={n} title={`token ${n}`}>{shown(trace.tokens[n]!.text)}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {Array.from({ length: L }, (_, i) => L - 1 - i).map((l) => (
              <tr key={l}>
                <td>L{l}</td>
                {tokens.map((n) => {
                  const layer = lens.layers[l]!;
                  return (
                    <td key={n} style={{ background: rankShade(layer.finalRank[n]!) }} onMouseEnter={() => setHover({ layer: l, token: n })} data-testid={`lens-cell-L${l}-${n}`}>
                      {shown(text(layer.topIds[n * K]!))}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p className="muted">Each cell: the most likely next token if the model stopped after that layer; green where the model&apos;s final prediction is already ranked first, darker the further down it is.</p>
      {cell && hover ? (
        <div className="token-detail" data-testid="lens-detail">
          <strong>
            after L{hover.layer}, at token {hover.token} “{trace.tokens[hover.token]!.text}”: final prediction ranked {cell.finalRank[hover.token]! + 1}, KL to the final distribution {cell.kl[hover.token]!.toFixed(4)}
          </strong>
          <table>
            <tbody>
              {Array.from({ length: K }, (_, j) => (
                <tr key={j}>
                  <td>{j + 1}.</td>
                  <td>“{text(cell.topIds[hover.token * K + j]!)}”</td>
                  <td>{(Math.exp(cell.topLogprobs[hover.token * K + j]!) * 100).toFixed(2)} %</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <p className="muted">Hover a cell for its top-{K} predictions.</p>
      )}
      <Chart option={option} height={240} name="logit-lens-kl" testId="lens-kl" />
    </div>
  );
}
