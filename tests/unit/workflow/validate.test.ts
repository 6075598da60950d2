import { describe, expect, it } from "vitest";
import { z } from "zod";
import { defineNode, NodeCatalogue } from "@/engine/node";
import { checkConnection } from "@/engine/workflow/connection";
import { emptyWorkflow, type Workflow } from "@/engine/workflow/schema";
import { findCycles, validateWorkflow } from "@/engine/workflow/validate";
import { planRunSet } from "@/engine/executor";
import { audioInput } from "@/nodes/audio-input";
import { imageInput } from "@/nodes/image-input";
import { textInput } from "@/nodes/text-input";
import { videoInput } from "@/nodes/video-input";

const noop = async () => ({});
const cat = new NodeCatalogue([
  defineNode({ type: "t.text", typeVersion: 1, title: "Text", category: "Inputs", description: "", inputs: {}, outputs: { text: { type: "TEXT" } }, params: z.object({}), execute: noop }),
  defineNode({ type: "t.image", typeVersion: 1, title: "Image", category: "Inputs", description: "", inputs: {}, outputs: { image: { type: "IMAGE" } }, params: z.object({}), execute: noop }),
  defineNode({
    type: "t.join",
    typeVersion: 2,
    title: "Join",
    category: "Utility",
    description: "",
    inputs: { a: { type: "TEXT" }, b: { type: "TEXT", optional: true } },
    outputs: { text: { type: "TEXT" } },
    params: z.object({ times: z.number().int().min(1).max(5).default(1) }),
    execute: noop,
  }),
  defineNode({ type: "t.show", typeVersion: 1, title: "Show", category: "Outputs", description: "", inputs: { value: { type: "ANY" } }, outputs: {}, params: z.object({}), execute: noop }),
]);

function doc(nodes: [string, string][], edges: [string, string, string, string][], extra: Partial<Workflow> = {}): Workflow {
  return {
    ...emptyWorkflow("t"),
    nodes: nodes.map(([id, type], i) => ({ id, type, typeVersion: type === "t.join" ? 2 : 1, params: {}, position: { x: i * 100, y: 0 } })),
    edges: edges.map(([source, sourceSocket, target, targetSocket], i) => ({ id: `e${i}`, source, sourceSocket, target, targetSocket })),
    ...extra,
  };
}

const codes = (w: Workflow) => validateWorkflow(w, cat).map((p) => `${p.severity}:${p.code}:${p.nodeId ?? ""}`);

