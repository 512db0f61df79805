/** The dashboard shell: header, filter bar, and the view named in the URL. */

import { useCallback, useEffect, useMemo, useState } from "react";
import { FilterBar } from "./components/FilterBar";
import { ServiceMap } from "./components/ServiceMap";
import { ErrorState, Loading, Notice } from "./components/States";
import { StatusView } from "./components/StatusView";
import { TrafficView } from "./components/TrafficView";
import { api } from "./lib/api";
import { addClause } from "./lib/filter";
import { loadHistory, pushHistory, saveHistory } from "./lib/history";
import type { FieldsAnswer, Whoami } from "./lib/types";
import { formatUrlState, parseUrlState, type UrlState, type View } from "./lib/url";

function fieldNames(f: FieldsAnswer | null): string[] {
  if (!f) return [];
  const names = new Set<string>();
  for (const list of [f.fields, f.macros ?? [], f.functions ?? []]) {
    for (const x of list) {
      const name = typeof x === "string" ? x : x?.name;
      if (name) names.add(name);
    }
  }
  return [...names];
}

export function App() {
  const [state, setState] = useState<UrlState>(() => parseUrlState(window.location.search));
  const [me, setMe] = useState<Whoami | null>(null);
  const [meError, setMeError] = useState<unknown>(null);
  const [fields, setFields] = useState<FieldsAnswer | null>(null);
  const [history, setHistory] = useState<string[]>(() => loadHistory(window.localStorage));

  const loadMe = useCallback(() => {
    setMeError(null);
    api.whoami().then(setMe, setMeError);
  }, []);
  useEffect(loadMe, [loadMe]);
  useEffect(() => {
    if (me) api.fields().then(setFields, () => setFields(null));
  }, [me]);

  useEffect(() => {
    const onPop = () => setState(parseUrlState(window.location.search));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);

  /** Change the state and the URL; `replace` for changes not worth a Back step. */
  const navigate = useCallback((patch: Partial<UrlState>, replace = false) => {
    setState((old) => {
      const next = { ...old, ...patch };
      const url = `${window.location.pathname}${formatUrlState(next)}`;
      if (url !== `${window.location.pathname}${window.location.search}`) {
        if (replace) window.history.replaceState(null, "", url);
        else window.history.pushState(null, "", url);
      }
      return next;
    });
  }, []);

  const applyFilter = useCallback(
    (q: string) => {
      navigate({ q, entry: "" });
      setHistory((h) => {
        const next = pushHistory(h, q);
        saveHistory(window.localStorage, next);
        return next;
      });
    },
    [navigate],
  );
  const addToFilter = useCallback((c: string) => applyFilter(addClause(state.q, c)), [applyFilter, state.q]);
  const names = useMemo(() => fieldNames(fields), [fields]);

  if (meError) {
    return (
      <Shell view={state.view} onView={(view) => navigate({ view })} me={null}>
        <ErrorState error={meError} retry={loadMe} />
      </Shell>
    );
  }
  if (!me) {
    return (
      <Shell view={state.view} onView={(view) => navigate({ view })} me={null}>
        <Loading what="your identity" />
      </Shell>
    );
  }
  if (me.namespaces.length === 0) {
    return (
      <Shell view={state.view} onView={(view) => navigate({ view })} me={me}>
        <Notice title="No namespaces to see" testid="no-role">
          <p>
            You are logged in as <b>{me.name}</b>, but none of your roles grants any namespace. Ask an
            administrator to map one of your groups to a role (or, with Kubernetes RBAC, to grant you{" "}
            <code>get</code> on <code>traffic.kubeweir.io</code> in a namespace).
          </p>
        </Notice>
      </Shell>
    );
  }
  return (
    <Shell view={state.view} onView={(view) => navigate({ view })} me={me}>
      {state.view !== "status" ? (
        <FilterBar
          q={state.q}
          from={state.from}
          to={state.to}
          names={names}
          fields={fields}
          history={history}
          onApply={applyFilter}
          onRange={(from, to) => navigate({ from, to, entry: "" })}
        />
      ) : null}
      {state.view === "traffic" ? (
        <TrafficView
          q={state.q}
          from={state.from}
          to={state.to}
          selected={state.entry}
          me={me}
          onSelect={(entry) => navigate({ entry }, true)}
          onAddFilter={addToFilter}
          onShowStatus={() => navigate({ view: "status" })}
        />
      ) : state.view === "map" ? (
        <ServiceMap
          q={state.q}
          from={state.from}
          to={state.to}
          onEdge={(c) => navigate({ view: "traffic", q: addClause(state.q, c), entry: "" })}
        />
      ) : (
        <StatusView me={me} />
      )}
    </Shell>
  );
}

const TABS: [View, string][] = [
  ["traffic", "Traffic"],
  ["map", "Service map"],
  ["status", "Status"],
];

function Shell({ view, onView, me, children }: { view: View; onView: (v: View) => void; me: Whoami | null; children: React.ReactNode }) {
  return (
    <div className="app">
      <header className="topbar">
        <span className="brand">kubeweir</span>
        <nav role="tablist" aria-label="Views">
          {TABS.map(([v, label]) => (
            <button key={v} role="tab" type="button" aria-selected={view === v} className={view === v ? "tab active" : "tab"} data-testid={`tab-${v}`} onClick={() => onView(v)}>
              {label}
            </button>
          ))}
        </nav>
        <span className="spacer" />
        {me ? (
          <span className="me" data-testid="me" title={`namespaces: ${me.namespaces.join(", ")}`}>
            {me.name}
          </span>
        ) : null}
      </header>
      <main className="main">{children}</main>
    </div>
  );
}
