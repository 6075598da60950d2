import { z } from "zod";
import type { RoutingTrace } from "../trace";
import { defineValueKind } from "./kind";

export type { RoutingTrace };

const list = z.custom<unknown[]>((v) => Array.isArray(v));

/** ROUTING_TRACE: every routing decision of an MoE run (engine/trace.ts). */
export const routingTrace = defineValueKind<RoutingTrace>({
  name: "ROUTING_TRACE",
  noun: "a routing trace",
  tag: "routing-trace",
  socket: { color: "#f87171", description: "Per-layer routing decisions of an MoE." },
  schema: z.object({ kind: z.literal("routing-trace"), model: z.string(), experts: list, tokens: list, layers: list }),
  describe: (o) => ({ type: "routing-trace", headline: `routing of ${o.tokens.length} tokens × ${o.layers.length} layers × ${o.experts.length} experts`, model: o.model }),
});
