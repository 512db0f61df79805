/** Small formatters for the table and the detail view. */

import type { Endpoint, Entry } from "./types";

export function entryTime(e: Pick<Entry, "ts">): Date {
  return typeof e.ts === "number" ? new Date(e.ts * 1000) : new Date(e.ts);
}

export function formatClock(d: Date): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function formatLatency(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 0.001) return `${Math.round(seconds * 1e6)} µs`;
  if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
  return `${seconds.toFixed(2)} s`;
}

/** namespace/pod, falling back to the address. */
export function endpointLabel(ep: Endpoint): string {
  if (ep.pod) return ep.namespace ? `${ep.namespace}/${ep.pod}` : ep.pod;
  const addr = ep.ip.includes(":") ? `[${ep.ip}]` : ep.ip;
  return ep.port ? `${addr}:${ep.port}` : addr;
}

export function entryStatus(e: Entry): string {
  const s = e.response?.status;
  if (s !== undefined && s !== null && s !== "") return String(s);
  const rcode = e.response?.rcode;
  if (typeof rcode === "string") return rcode;
  return e.error ? "error" : "";
}

/** "ok" | "warn" | "err" for colouring a status. */
export function statusClass(e: Entry): "ok" | "warn" | "err" | "" {
  if (e.error) return "err";
  const s = e.response?.status;
  if (typeof s === "number") {
    if (e.proto === "grpc") return s === 0 ? "ok" : "err";
    if (s >= 500) return "err";
    if (s >= 400) return "warn";
    return "ok";
  }
  const rcode = e.response?.rcode;
  if (typeof rcode === "string") return rcode === "NOERROR" ? "ok" : "warn";
  return "";
}

export function percent(x: number): string {
  if (x === 0) return "0%";
  if (x < 0.001) return "<0.1%";
  return `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`;
}

export function rate(perSecond: number): string {
  if (perSecond >= 100) return `${Math.round(perSecond)}/s`;
  if (perSecond >= 1) return `${perSecond.toFixed(1)}/s`;
  return `${perSecond.toFixed(2)}/s`;
}

/** Targets as the sniffers report them: names, or objects with namespace/pod. */
export function targetNames(targets: unknown): string[] {
  if (!targets) return [];
  if (typeof targets === "number") return [];
  const list = Array.isArray(targets) ? targets : typeof targets === "object" ? Object.values(targets as object) : [targets];
  return list.map((t) => {
    if (typeof t === "string") return t;
    if (t && typeof t === "object") {
      const o = t as Record<string, unknown>;
      const name = String(o.pod ?? o.name ?? o.ip ?? JSON.stringify(o));
      return o.namespace ? `${String(o.namespace)}/${name}` : name;
    }
    return String(t);
  });
}
