/** Recent filters, newest first, kept in localStorage. */

export const HISTORY_KEY = "kubeweir.filter-history";
export const HISTORY_MAX = 20;

export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export function loadHistory(store: KeyValueStore): string[] {
  try {
    const raw = store.getItem(HISTORY_KEY);
    const parsed: unknown = raw ? JSON.parse(raw) : [];
    return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/** Put `q` first (once), drop the oldest past HISTORY_MAX; empty filters are not kept. */
export function pushHistory(list: readonly string[], q: string): string[] {
  const t = q.trim();
  if (!t) return [...list];
  return [t, ...list.filter((x) => x !== t)].slice(0, HISTORY_MAX);
}

export function saveHistory(store: KeyValueStore, list: readonly string[]): void {
  try {
    store.setItem(HISTORY_KEY, JSON.stringify(list.slice(0, HISTORY_MAX)));
  } catch {
    /* storage full or disabled: history is a convenience */
  }
}
