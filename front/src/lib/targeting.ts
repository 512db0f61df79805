/** The hub's pod targeting rules: `GET`/`PUT /api/v1/targeting`. */

import { getJson, sendJson } from "./api";

export interface TargetingRules {
  namespaces: string[];
  excludedNamespaces: string[];
  podRegex: string;
  labelSelector: string;
}

export interface TargetingAnswer {
  /** 0 while the hub has no rules (each sniffer uses its own rules file). */
  version: number;
  rules: TargetingRules | null;
  updated?: string | null;
  updated_by?: string;
}

export const EMPTY_RULES: TargetingRules = { namespaces: [], excludedNamespaces: [], podRegex: "", labelSelector: "" };

/** "a, b c" → ["a", "b", "c"] (namespace lists are typed comma or space separated). */
export function splitNames(text: string): string[] {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

export function getTargeting(): Promise<TargetingAnswer> {
  return getJson<TargetingAnswer>("/api/v1/targeting");
}

/** Save the rules (admins). Session logins echo whoami's `csrf` in X-CSRF-Token. */
export async function putTargeting(rules: TargetingRules, csrf: string | null | undefined): Promise<TargetingAnswer> {
  const path = "/api/v1/targeting";
  const headers: Record<string, string> = { Accept: "application/json", "Content-Type": "application/json" };
  if (csrf) headers["X-CSRF-Token"] = csrf;
  return sendJson<TargetingAnswer>(path, { method: "PUT", headers, body: JSON.stringify(rules) });
}
