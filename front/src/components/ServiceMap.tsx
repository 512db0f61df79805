/** Service map: workloads grouped by namespace, calls as edges (rate, error rate, p95);
 *  the edge colour shows errors; a click on an edge filters the traffic to it. */

import { useEffect, useMemo, useState } from "react";
import { api } from "../lib/api";
import { edgeFilter } from "../lib/filter";
import { formatLatency, percent, rate } from "../lib/format";
import { EDGE_LABEL_H, edgeColour, layoutMap, nodeLabel } from "../lib/maplayout";
import type { MapEdge, MapNode, ServiceMapAnswer } from "../lib/types";
import { isLive } from "../lib/url";
import { ErrorState, Loading, Notice } from "./States";

interface Props {
  q: string;
  from: string;
  to: string;
  onEdge: (filter: string) => void;
}

export function ServiceMap({ q, from, to, onEdge }: Props) {
  const [data, setData] = useState<ServiceMapAnswer | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  const [fit, setFit] = useState(true);
  const live = isLive({ from, to });

  useEffect(() => {
    const ctl = new AbortController();
    setError(null);
    api.servicemap({ q, from, to }, ctl.signal).then(setData, (err: unknown) => {
      if ((err as Error).name !== "AbortError") setError(err);
    });
    return () => ctl.abort();
  }, [q, from, to, tick]);

  // Live: refresh every 10 s.
  useEffect(() => {
    if (!live) return;
    const t = window.setInterval(() => setTick((n) => n + 1), 10_000);
    return () => window.clearInterval(t);
  }, [live]);

  const placed = useMemo(() => (data && data.nodes.length + data.edges.length ? layoutMap(data) : null), [data]);

  if (error) return <ErrorState error={error} retry={() => setTick((n) => n + 1)} />;
  if (!data) return <Loading what="the service map" />;
  if (!placed) {
    return (
      <Notice title="No calls to map" testid="empty">
        <p>
          No calls between workloads {live ? "have been stored" : "in this time range"}
          {q ? <> that match <code>{q}</code></> : null}. Widen the filter or the time range.
        </p>
      </Notice>
    );
  }
  const byId = new Map<string, MapNode>(placed.nodes.map((n) => [n.node.id, n.node]));
  const click = (e: MapEdge) => {
    const s = byId.get(e.source);
    const t = byId.get(e.target);
    if (s && t) onEdge(edgeFilter(s, t));
  };
  return (
    <div className="map" data-testid="servicemap">
      <div className={`map-canvas${fit ? " fit" : ""}`}>
        <button type="button" className="map-zoom" data-testid="map-zoom" onClick={() => setFit((f) => !f)}>
          {fit ? "Actual size" : "Fit to pane"}
        </button>
        <svg
          width={placed.width}
          height={placed.height}
          viewBox={`0 0 ${placed.width} ${placed.height}`}
          role="img"
          aria-label="Service map"
        >
          <defs>
            {["#3f9d6b", "#d68a1c", "#d23c3c"].map((c) => (
              <marker key={c} id={`arrow-${c.slice(1)}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                <path d="M 0 0 L 10 5 L 0 10 z" fill={c} />
              </marker>
            ))}
          </defs>
          {placed.clusters.map((c) => (
            <g key={c.namespace} className="ns" data-testid="map-namespace" data-namespace={c.namespace}>
              <rect x={c.x - c.width / 2} y={c.y - c.height / 2} width={c.width} height={c.height} rx={8} />
              <text x={c.x - c.width / 2 + 8} y={c.y - c.height / 2 + 15}>{c.namespace || "(no namespace)"}</text>
            </g>
          ))}
          {placed.edges.map((pe, i) => {
            const e = pe.edge;
            const colour = edgeColour(e.error_rate);
            const d = pe.points.map((p, j) => `${j ? "L" : "M"} ${p.x} ${p.y}`).join(" ");
            const w = Math.min(6, 1.2 + Math.log10(1 + e.count));
            const label = edgeText(e);
            const labelW = label.length * 6.8 + 12;
            return (
              <g
                key={i}
                className="edge"
                data-testid="map-edge"
                data-source={e.source}
                data-target={e.target}
                onClick={() => click(e)}
                role="button"
                aria-label={`${e.source} to ${e.target}: ${edgeText(e)}. Show these calls.`}
              >
                <title>{`${e.source} → ${e.target}\n${e.count} calls, ${e.errors} errors\n${edgeText(e)}\nClick to show these calls`}</title>
                <path d={d} className="hit" />
                <path d={d} stroke={colour} strokeWidth={w} fill="none" markerEnd={`url(#arrow-${colour.slice(1)})`} />
                <rect className="edge-label-bg" x={pe.labelX - labelW / 2} y={pe.labelY - EDGE_LABEL_H / 2} width={labelW} height={EDGE_LABEL_H} rx={3} stroke={colour} />
                <text x={pe.labelX} y={pe.labelY + 4} textAnchor="middle" className="edge-label" fill={colour}>
                  {label}
                </text>
              </g>
            );
          })}
          {placed.nodes.map((n) => (
            <g key={n.node.id} className="node" data-testid="map-node" data-id={n.node.id}>
              <rect x={n.x - n.width / 2} y={n.y - n.height / 2} width={n.width} height={n.height} rx={6} />
              <text x={n.x} y={n.y - 3} textAnchor="middle" className="node-name">{n.label}</text>
              <text x={n.x} y={n.y + 13} textAnchor="middle" className="node-sub">
                {n.node.count ? `${n.node.count.toLocaleString()} calls` : n.node.workload.includes("/") ? n.node.workload.split("/")[0] : ""}
              </text>
            </g>
          ))}
        </svg>
      </div>
      <div className="map-side">
        <h3>Calls {live ? "(all stored)" : "(in range)"}</h3>
        <p className="muted">Edge colour: <span style={{ color: edgeColour(0) }}>no errors</span>, <span style={{ color: edgeColour(0.01) }}>under 5%</span>, <span style={{ color: edgeColour(1) }}>5% or more</span>. Click one to see its calls.</p>
        <table className="edges" data-testid="map-edges">
          <thead>
            <tr><th>From → to</th><th className="num">Rate</th><th className="num">Errors</th><th className="num">p95</th></tr>
          </thead>
          <tbody>
            {[...data.edges].sort((a, b) => b.error_rate - a.error_rate || b.count - a.count).map((e, i) => (
              <tr key={i} onClick={() => click(e)} className="clickable">
                <td title={`${e.source} → ${e.target}`}>
                  {short(byId.get(e.source), e.source)} → {short(byId.get(e.target), e.target)}
                </td>
                <td className="num">{rate(e.rate)}</td>
                <td className="num" style={{ color: edgeColour(e.error_rate) }}>{percent(e.error_rate)}</td>
                <td className="num">{formatLatency(e.p95)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function short(n: MapNode | undefined, id: string): string {
  return n ? `${n.namespace ? `${n.namespace}/` : ""}${nodeLabel(n)}` : id;
}

function edgeText(e: MapEdge): string {
  return `${rate(e.rate)} · ${percent(e.error_rate)} err · p95 ${formatLatency(e.p95)}`;
}