describe("validateWorkflow", () => {
  it("a good graph has no problems", () => {
    expect(codes(doc([["t", "t.text"], ["j", "t.join"], ["s", "t.show"]], [["t", "text", "j", "a"], ["j", "text", "s", "value"]]))).toEqual([]);
  });

  it("unknown node type is a warning, not an error", () => {
    expect(codes(doc([["x", "t.future"]], []))).toEqual(["warning:unknown-node-type:x"]);
  });

  it("a node saved by a newer version is a warning", () => {
    const w = doc([["t", "t.text"]], []);
    w.nodes[0]!.typeVersion = 7;
    expect(codes(w)).toEqual(["warning:newer-node-version:t"]);
  });

  it("invalid params name the node and the param", () => {
    const w = doc([["t", "t.text"], ["j", "t.join"]], [["t", "text", "j", "a"]]);
    w.nodes[1]!.params = { times: 9 };
    const problems = validateWorkflow(w, cat);
    expect(problems.map((p) => p.code)).toEqual(["invalid-params"]);
    expect(problems[0]!.message).toMatch(/"j".*param "times"/);
  });

  it("the real input nodes warn, naming the node, when a run would stop at them or work on nothing; a warning does not block a run", () => {
    const real = new NodeCatalogue([imageInput, audioInput, videoInput, textInput]);
    const w: Workflow = {
      ...emptyWorkflow("t"),
      nodes: [
        { id: "img", label: "Photo", type: "input.image", typeVersion: 1, params: {}, position: { x: 0, y: 0 } },
        { id: "aud", type: "input.audio", typeVersion: 1, params: { file: "" }, position: { x: 0, y: 100 } },
        { id: "vid", type: "input.video", typeVersion: 1, params: { file: "a".repeat(64) }, position: { x: 0, y: 200 } },
        { id: "t1", type: "input.text", typeVersion: 1, params: { text: "" }, position: { x: 0, y: 300 } },
        { id: "t2", type: "input.text", typeVersion: 1, params: { text: " \n\t" }, position: { x: 0, y: 400 } },
        { id: "t3", type: "input.text", typeVersion: 1, params: { text: "Hi" }, position: { x: 0, y: 500 } },
      ],
    };
    const problems = validateWorkflow(w, real);
    expect(problems.map((p) => `${p.severity}:${p.code}:${p.nodeId}: ${p.message}`)).toEqual([
      'warning:node-warning:img: node "Photo" (input.image): choose an image file: a run stops at this node until one is chosen',
      'warning:node-warning:aud: node "aud" (input.audio): choose an audio file: a run stops at this node until one is chosen',
      'warning:node-warning:t1: node "t1" (input.text): the text is empty',
      'warning:node-warning:t2: node "t2" (input.text): the text is only white space',
    ]);
    expect(planRunSet(w, real).blocking).toEqual([]);
  });

  it("incompatible sockets name both ends", () => {
    const problems = validateWorkflow(doc([["i", "t.image"], ["j", "t.join"]], [["i", "image", "j", "a"]]), cat);
    const p = problems.find((x) => x.code === "incompatible-sockets")!;
    expect(p.severity).toBe("error");
    expect(p.message).toContain("(IMAGE)");
    expect(p.message).toContain("j");
    expect(p.socket).toBe("a");
  });

  it("missing required inputs are errors; optional ones are not", () => {
    expect(codes(doc([["j", "t.join"]], []))).toEqual(["error:missing-required-input:j"]);
  });

  it("connectOneOf: none of the inputs connected is an error; both is one only when exclusive", () => {
    const either = (exclusive: boolean) =>
      new NodeCatalogue([
        ...cat.list(),
        defineNode({
          type: "t.either",
          typeVersion: 1,
          title: "Either",
          category: "Utility",
          description: "",
          inputs: { text: { type: "TEXT", optional: true }, image: { type: "IMAGE", optional: true } },
          connectOneOf: { inputs: ["text", "image"], exclusive },
          outputs: {},
          params: z.object({}),
          execute: noop,
        }),
      ]);
    const nodes: [string, string][] = [["t", "t.text"], ["i", "t.image"], ["x", "t.either"]];
    const none = validateWorkflow(doc(nodes, []), either(true));
    expect(none.map((p) => `${p.code}:${p.nodeId}`)).toEqual(["missing-required-input:x"]);
    expect(none[0]!.message).toContain('"text" or "image"');
    expect(validateWorkflow(doc(nodes, [["t", "text", "x", "text"]]), either(true))).toEqual([]);
    const both = doc(nodes, [["t", "text", "x", "text"], ["i", "image", "x", "image"]]);
    expect(validateWorkflow(both, either(true)).map((p) => `${p.severity}:${p.code}:${p.nodeId}`)).toEqual(["error:conflicting-inputs:x"]);
    expect(validateWorkflow(both, either(false))).toEqual([]);
  });

  it("connectOneOf may name only optional inputs", () => {
    expect(() =>
      defineNode({ type: "t.bad", typeVersion: 1, title: "Bad", category: "Utility", description: "", inputs: { a: { type: "TEXT" } }, connectOneOf: { inputs: ["a"], exclusive: true }, outputs: {}, params: z.object({}), execute: noop }),
    ).toThrow(/connectOneOf names "a"/);
  });

  it("duplicate node and edge ids", () => {
    const w = doc([["t", "t.text"], ["t", "t.text"]], []);
    expect(codes(w)).toContain("error:duplicate-node-id:t");
    const w2 = doc([["t", "t.text"], ["s", "t.show"], ["s2", "t.show"]], [["t", "text", "s", "value"], ["t", "text", "s2", "value"]]);
    w2.edges[1]!.id = w2.edges[0]!.id;
    expect(validateWorkflow(w2, cat).map((p) => p.code)).toContain("duplicate-edge-id");
  });

  it("dangling edges and unknown sockets", () => {
    expect(codes(doc([["t", "t.text"]], [["t", "text", "ghost", "value"]]))).toEqual(["error:dangling-edge:t"]);
    const p = validateWorkflow(doc([["t", "t.text"], ["s", "t.show"]], [["t", "nope", "s", "value"]]), cat);
    expect(p.map((x) => `${x.code}:${x.socket}`)).toContain("unknown-socket:nope");
  });

  it("two edges into one input", () => {
    const w = doc([["t", "t.text"], ["u", "t.text"], ["s", "t.show"]], [["t", "text", "s", "value"], ["u", "text", "s", "value"]]);
    expect(codes(w)).toEqual(["error:input-already-connected:s"]);
  });

  it("cycles are errors on every node of the cycle, naming the path", () => {
    const w = doc(
      [["t", "t.text"], ["a", "t.join"], ["b", "t.join"], ["c", "t.join"]],
      [["t", "text", "a", "a"], ["a", "text", "b", "a"], ["b", "text", "c", "a"], ["c", "text", "a", "b"]],
    );
    const problems = validateWorkflow(w, cat).filter((p) => p.code === "cycle");
    expect(problems.map((p) => p.nodeId).sort()).toEqual(["a", "b", "c"]);
    expect(problems[0]!.message).toMatch(/cycle: .*→/);
  });

  it("a cycle through thousands of nodes: short messages, linear in the nodes (they named every node, once per node)", () => {
    const n = 3000;
    const ids = Array.from({ length: n }, (_, i) => `n${i}`);
    const w = doc([["t", "t.text"], ...ids.map((id) => [id, "t.join"] as [string, string])], [["t", "text", "n0", "a"], ...ids.map((id, i) => [id, "text", ids[(i + 1) % n]!, i + 1 === n ? "b" : "a"] as [string, string, string, string])]);
    const problems = validateWorkflow(w, cat).filter((p) => p.code === "cycle");
    expect(problems).toHaveLength(n);
    expect(problems[0]!.message).toMatch(/^cycle through 3000 nodes: "n\d+" \(t\.join\) → .* → …$/);
    expect(Math.max(...problems.map((p) => p.message.length))).toBeLessThan(200);
  });
});

