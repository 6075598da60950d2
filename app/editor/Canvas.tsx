"use client";
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  useReactFlow,
  type Connection,
  type Edge,
  type IsValidConnection,
  type OnConnectStart,
} from "@xyflow/react";
import { useCallback, useState } from "react";
import type { NodeTypeInfo } from "@/app/server/catalog";
import { checkConnection } from "@/engine/workflow/connection";
import { useCatalog } from "./catalog";
import { Palette } from "./Palette";
import { PipelineNode } from "./PipelineNode";
import { useEditor } from "./store";

const nodeTypes = { pipeline: PipelineNode };

export function Canvas({ paletteOpen, setPaletteOpen, onRefused }: { paletteOpen: boolean; setPaletteOpen: (open: boolean) => void; onRefused: (reason: string) => void }) {
  const catalog = useCatalog();
  const nodes = useEditor((s) => s.nodes);
  const edges = useEditor((s) => s.edges);
  const { onNodesChange, onEdgesChange } = useEditor.getState();
  const { screenToFlowPosition } = useReactFlow();
  const [placeAt, setPlaceAt] = useState<{ x: number; y: number } | null>(null);

  const check = useCallback(
    (c: Connection | Edge) => {
      const s = useEditor.getState();
      return checkConnection(
        { nodes: s.document().nodes, edges: s.document().edges },
        catalog,
        { source: c.source, sourceSocket: c.sourceHandle ?? "", target: c.target, targetSocket: c.targetHandle ?? "" },
        { replaceExistingInput: true },
      );
    },
    [catalog],
  );
  const isValidConnection: IsValidConnection = useCallback((c) => check(c).ok, [check]);

  const onConnect = useCallback(
    (c: Connection) => {
      const result = check(c);
      if (!result.ok) return onRefused(result.reason);
      useEditor.getState().connect({ source: c.source, sourceHandle: c.sourceHandle ?? "", target: c.target, targetHandle: c.targetHandle ?? "" });
    },
    [check, onRefused],
  );
  const onConnectStart: OnConnectStart = useCallback((_e, p) => {
    if (p.nodeId && p.handleId && p.handleType) useEditor.getState().setConnecting({ nodeId: p.nodeId, socket: p.handleId, handleType: p.handleType });
  }, []);
  const onConnectEnd = useCallback(() => useEditor.getState().setConnecting(null), []);

  const addNode = useCallback(
    (info: NodeTypeInfo) => {
      const at = placeAt ?? screenToFlowPosition({ x: window.innerWidth / 2 - 100, y: window.innerHeight / 2 - 60 });
      useEditor.getState().addNode(info.type, info.typeVersion, structuredClone(info.defaults), at);
      setPaletteOpen(false);
      setPlaceAt(null);
    },
    [placeAt, screenToFlowPosition, setPaletteOpen],
  );

  return (
    <div
      style={{ position: "absolute", inset: 0 }}
      onDoubleClick={(e) => {
        if (!(e.target as HTMLElement).classList.contains("react-flow__pane")) return;
        setPlaceAt(screenToFlowPosition({ x: e.clientX, y: e.clientY }));
        setPaletteOpen(true);
      }}
    >
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={onConnect}
        onConnectStart={onConnectStart}
        onConnectEnd={onConnectEnd}
        isValidConnection={isValidConnection}
        onBeforeDelete={async () => {
          useEditor.getState().checkpoint();
          return true;
        }}
        onNodeDragStart={() => useEditor.getState().checkpoint()}
        onSelectionDragStart={() => useEditor.getState().checkpoint()}
        deleteKeyCode={["Delete", "Backspace"]}
        zoomOnDoubleClick={false}
        fitView
        minZoom={0.1}
        proOptions={{ hideAttribution: true }}
        colorMode="dark"
      >
        <Background gap={20} />
        <MiniMap pannable zoomable nodeStrokeWidth={3} />
        <Controls />
      </ReactFlow>
      {paletteOpen && (
        <Palette
          onPick={addNode}
          onClose={() => {
            setPaletteOpen(false);
            setPlaceAt(null);
          }}
        />
      )}
    </div>
  );
}
