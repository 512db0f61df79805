/** Service-map layout with dagre: workloads as nodes inside one cluster per namespace. */

import { Graph, layout } from "@dagrejs/dagre";
import type { MapEdge, MapNode, ServiceMapAnswer } from "./types";

export interface PlacedNode {
  node: MapNode;
  label: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedCluster {
  namespace: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedEdge {
  edge: MapEdge;
  points: { x: number; y: number }[];
  labelX: number;
  labelY: number;
}

export interface MapLayout {
  width: number;
  height: number;
  nodes: PlacedNode[];
  clusters: PlacedCluster[];
  edges: PlacedEdge[];
}

const NODE_H = 50;
const CHAR_W = 8;
export const EDGE_LABEL_W = 170;
export const EDGE_LABEL_H = 18;

/** The name shown on a node: the workload without its kind, or the id. */
export function nodeLabel(n: MapNode): string {
  const w = n.workload || n.id;
  const slash = w.indexOf("/");
  return n.workload && slash >= 0 ? w.slice(slash + 1) : w;
}

export function layoutMap(data: ServiceMapAnswer): MapLayout {
  const g = new Graph({ compound: true, multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 120, edgesep: 16, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  const known = new Map(data.nodes.map((n) => [n.id, n]));
  // Edges may name nodes the hub did not list (outside the viewer's scope, or no workload).
  for (const e of data.edges) {
    for (const id of [e.source, e.target]) {
      if (!known.has(id)) {
        const slash = id.indexOf("/");
        known.set(id, { id, namespace: slash > 0 ? id.slice(0, slash) : "", workload: slash > 0 ? id.slice(slash + 1) : id, count: 0 });
      }
    }
  }
  const namespaces = new Set<string>();
  for (const n of known.values()) {
    const label = nodeLabel(n);
    g.setNode(n.id, { width: Math.max(110, label.length * CHAR_W + 28), height: NODE_H });
    const cluster = `ns:${n.namespace}`;
    if (!namespaces.has(cluster)) {
      namespaces.add(cluster);
      g.setNode(cluster, { width: 0, height: 0, paddingTop: 24 });
    }
    g.setParent(n.id, cluster);
  }
  data.edges.forEach((e, i) => {
    g.setEdge(e.source, e.target, { width: EDGE_LABEL_W, height: EDGE_LABEL_H, labelpos: "c" }, String(i));
  });
  layout(g);
  const graph = g.graph() as { width?: number; height?: number };
  const nodes: PlacedNode[] = [];
  for (const n of known.values()) {
    const l = g.node(n.id) as { x: number; y: number; width: number; height: number };
    nodes.push({ node: n, label: nodeLabel(n), x: l.x, y: l.y, width: l.width, height: l.height });
  }
  const clusters: PlacedCluster[] = [];
  for (const c of namespaces) {
    const l = g.node(c) as { x: number; y: number; width: number; height: number };
    clusters.push({ namespace: c.slice(3), x: l.x, y: l.y, width: l.width, height: l.height });
  }
  const edges: PlacedEdge[] = data.edges.map((e, i) => {
    const l = g.edge({ v: e.source, w: e.target, name: String(i) }) as { points?: { x: number; y: number }[]; x?: number; y?: number };
    const points = l.points ?? [];
    const mid = points[Math.floor(points.length / 2)] ?? { x: 0, y: 0 };
    return { edge: e, points, labelX: l.x ?? mid.x, labelY: l.y ?? mid.y };
  });
  return { width: graph.width ?? 0, height: graph.height ?? 0, nodes, clusters, edges };
}

/** Edge colour by error rate: none, some, many. */
export function edgeColour(errorRate: number): string {
  if (errorRate <= 0) return "#3f9d6b";
  if (errorRate < 0.05) return "#d68a1c";
  return "#d23c3c";
}