describe("findCycles", () => {
  it("finds self loops and separate components, ignores DAGs", () => {
    const e = (s: string, t: string) => ({ source: s, target: t });
    expect(findCycles(["a", "b", "c"], [e("a", "b"), e("b", "c")])).toEqual([]);
    expect(findCycles(["a"], [e("a", "a")])).toEqual([["a"]]);
    const cycles = findCycles(["a", "b", "c", "d"], [e("a", "b"), e("b", "a"), e("c", "d"), e("d", "c")]);
    expect(cycles.map((c) => c.sort())).toEqual([["a", "b"], ["c", "d"]]);
  });

  it("handles a long chain without recursion limits", () => {
    const ids = Array.from({ length: 50_000 }, (_, i) => `n${i}`);
    const edges = ids.slice(1).map((id, i) => ({ source: ids[i]!, target: id }));
    expect(findCycles(ids, edges)).toEqual([]);
    expect(findCycles(ids, [...edges, { source: ids.at(-1)!, target: ids[0]! }])[0]).toHaveLength(50_000);
  });
});

describe("checkConnection", () => {
  const w = doc([["t", "t.text"], ["i", "t.image"], ["j", "t.join"], ["k", "t.join"], ["s", "t.show"]], [["t", "text", "j", "a"], ["j", "text", "k", "a"]]);
  const c = (source: string, sourceSocket: string, target: string, targetSocket: string, replace = false) =>
    checkConnection(w, cat, { source, sourceSocket, target, targetSocket }, { replaceExistingInput: replace });

  it("allows compatible links and ANY inputs", () => {
    expect(c("t", "text", "j", "b")).toEqual({ ok: true });
    expect(c("i", "image", "s", "value")).toEqual({ ok: true });
  });
  it("refuses each bad case with a reason", () => {
    expect(c("j", "text", "j", "b")).toEqual({ ok: false, reason: "a node cannot connect to itself" });
    expect(c("i", "image", "j", "b")).toEqual({ ok: false, reason: "IMAGE cannot connect to TEXT" });
    expect(c("t", "nope", "j", "b").ok).toBe(false);
    expect(c("t", "text", "j", "a")).toEqual({ ok: false, reason: "these sockets are already connected" });
    expect(c("t", "text", "k", "a")).toEqual({ ok: false, reason: 'input "a" is already connected' });
    expect(c("k", "text", "j", "b", true)).toEqual({ ok: false, reason: "this link would make a cycle" });
  });
  it("may replace an occupied input when asked", () => {
    expect(c("t", "text", "k", "a", true)).toEqual({ ok: true });
  });
});
