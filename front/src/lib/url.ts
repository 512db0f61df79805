/** The dashboard's state in the URL, so that a link restores view, filter and time range. */

export type View = "traffic" | "map" | "status";

export interface UrlState {
  view: View;
  /** The applied CEL filter ("" = everything). */
  q: string;
  /** Time range (RFC 3339); both empty = live. */
  from: string;
  to: string;
  /** The entry open in the detail panel. */
  entry: string;
}

export const DEFAULT_STATE: UrlState = { view: "traffic", q: "", from: "", to: "", entry: "" };

const VIEWS: readonly View[] = ["traffic", "map", "status"];

export function isLive(s: Pick<UrlState, "from" | "to">): boolean {
  return !s.from && !s.to;
}

export function parseUrlState(search: string): UrlState {
  const p = new URLSearchParams(search);
  const view = p.get("view") ?? "";
  return {
    view: (VIEWS as readonly string[]).includes(view) ? (view as View) : "traffic",
    q: p.get("q") ?? "",
    from: p.get("from") ?? "",
    to: p.get("to") ?? "",
    entry: p.get("entry") ?? "",
  };
}

/** The query string (with its "?", or "" when everything is default). Stable key order. */
export function formatUrlState(s: UrlState): string {
  const p = new URLSearchParams();
  if (s.view !== "traffic") p.set("view", s.view);
  if (s.q) p.set("q", s.q);
  if (s.from) p.set("from", s.from);
  if (s.to) p.set("to", s.to);
  if (s.entry) p.set("entry", s.entry);
  const out = p.toString();
  return out ? `?${out}` : "";
}

/** A preset range ending now: [from, to] as RFC 3339 in UTC, to the second. */
export function presetRange(seconds: number, now: Date = new Date()): [string, string] {
  const to = new Date(Math.floor(now.getTime() / 1000) * 1000);
  const from = new Date(to.getTime() - seconds * 1000);
  return [toRfc3339(from), toRfc3339(to)];
}

export function toRfc3339(d: Date): string {
  return d.toISOString().replace(/\.000Z$/, "Z");
}

/** RFC 3339 (or epoch seconds) → the value of an <input type="datetime-local"> in local time. */
export function toLocalInput(value: string): string {
  const d = parseTime(value);
  if (!d) return "";
  const pad = (n: number) => String(n).padStart(2, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** A datetime-local input's value (local time) → RFC 3339 UTC; "" when empty or invalid. */
export function fromLocalInput(value: string): string {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : toRfc3339(d);
}

export function parseTime(value: string): Date | null {
  if (!value) return null;
  const d = /^\d+(\.\d+)?$/.test(value) ? new Date(Number(value) * 1000) : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}
