import { z } from "zod";
import { defaultParams, type NodeSignature } from "@/engine/node";
import { SOCKET_TYPES } from "@/engine/sockets";
import { defaultModelFor, readDefaults } from "@/models/defaults";
import { catalogue } from "@/nodes";

/** A node type as the browser sees it: signature, params as JSON Schema (with widget hints), defaults. */
export interface NodeTypeInfo extends NodeSignature {
  paramsSchema: Record<string, unknown>;
  defaults: Record<string, unknown>;
}

let cached: { nodes: NodeTypeInfo[]; sockets: typeof SOCKET_TYPES } | undefined;

/**
 * The catalogue, with each model-taking node type's default model as set on the Models page (read per
 * call): the server's, or those given (a user's own over the server's, app/server/model-defaults.ts).
 */
export function catalogInfo(modelDefaults: Record<string, string> = readDefaults()) {
  const info = staticCatalogInfo();
  return {
    ...info,
    nodes: info.nodes.map((n) => {
      const model = defaultModelFor(n.type, modelDefaults);
      const codec = modelDefaults[`${n.type}.codec`]; // the MoE-TTS codec chosen on the Models page
      const withModel = model !== undefined && "model" in n.defaults ? { ...n, defaults: { ...n.defaults, model } } : n;
      return codec !== undefined && "codec" in n.defaults ? { ...withModel, defaults: { ...withModel.defaults, codec } } : withModel;
    }),
  };
}

function staticCatalogInfo() {
  cached ??= {
    sockets: SOCKET_TYPES,
    nodes: catalogue.list().map((def) => ({
      type: def.type,
      typeVersion: def.typeVersion,
      title: def.title,
      category: def.category,
      description: def.description,
      inputs: Object.fromEntries(Object.entries(def.inputs).map(([name, { kind: _kind, ...spec }]) => [name, spec])),
      outputs: Object.fromEntries(Object.entries(def.outputs).map(([name, { kind: _kind, ...spec }]) => [name, spec])), // a kind's schema stays on the server
      paramsSchema: z.toJSONSchema(def.params, { io: "input", unrepresentable: "any" }) as Record<string, unknown>,
      defaults: defaultParams(def),
    })),
  };
  return cached;
}
