import { CURRENT_SCHEMA_VERSION, type Workflow } from "@/engine/workflow/schema";

/** A valid document whose strings stress the encoders: "]]>", the closing tag, unicode, controls. */
export function trickyWorkflow(name = "Provenance ✓ ünïcødé 猫 🐈"): Workflow {
  return {
    schemaVersion: CURRENT_SCHEMA_VERSION,
    name,
    description: "ends CDATA: ]]> twice ]]]]>> and a tag </MOE_STUDIO_WORKFLOW></BWFXML> & <b>bold</b>; ctrl \u0000\u0001\t\n; nonchars \ufffe\uffff; lone \ud800; 𝄞",
    tags: ["a]]>b", "日本語"],
    nodes: [
      { id: "t1", type: "input.text", typeVersion: 1, params: { text: "say ]]> <|speech_start|>hi<|speech_end|> — «quotes» \"x\"" }, position: { x: 0, y: 0 } },
      { id: "p1", type: "output.preview", typeVersion: 1, params: {}, position: { x: 300, y: 0 }, label: "Vorschau ✨" },
    ],
    edges: [{ id: "e1", source: "t1", sourceSocket: "text", target: "p1", targetSocket: "value" }],
    notes: [{ id: "n1", text: "]]>]]>]]>", position: { x: 0, y: 200 } }],
  };
}
