/** The live table's rows: newest first, capped, de-duplicated, batched, pausable. */

import type { Entry } from "./types";

export const MAX_ROWS = 10_000;

export class LiveRows {
  /** Newest first. Replaced (not mutated) on every change so React sees a new array. */
  rows: Entry[] = [];
  /** Arrived since the last flush, oldest first. */
  private incoming: Entry[] = [];
  private seen = new Set<string>();
  /** How many arrived while paused (the banner's number), including ones dropped by the cap. */
  pendingCount = 0;
  /** Entries the hub said the stream skipped (slow client). */
  missed = 0;
  paused = false;

  constructor(readonly max: number = MAX_ROWS) {}

  /** Queue one entry from the stream (not visible until flush). */
  push(e: Entry): void {
    if (this.seen.has(e.id)) return;
    this.seen.add(e.id);
    this.incoming.push(e);
    if (this.paused) this.pendingCount++;
    if (this.incoming.length > this.max) {
      for (const old of this.incoming.splice(0, this.incoming.length - this.max)) this.seen.delete(old.id);
    }
  }

  /** Older entries (from a first page fetched when going live), newest first. */
  appendOlder(entries: readonly Entry[]): boolean {
    const add = entries.filter((e) => !this.seen.has(e.id));
    if (!add.length) return false;
    for (const e of add) this.seen.add(e.id);
    this.rows = [...this.rows, ...add].slice(0, this.max);
    return true;
  }

  /** Move queued entries into rows unless paused. Returns whether rows changed. */
  flush(): boolean {
    if (this.paused || this.incoming.length === 0) return false;
    const fresh = this.incoming.reverse();
    this.incoming = [];
    this.rows = fresh.concat(this.rows);
    if (this.rows.length > this.max) {
      for (const e of this.rows.slice(this.max)) this.seen.delete(e.id);
      this.rows = this.rows.slice(0, this.max);
    }
    this.pendingCount = 0;
    return true;
  }

  setPaused(p: boolean): void {
    this.paused = p;
    if (!p) this.pendingCount = 0;
  }

  clear(): void {
    this.rows = [];
    this.incoming = [];
    this.seen.clear();
    this.pendingCount = 0;
    this.missed = 0;
  }
}
