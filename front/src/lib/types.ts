/** Shapes of the hub's JSON answers (see notes/contracts.md, "Hub HTTP API"). */

export interface Endpoint {
  ip: string;
  port?: number;
  pod?: string;
  namespace?: string;
  workload?: string;
  service?: string;
  labels?: Record<string, string>;
  node?: string;
}

export type Fields = Record<string, unknown>;

export interface Entry {
  id: string;
  ts: number | string;
  proto: string;
  src: Endpoint;
  dst: Endpoint;
  elapsed?: number | null;
  request?: Fields;
  response?: Fields;
  summary?: string;
  redacted?: string[];
  tls?: boolean;
  error?: string;
  gaps?: number;
  stream?: string;
  index?: number;
  node?: string;
}

export interface EntriesPage {
  entries: Entry[];
  next_cursor: string | null;
}

export interface QueryErrorDetail {
  message: string;
  position?: number | null;
  hint?: string | string[] | null;
}

export interface FieldInfo {
  name: string;
  type?: string;
  doc?: string;
}

export interface FieldsAnswer {
  fields: FieldInfo[];
  macros?: (FieldInfo | string)[];
  functions?: (FieldInfo | string)[];
}

export interface Whoami {
  name: string;
  namespaces: string[];
  permissions: string[];
  /** Echo in X-CSRF-Token on state-changing requests (session logins). */
  csrf?: string | null;
}

export interface SnifferStatus {
  node: string;
  last_seen?: number | string | null;
  entries?: number;
  drops?: number;
  spool_bytes?: number;
  targets?: unknown;
}

export interface StatusAnswer {
  sniffers: SnifferStatus[];
}

export interface MapNode {
  id: string;
  namespace: string;
  workload: string;
  count: number;
}

export interface MapEdge {
  source: string;
  target: string;
  count: number;
  errors: number;
  error_rate: number;
  rate: number;
  p50?: number | null;
  p95?: number | null;
  p99?: number | null;
}

export interface ServiceMapAnswer {
  nodes: MapNode[];
  edges: MapEdge[];
}

export type StreamMessage =
  | { type: "entry"; entry: Entry }
  | { type: "missed"; count: number }
  | { type: "error"; detail: QueryErrorDetail | string };
