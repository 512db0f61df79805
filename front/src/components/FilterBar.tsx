/** The CEL filter box (validated by the hub as you type, with completion and history)
 *  and the live / time-range switch. */

import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../lib/api";
import { applyCompletion, candidates, wordAt, type Word } from "../lib/completion";
import type { FieldsAnswer, QueryErrorDetail } from "../lib/types";
import { fromLocalInput, isLive, presetRange, toLocalInput } from "../lib/url";

type Validation =
  | { state: "idle" }
  | { state: "checking" }
  | { state: "ok" }
  | { state: "error"; detail: QueryErrorDetail };

const PRESETS: [string, number][] = [
  ["5m", 300],
  ["15m", 900],
  ["1h", 3600],
  ["6h", 6 * 3600],
  ["24h", 86400],
];

interface Props {
  q: string;
  from: string;
  to: string;
  names: string[];
  fields: FieldsAnswer | null;
  history: string[];
  onApply: (q: string) => void;
  onRange: (from: string, to: string) => void;
}

export function FilterBar({ q, from, to, names, fields, history, onApply, onRange }: Props) {
  const [draft, setDraft] = useState(q);
  const [cursor, setCursor] = useState(q.length);
  const [validation, setValidation] = useState<Validation>({ state: "idle" });
  const [focused, setFocused] = useState(false);
  const [showHistory, setShowHistory] = useState(false);
  const [pick, setPick] = useState(-1);
  const input = useRef<HTMLInputElement>(null);

  // The applied filter changed from elsewhere (a click on a value, Back, a shared link).
  useEffect(() => {
    setDraft(q);
    setCursor(q.length);
  }, [q]);

  // Ask the hub (the only grammar) whether the draft compiles, debounced.
  useEffect(() => {
    if (!draft.trim()) {
      setValidation({ state: "idle" });
      return;
    }
    const ctl = new AbortController();
    setValidation({ state: "checking" });
    const timer = window.setTimeout(() => {
      api.validate(draft, ctl.signal).then(
        () => setValidation({ state: "ok" }),
        (err: unknown) => {
          if ((err as Error).name === "AbortError") return;
          const detail = err instanceof ApiError ? (err.queryError ?? { message: err.message }) : { message: String(err) };
          setValidation({ state: "error", detail });
        },
      );
    }, 250);
    return () => {
      window.clearTimeout(timer);
      ctl.abort();
    };
  }, [draft]);

  // The history list closes on a click anywhere else.
  const boxRef = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!showHistory) return;
    const onDown = (ev: MouseEvent) => {
      const t = ev.target as Node;
      if (!boxRef.current?.contains(t) && !(t instanceof Element && t.closest("[data-testid=history-button]"))) {
        setShowHistory(false);
      }
    };
    document.addEventListener("mousedown", onDown);
    return () => document.removeEventListener("mousedown", onDown);
  }, [showHistory]);

  const word: Word | null = focused ? wordAt(draft, cursor) : null;
  const suggestions = word ? candidates(names, word.prefix) : [];
  const docs = new Map<string, string>();
  for (const list of [fields?.fields ?? [], fields?.macros ?? [], fields?.functions ?? []]) {
    for (const f of list) if (typeof f !== "string" && f.doc) docs.set(f.name, `${f.type ? `${f.type} — ` : ""}${f.doc}`);
  }

  function complete(name: string) {
    if (!word) return;
    const r = applyCompletion(draft, word, name);
    setDraft(r.text);
    setCursor(r.cursor);
    setPick(-1);
    requestAnimationFrame(() => input.current?.setSelectionRange(r.cursor, r.cursor));
  }

  function apply(text = draft) {
    if (validation.state === "error" && text === draft) return;
    setShowHistory(false);
    onApply(text.trim());
  }

  function onKeyDown(ev: React.KeyboardEvent<HTMLInputElement>) {
    if (suggestions.length && (ev.key === "ArrowDown" || ev.key === "ArrowUp")) {
      ev.preventDefault();
      const n = suggestions.length;
      setPick((p) => (ev.key === "ArrowDown" ? (p + 1) % n : (p - 1 + n) % n));
    } else if (suggestions.length && (ev.key === "Tab" || (ev.key === "Enter" && pick >= 0))) {
      ev.preventDefault();
      complete(suggestions[Math.max(pick, 0)]);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      apply();
    } else if (ev.key === "Escape") {
      setPick(-1);
      setShowHistory(false);
      if (draft !== q) setDraft(q);
    }
  }

  const err = validation.state === "error" ? validation.detail : null;
  const live = isLive({ from, to });
  const hint = err?.hint ? (Array.isArray(err.hint) ? err.hint.join(", ") : err.hint) : "";

  return (
    <div className="filterbar">
      <div className="filter-row">
        <div ref={boxRef} className={`filter-box ${err ? "invalid" : validation.state === "ok" ? "valid" : ""}`}>
          <input
            ref={input}
            data-testid="filter-input"
            aria-label="Filter (CEL)"
            aria-invalid={err ? true : undefined}
            spellCheck={false}
            autoComplete="off"
            placeholder='Filter, e.g. http && response.status >= 500 && dst.namespace == "shop"'
            value={draft}
            onChange={(e) => {
              setDraft(e.target.value);
              setCursor(e.target.selectionStart ?? e.target.value.length);
              setPick(-1);
            }}
            onSelect={(e) => setCursor(e.currentTarget.selectionStart ?? 0)}
            onKeyDown={onKeyDown}
            onFocus={() => setFocused(true)}
            onBlur={() => window.setTimeout(() => setFocused(false), 150)}
          />
          <span className="filter-state" data-testid="filter-state" data-state={validation.state}>
            {validation.state === "checking" ? "…" : validation.state === "ok" ? "✓" : err ? "✗" : ""}
          </span>
          {suggestions.length ? (
            <ul className="dropdown" role="listbox" data-testid="completions">
              {suggestions.map((s, i) => (
                <li key={s} role="option" aria-selected={i === pick} className={i === pick ? "picked" : ""} onMouseDown={(e) => { e.preventDefault(); complete(s); }}>
                  <code>{s}</code>
                  {docs.get(s) ? <span className="doc">{docs.get(s)}</span> : null}
                </li>
              ))}
            </ul>
          ) : showHistory ? (
            <ul className="dropdown" role="listbox" data-testid="history">
              {history.length === 0 ? <li className="empty">No recent filters yet: apply one with Enter.</li> : null}
              {history.map((h) => (
                <li key={h} role="option" aria-selected={false} onMouseDown={(e) => { e.preventDefault(); setDraft(h); apply(h); }}>
                  <code>{h}</code>
                </li>
              ))}
            </ul>
          ) : null}
        </div>
        <button type="button" data-testid="filter-apply" onClick={() => apply()} disabled={validation.state === "error"}>
          Apply
        </button>
        <button type="button" title="Recent filters" data-testid="history-button" onClick={() => setShowHistory((s) => !s)}>
          History
        </button>
        {q ? (
          <button type="button" title="Show everything" data-testid="filter-clear" onClick={() => apply("")}>
            Clear
          </button>
        ) : null}
        <div className="range" role="group" aria-label="Time">
          <button type="button" className={live ? "seg active" : "seg"} data-testid="mode-live" onClick={() => onRange("", "")}>
            ● Live
          </button>
          <button
            type="button"
            className={live ? "seg" : "seg active"}
            data-testid="mode-range"
            onClick={() => {
              if (live) onRange(...presetRange(900));
            }}
          >
            Range
          </button>
        </div>
      </div>
      {!live ? (
        <div className="range-row" data-testid="range-row">
          <label>
            From <input type="datetime-local" step={1} data-testid="range-from" value={toLocalInput(from)} onChange={(e) => { const v = fromLocalInput(e.target.value); if (v) onRange(v, to); }} />
          </label>
          <label>
            To <input type="datetime-local" step={1} data-testid="range-to" value={toLocalInput(to)} onChange={(e) => { const v = fromLocalInput(e.target.value); if (v) onRange(from, v); }} />
          </label>
          <span className="presets">
            Last{" "}
            {PRESETS.map(([label, secs]) => (
              <button type="button" key={label} className="link" onClick={() => onRange(...presetRange(secs))}>
                {label}
              </button>
            ))}
          </span>
        </div>
      ) : null}
      {err ? (
        <div className="filter-error" data-testid="filter-error" role="alert">
          <pre className="caret-line" aria-hidden="true">
            {caretLine(draft, err.position)}
          </pre>
          <span className="message">{err.message}</span>
          {hint ? <span className="hint"> — {hint}</span> : null}
        </div>
      ) : null}
    </div>
  );
}

/** The filter text with the error's character underlined, and a caret under it. */
function caretLine(text: string, position: number | null | undefined) {
  if (position === null || position === undefined || position < 0) return <>{text}</>;
  const p = Math.min(position, text.length);
  return (
    <>
      {text.slice(0, p)}
      <span className="err-at" data-testid="error-at">{text.slice(p, p + 1) || " "}</span>
      {text.slice(p + 1)}
      {"\n"}
      {" ".repeat(p)}^
    </>
  );
}
