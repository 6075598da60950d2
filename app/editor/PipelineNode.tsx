"use client";
import { Handle, Position, useStore, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { socketsCompatible, type SocketType } from "@/engine/sockets";
import { LOD_ZOOM, canvasFeature } from "./canvas-detail";
import { useCatalog } from "./catalog";
import type { FlowNode } from "./convert";
import { ParamField, type ParamSchema } from "./ParamField";
import { RunBadge, RunOutputs } from "./NodeRunView";
import { useCanvasHints, useEditor } from "./store";

/** Is this handle a possible end of the link being dragged? Returns undefined when nothing is dragged. */
function useHandleState(nodeId: string, socket: string, side: "source" | "target", type: SocketType): string {
  const catalog = useCatalog();
  return useCanvasHints((s) => {
    const c = s.connecting;
    if (!c) return "";
    if (c.nodeId === nodeId || c.handleType === side) return "dimmed";
    const fromDef = c.nodeType !== undefined ? catalog.get(c.nodeType) : undefined;
    const fromSpec = fromDef && (c.handleType === "source" ? fromDef.outputs[c.socket] : fromDef.inputs[c.socket]);
    if (!fromSpec) return "dimmed";
    const ok = c.handleType === "source" ? socketsCompatible(fromSpec.type, type) : socketsCompatible(type, fromSpec.type);
    return ok ? "compatible" : "dimmed";
  });
}

function SocketHandle({ nodeId, socket, side, type }: { nodeId: string; socket: string; side: "source" | "target"; type: SocketType }) {
  const catalog = useCatalog();
  const state = useHandleState(nodeId, socket, side, type);
  return (
    <Handle
      id={socket}
      type={side}
      position={side === "target" ? Position.Left : Position.Right}
      className={`socket ${state}`}
      style={{ background: catalog.sockets[type].color }}
      data-socket-type={type}
      data-testid={`handle-${nodeId}-${side === "target" ? "in" : "out"}-${socket}`}
    />
  );
}

function UnknownNode({ id, data }: { id: string; data: FlowNode["data"] }) {
  // Keep the edges of an unknown node drawable: one handle per socket name its edges use.
  const ins = useEditor((s) => [...new Set(s.edges.filter((e) => e.target === id).map((e) => e.targetHandle ?? ""))].join("|"));
  const outs = useEditor((s) => [...new Set(s.edges.filter((e) => e.source === id).map((e) => e.sourceHandle ?? ""))].join("|"));
  return (
    <div className="pnode has-warning" data-testid={`node-${id}`}>
      <div className="pnode-head">
        <span className="ptitle">{data.label ?? id}</span>
      </div>
      <div className="pnode-unknown">Unknown node type “{data.nodeType}”. It is kept as it is but cannot run.</div>
      <div className="pnode-sockets">
        <div>{ins && ins.split("|").map((s) => <div key={s} className="pnode-socket"><Handle id={s} type="target" position={Position.Left} className="socket" />{s}</div>)}</div>
        <div>{outs && outs.split("|").map((s) => <div key={s} className="pnode-socket out">{s}<Handle id={s} type="source" position={Position.Right} className="socket" /></div>)}</div>
      </div>
    </div>
  );
}

function PipelineNodeImpl({ id, data, selected }: NodeProps<FlowNode>) {
  const catalog = useCatalog();
  const def = catalog.get(data.nodeType);
  const severity = useCanvasHints((s) => s.severity.get(id) ?? "");
  // A boolean selector: the node re-renders when the zoom crosses LOD_ZOOM, not on every pan or zoom step.
  const outline = useStore((s) => s.transform[2] < LOD_ZOOM) && canvasFeature("lod");
  if (!def) return <UnknownNode id={id} data={data} />;
  const inputs = Object.entries(def.inputs);
  const outputs = Object.entries(def.outputs);
  if (outline)
    return (
      <div className={`pnode outline ${selected ? "selected" : ""} ${severity}`} data-testid={`node-${id}`} data-node-type={data.nodeType} data-detail="outline">
        <div className="pnode-head">
          <span className="ptitle">{data.label ?? def.title}</span>
          <RunBadge nodeId={id} />
        </div>
        <div className="pnode-sockets">
          <div>
            {inputs.map(([name, spec]) => (
              <div key={name} className="pnode-socket" title={spec.label ?? name}>
                <SocketHandle nodeId={id} socket={name} side="target" type={spec.type} />
              </div>
            ))}
          </div>
          <div>
            {outputs.map(([name, spec]) => (
              <div key={name} className="pnode-socket out" title={spec.label ?? name}>
                <SocketHandle nodeId={id} socket={name} side="source" type={spec.type} />
              </div>
            ))}
          </div>
        </div>
      </div>
    );
  const properties = (def.paramsSchema.properties ?? {}) as Record<string, ParamSchema>;
  return (
    <div className={`pnode ${selected ? "selected" : ""} ${severity}`} data-testid={`node-${id}`} data-node-type={data.nodeType}>
      <div className="pnode-head">
        <span className="ptitle">{data.label ?? def.title}</span>
        <span className="ptype">{id}</span>
        <RunBadge nodeId={id} />
      </div>
      <div className="pnode-sockets">
        <div>
          {inputs.map(([name, spec]) => (
            <div key={name} className="pnode-socket">
              <SocketHandle nodeId={id} socket={name} side="target" type={spec.type} />
              {spec.label ?? name}
              {spec.optional ? "?" : ""}
              <span className="stype">{spec.type}</span>
            </div>
          ))}
        </div>
        <div>
          {outputs.map(([name, spec]) => (
            <div key={name} className="pnode-socket out">
              <span className="stype">{spec.type}</span> {spec.label ?? name}
              <SocketHandle nodeId={id} socket={name} side="source" type={spec.type} />
            </div>
          ))}
        </div>
      </div>
      {Object.keys(properties).length > 0 && (
        <div className="pnode-params">
          {Object.entries(properties).map(([name, schema]) => (
            <ParamField key={name} nodeId={id} name={name} schema={schema} value={data.params[name] ?? schema.default} />
          ))}
        </div>
      )}
      <RunOutputs nodeId={id} />
    </div>
  );
}

export const PipelineNode = memo(PipelineNodeImpl);
