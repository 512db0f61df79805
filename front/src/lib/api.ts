/** Calls to the hub's API (same origin; the session cookie authenticates). */

import type {
  EntriesPage,
  Entry,
  FieldsAnswer,
  QueryErrorDetail,
  ServiceMapAnswer,
  StatusAnswer,
  Whoami,
} from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: unknown,
    readonly path: string,
  ) {
    super(ApiError.describe(status, detail));
  }

  /** The hub's query error (400 on a route taking `q`), when this is one. */
  get queryError(): QueryErrorDetail | null {
    const d = this.detail;
    if (this.status === 400 && d && typeof d === "object" && "message" in d) {
      return d as QueryErrorDetail;
    }
    return null;
  }

  static describe(status: number, detail: unknown): string {
    if (typeof detail === "string" && detail) return detail;
    if (detail && typeof detail === "object" && "message" in detail) {
      return String((detail as { message: unknown }).message);
    }
    if (status === 0) return "the hub did not answer";
    return `HTTP ${status}`;
  }
}

type Params = Record<string, string | number | null | undefined>;

export function apiUrl(path: string, params: Params = {}): string {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
  }
  const s = qs.toString();
  return s ? `${path}?${s}` : path;
}

export async function getJson<T>(path: string, params: Params = {}, signal?: AbortSignal): Promise<T> {
  return sendJson<T>(apiUrl(path, params), { headers: { Accept: "application/json" }, signal }, path);
}

/** Any JSON request to the hub; a failure becomes an ApiError with the hub's detail. */
export async function sendJson<T>(url: string, init: RequestInit, path: string = url): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { credentials: "same-origin", ...init });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    throw new ApiError(0, `the hub did not answer (${(err as Error).message})`, path);
  }
  if (!res.ok) {
    let detail: unknown = res.statusText;
    try {
      const body = (await res.json()) as { detail?: unknown };
      detail = body.detail ?? body;
    } catch {
      /* not JSON: keep the status text */
    }
    throw new ApiError(res.status, detail, path);
  }
  return (await res.json()) as T;
}

export interface RangeParams {
  q?: string;
  from?: string;
  to?: string;
}

export const api = {
  entries: (p: RangeParams & { limit?: number; cursor?: string | null }, signal?: AbortSignal) =>
    getJson<EntriesPage>("/api/v1/entries", { ...p }, signal),
  entry: (id: string, signal?: AbortSignal) =>
    getJson<Entry>(`/api/v1/entries/${encodeURIComponent(id)}`, {}, signal),
  validate: (q: string, signal?: AbortSignal) =>
    getJson<{ valid: boolean }>("/api/v1/query/validate", { q }, signal),
  fields: () => getJson<FieldsAnswer>("/api/v1/query/fields"),
  whoami: () => getJson<Whoami>("/api/v1/whoami"),
  status: () => getJson<StatusAnswer>("/api/v1/status"),
  servicemap: (p: RangeParams, signal?: AbortSignal) =>
    getJson<ServiceMapAnswer>("/api/v1/servicemap", { ...p }, signal),
};

export function streamUrl(q: string, loc: Location = window.location): string {
  const proto = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${loc.host}${apiUrl("/api/v1/stream", { q })}`;
}
