/** Traffic: the live (or time-range) table, virtualized, with the entry detail beside it. */

import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useRef, useState } from "react";
import { api, ApiError, streamUrl } from "../lib/api";
import { LiveRows } from "../lib/buffer";
import { clause } from "../lib/filter";
import { endpointLabel, entryStatus, entryTime, formatClock, formatLatency, statusClass } from "../lib/format";
import type { Endpoint, Entry, StreamMessage, Whoami } from "../lib/types";
import { isLive } from "../lib/url";
import { EmptyTraffic } from "./EmptyTraffic";
import { EntryDetail } from "./EntryDetail";
import { ErrorState, Loading } from "./States";
import { Val } from "./Val";

const ROW_H = 28;
const PAGE = 200;
const FLUSH_EVERY_MS = 100;

type Conn = "connecting" | "live" | "retrying";

interface Props {
  q: string;
  from: string;
  to: string;
  selected: string;
  me: Whoami;
  onSelect: (id: string) => void;
  onAddFilter: (clause: string) => void;
  onShowStatus: () => void;
}

export function TrafficView(props: Props) {
  const { q, from, to, selected, onSelect } = props;
  const live = isLive({ from, to });
  const buf = useRef(new LiveRows());
  const [rows, setRows] = useState<Entry[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const [conn, setConn] = useState<Conn>("connecting");
  const [pending, setPending] = useState(0);
  const [missed, setMissed] = useState(0);
  const [paused, setPaused] = useState(false);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [active, setActive] = useState(0);
  const [reload, setReload] = useState(0);
  const scroller = useRef<HTMLDivElement>(null);
  const frame = useRef(0);

  const lastFlush = useRef(0);

  const sync = useCallback(() => {
    frame.current = 0;
    lastFlush.current = performance.now();
    const b = buf.current;
    if (b.flush()) setRows(b.rows);
    setPending(b.pendingCount);
    setMissed(b.missed);
  }, []);
  // Arrivals are batched: one render per animation frame, and at most FLUSH_EVERY_MS apart
  // (nobody reads faster than that; it keeps the main thread free at hundreds per second).
  const schedule = useCallback(() => {
    if (frame.current) return;
    const wait = lastFlush.current + FLUSH_EVERY_MS - performance.now();
    if (wait <= 0) {
      frame.current = requestAnimationFrame(sync);
    } else {
      frame.current = window.setTimeout(() => {
        frame.current = requestAnimationFrame(sync);
      }, wait);
    }
  }, [sync]);

  // Live: a first page of recent entries, then the stream; reconnects with back-off.
  useEffect(() => {
    if (!live) return;
    const b = buf.current;
    b.clear();
    b.setPaused(false);
    setRows([]);
    setPaused(false);
    setPending(0);
    setMissed(0);
    setError(null);
    setLoading(true);
    setActive(0);
    scroller.current?.scrollTo({ top: 0 });
    const ctl = new AbortController();
    let ws: WebSocket | null = null;
    let retry = 0;
    let timer = 0;
    let stopped = false;

    api.entries({ q, limit: PAGE }, ctl.signal).then(
      (page) => {
        if (b.appendOlder(page.entries)) setRows(b.rows);
        setLoading(false);
      },
      (err: unknown) => {
        if ((err as Error).name === "AbortError") return;
        setError(err);
        setLoading(false);
        stopped = err instanceof ApiError && [400, 401, 403].includes(err.status);
        if (stopped) ws?.close();
      },
    );

    const connect = () => {
      if (stopped) return;
      setConn(retry ? "retrying" : "connecting");
      ws = new WebSocket(streamUrl(q));
      ws.onopen = () => {
        retry = 0;
        setConn("live");
      };
      ws.onmessage = (ev: MessageEvent<string>) => {
        let msg: StreamMessage;
        try {
          msg = JSON.parse(ev.data) as StreamMessage;
        } catch {
          return;
        }
        if (msg.type === "entry") {
          b.push(msg.entry);
          schedule();
        } else if (msg.type === "missed") {
          b.missed += msg.count;
          schedule();
        } else if (msg.type === "error") {
          const d = msg.detail;
          setError(new ApiError(400, d, "/api/v1/stream"));
          stopped = true;
        }
      };
      ws.onclose = () => {
        if (stopped) return;
        retry++;
        setConn("retrying");
        if (retry === 2) {
          // Refused twice: perhaps the session ended. Say so rather than retry forever.
          api.whoami().catch((err: unknown) => {
            if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
              stopped = true;
              window.clearTimeout(timer);
              setError(err);
            }
          });
        }
        timer = window.setTimeout(connect, Math.min(10_000, 500 * 2 ** Math.min(retry, 5)));
      };
    };
    connect();
    return () => {
      stopped = true;
      ctl.abort();
      window.clearTimeout(timer);
      if (frame.current) {
        cancelAnimationFrame(frame.current);
        window.clearTimeout(frame.current);
      }
      frame.current = 0;
      ws?.close();
    };
  }, [live, q, reload, schedule]);

  // Time range: pages from /api/v1/entries, newest first, more on scroll.
  useEffect(() => {
    if (live) return;
    const ctl = new AbortController();
    setRows([]);
    setError(null);
    setLoading(true);
    setCursor(null);
    setActive(0);
    scroller.current?.scrollTo({ top: 0 });
    api.entries({ q, from, to, limit: PAGE }, ctl.signal).then(
      (page) => {
        setRows(page.entries);
        setCursor(page.next_cursor);
        setLoading(false);
      },
      (err: unknown) => {
        if ((err as Error).name === "AbortError") return;
        setError(err);
        setLoading(false);
      },
    );
    return () => ctl.abort();
  }, [live, q, from, to, reload]);

  const loadMore = useCallback(() => {
    if (live || !cursor || loadingMore) return;
    setLoadingMore(true);
    api.entries({ q, from, to, limit: PAGE, cursor }).then(
      (page) => {
        setRows((r) => {
          const seen = new Set(r.map((e) => e.id));
          return [...r, ...page.entries.filter((e) => !seen.has(e.id))];
        });
        setCursor(page.next_cursor);
        setLoadingMore(false);
      },
      (err: unknown) => {
        setError(err);
        setLoadingMore(false);
      },
    );
  }, [live, cursor, loadingMore, q, from, to]);

  const virt = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_H,
    overscan: 12,
  });

  const resume = useCallback(() => {
    scroller.current?.scrollTo({ top: 0 });
    buf.current.setPaused(false);
    setPaused(false);
    sync();
  }, [sync]);

  function onScroll() {
    const el = scroller.current;
    if (!el) return;
    if (live) {
      const away = el.scrollTop > ROW_H / 2;
      if (away !== buf.current.paused) {
        buf.current.setPaused(away);
        setPaused(away);
        if (!away) sync();
      }
    } else if (el.scrollTop + el.clientHeight > el.scrollHeight - ROW_H * 20) {
      loadMore();
    }
  }

  function move(to: number) {
    if (!rows.length) return;
    const i = Math.max(0, Math.min(rows.length - 1, to));
    setActive(i);
    virt.scrollToIndex(i, { align: "auto" });
  }

  function onKeyDown(ev: React.KeyboardEvent) {
    const page = Math.max(1, Math.floor((scroller.current?.clientHeight ?? 300) / ROW_H) - 1);
    const keys: Record<string, () => void> = {
      ArrowDown: () => move(active + 1),
      ArrowUp: () => move(active - 1),
      PageDown: () => move(active + page),
      PageUp: () => move(active - page),
      Home: () => move(0),
      End: () => move(rows.length - 1),
      Enter: () => rows[active] && onSelect(rows[active].id),
      Escape: () => onSelect(""),
    };
    const f = keys[ev.key];
    if (f) {
      ev.preventDefault();
      f();
    }
  }

  // Esc closes the detail from anywhere on the page (unless typing in a field).
  useEffect(() => {
    if (!selected) return;
    const onKey = (ev: KeyboardEvent) => {
      const t = ev.target as HTMLElement | null;
      if (ev.key === "Escape" && !(t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA"))) {
        onSelect("");
        scroller.current?.focus();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [selected, onSelect]);

  const body = () => {
    if (error) return <ErrorState error={error} retry={() => setReload((n) => n + 1)} />;
    if (loading && rows.length === 0) return <Loading what="traffic" />;
    if (rows.length === 0) {
      return <EmptyTraffic q={q} live={live} onShowStatus={props.onShowStatus} />;
    }
    return null;
  };
  const overlay = body();

  return (
    <div className={`traffic ${selected ? "with-detail" : ""}`}>
      <div className="traffic-list">
        <div className="list-status" data-testid="list-status">
          {live ? (
            <span className={`conn ${conn}`} data-testid="conn" data-state={conn}>
              {conn === "live" ? "● live" : conn === "connecting" ? "○ connecting…" : "○ reconnecting…"}
            </span>
          ) : (
            <span className="conn range">time range</span>
          )}
          <span data-testid="row-count">
            {rows.length.toLocaleString()} {rows.length === 1 ? "entry" : "entries"}
          </span>
          {missed ? (
            <span className="warn" title="They arrived faster than this page read them; they are stored.">
              {missed.toLocaleString()} skipped by the hub — stored: reload or pick a time range to see them
            </span>
          ) : null}
          {!live && cursor ? (
            <button type="button" className="link" onClick={loadMore} disabled={loadingMore}>
              {loadingMore ? "loading…" : "load older"}
            </button>
          ) : null}
        </div>
        {paused ? (
          <button type="button" className="paused-banner" data-testid="paused-banner" onClick={resume}>
            Paused while you look — {pending.toLocaleString()} new {pending === 1 ? "entry" : "entries"}. Back to the top ↑
          </button>
        ) : null}
        <div className="grid-head" role="row">
          <span role="columnheader">Time</span>
          <span role="columnheader">Proto</span>
          <span role="columnheader">Source</span>
          <span role="columnheader">Destination</span>
          <span role="columnheader">Summary</span>
          <span role="columnheader">Status</span>
          <span role="columnheader" className="num">Latency</span>
        </div>
        <div
          ref={scroller}
          className="grid-body"
          role="grid"
          aria-label="Traffic"
          aria-rowcount={rows.length}
          tabIndex={0}
          data-testid="traffic-table"
          onScroll={onScroll}
          onKeyDown={onKeyDown}
        >
          {overlay ?? (
            <div style={{ height: virt.getTotalSize(), position: "relative" }}>
              {virt.getVirtualItems().map((v) => {
                const e = rows[v.index];
                return (
                  <Row
                    key={e.id}
                    entry={e}
                    top={v.start}
                    index={v.index}
                    active={v.index === active}
                    selected={e.id === selected}
                    onClick={() => {
                      setActive(v.index);
                      onSelect(e.id);
                    }}
                    onAddFilter={props.onAddFilter}
                  />
                );
              })}
            </div>
          )}
        </div>
      </div>
      {selected ? (
        <EntryDetail id={selected} me={props.me} onClose={() => onSelect("")} onSelect={onSelect} onAddFilter={props.onAddFilter} />
      ) : null}
    </div>
  );
}

function endpointClause(side: "src" | "dst", ep: Endpoint): string {
  return ep.pod ? clause(`${side}.pod`, ep.pod) : clause(`${side}.ip`, ep.ip);
}

function Row(p: { entry: Entry; top: number; index: number; active: boolean; selected: boolean; onClick: () => void; onAddFilter: (c: string) => void }) {
  const e = p.entry;
  const t = entryTime(e);
  const status = entryStatus(e);
  const sc = statusClass(e);
  const statusValue = e.response?.status;
  return (
    <div
      role="row"
      aria-rowindex={p.index + 1}
      aria-selected={p.selected}
      className={`grid-row${p.active ? " active" : ""}${p.selected ? " selected" : ""}`}
      style={{ transform: `translateY(${p.top}px)` }}
      data-testid="row"
      data-id={e.id}
      onClick={p.onClick}
    >
      <span role="gridcell" title={t.toISOString()}>{formatClock(t)}</span>
      <span role="gridcell">
        <Val text={e.proto} c={clause("proto", e.proto)} add={p.onAddFilter} />
      </span>
      <span role="gridcell" data-testid="cell-src">
        <Val text={endpointLabel(e.src)} c={endpointClause("src", e.src)} add={p.onAddFilter} />
      </span>
      <span role="gridcell" data-testid="cell-dst">
        <span className="arrow">→ </span>
        <Val text={endpointLabel(e.dst)} c={endpointClause("dst", e.dst)} add={p.onAddFilter} />
      </span>
      <span role="gridcell" className="summary" title={e.summary}>{e.summary || e.error}</span>
      <span role="gridcell" className={`status ${sc}`}>
        {status ? <Val text={status} c={typeof statusValue === "number" ? clause("response.status", statusValue) : null} add={p.onAddFilter} /> : null}
      </span>
      <span role="gridcell" className="num">{formatLatency(e.elapsed)}</span>
    </div>
  );
}
