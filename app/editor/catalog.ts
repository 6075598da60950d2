"use client";
import { createContext, useContext } from "react";
import type { NodeTypeInfo } from "@/app/server/catalog";
import type { SOCKET_TYPES } from "@/engine/sockets";

export interface ClientCatalog {
  nodes: NodeTypeInfo[];
  sockets: typeof SOCKET_TYPES;
  get(type: string): NodeTypeInfo | undefined;
}

export function makeClientCatalog(info: { nodes: NodeTypeInfo[]; sockets: typeof SOCKET_TYPES }): ClientCatalog {
  const byType = new Map(info.nodes.map((n) => [n.type, n]));
  return { ...info, get: (type) => byType.get(type) };
}

export const CatalogContext = createContext<ClientCatalog | null>(null);

export function useCatalog(): ClientCatalog {
  const c = useContext(CatalogContext);
  if (!c) throw new Error("CatalogContext is missing");
  return c;
}
