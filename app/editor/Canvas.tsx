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
  type OnConnectEnd,
} from "@xyflow/react";
import { useCallback, useRef, useState, type PointerEvent } from "react";
import type { NodeTypeInfo } from "@/app/server/catalog";
import { checkConnection } from "@/engine/workflow/connection";
import { canvasFeature } from "./canvas-detail";
import { useCatalog } from "./catalog";
import { DiffNode } from "./HistoryPanel";
import { Palette } from "./Palette";
import { PipelineNode } from "./PipelineNode";
import { useEditor } from "./store";
import { setUi, showToast, useEditorUi } from "./ui-store";
import styles from "./canvas.module.css";

const nodeTypes = { pipeline: PipelineNode, diff: DiffNode };

/** Near `p`, a place where a new node does not land on top of an existing one. */
function freeSpot(p: { x: number; y: number }): { x: number; y: number } {
  const nodes = useEditor.getState().nodes;
  const taken = (x: number, y: number) => nodes.some((n) => Math.abs(n.position.x - x) < 240 && Math.abs(n.position.y - y) < 150);
  for (let ring = 0; ring < 12; ring++) {
    for (const [dx, dy] of [[0, 0], [0, 1], [1, 0], [1, 1], [0, -1], [-1, 0], [1, -1], [-1, 1], [-1, -1]] as const) {
      const x = p.x + dx * 280 * ring;
      const y = p.y + dy * 180 * ring;
      if (!taken(x, y)) return { x, y };
    }
  }
  return p;
}

const setPaletteOpen = (paletteOpen: boolean) => setUi({ paletteOpen });
const onRefused = (reason: string) => showToast(`Link refused: ${reason}`, true);

/** The graph. It follows the nodes and links (React Flow draws them from the store) and the palette's state. */
export function Canvas() {
  const catalog = useCatalog();
  const paletteOpen = useEditorUi((s) => s.paletteOpen);
  const nodes = useEditor((s) => s.nodes);
  const edges = useEditor((s) => s.edges);
  // While the History panel shows a diff, the canvas draws that read-only picture instead of the document.
  const diffView = useEditor((s) => s.diffView);
  const { onNodesChange, onEdgesChange } = useEditor.getState();
  const { screenToFlowPosition } = useReactFlow();
  const [placeAt, setPlaceAt] = useState<{ x: number; y: number } | null>(null);
  // Pan/zoom performance: the class is set on the DOM directly (no React render per move start/end).
  const wrapper = useRef<HTMLDivElement>(null);
  const onMoveStart = useCallback(() => wrapper.current?.classList.add(styles.moving!), []);
  const onMoveEnd = useCallback(() => wrapper.current?.classList.remove(styles.moving!), []);
  // A pan starts on the pane; capturing the pointer there spares the browser a hit test of the whole graph
  // on every mouse move of the drag (measured: ~5 ms per move with 300 nodes).
  const capturePan = useCallback((e: PointerEvent) => {
    const target = e.target as HTMLElement;
    if (canvasFeature("capture") && target.classList.contains("react-flow__pane") && !target.hasPointerCapture(e.pointerId)) target.setPointerCapture(e.pointerId);
  }, []);

  const check = useCallback(
    (c: Connection | Edge) => {
      const { nodes, edges } = useEditor.getState().document();
      return checkConnection(
        { nodes, edges },
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
    [check],
  );
  const onConnectStart: OnConnectStart = useCallback((_e, p) => {
    if (p.nodeId && p.handleId && p.handleType) useEditor.getState().setConnecting({ nodeId: p.nodeId, socket: p.handleId, handleType: p.handleType });
  }, []);
  // A link dropped on a socket that refuses it never reaches onConnect (isValidConnection drops it first): say why here.
  const onConnectEnd: OnConnectEnd = useCallback(
    (_e, state) => {
      useEditor.getState().setConnecting(null);
      if (state.isValid !== false || !state.fromHandle || !state.toHandle) return;
      const [from, to] = state.fromHandle.type === "source" ? [state.fromHandle, state.toHandle] : [state.toHandle, state.fromHandle];
      const result = check({ source: from.nodeId, sourceHandle: from.id ?? null, target: to.nodeId, targetHandle: to.id ?? null });
      if (!result.ok) onRefused(result.reason);
    },
    [check],
  );

  const addNode = useCallback(
    (info: NodeTypeInfo) => {
      const at = placeAt ?? freeSpot(screenToFlowPosition({ x: window.innerWidth / 2 - 120, y: window.innerHeight / 2 - 80 }));
      useEditor.getState().addNode(info.type, info.typeVersion, structuredClone(info.defaults), at);
      setPaletteOpen(false);
      setPlaceAt(null);
    },
    [placeAt, screenToFlowPosition],
  );

  return (
    <div
      ref={wrapper}
      className={styles.canvas}
      style={{ position: "absolute", inset: 0 }}
      onPointerDown={capturePan}
      onDoubleClick={(e) => {
        if (diffView || !(e.target as HTMLElement).classList.contains("react-flow__pane")) return; // the diff picture is read-only
        setPlaceAt(screenToFlowPosition({ x: e.clientX, y: e.clientY }));
        setPaletteOpen(true);
      }}
    >
      <ReactFlow
        nodes={diffView?.nodes ?? nodes}
        edges={diffView?.edges ?? edges}
        nodeTypes={nodeTypes}
        onNodesChange={diffView ? undefined : onNodesChange}
        onEdgesChange={diffView ? undefined : onEdgesChange}
        nodesConnectable={!diffView}
        className={diffView ? "showing-diff" : undefined}
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
        deleteKeyCode={diffView ? null : ["Delete", "Backspace"]}
        onMoveStart={onMoveStart}
        onMoveEnd={onMoveEnd}
        zoomOnDoubleClick={false}
        onlyRenderVisibleElements={canvasFeature("cull")}
        fitView
        fitViewOptions={{ maxZoom: 1 }}
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
