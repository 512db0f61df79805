/** Status: who I am and what I may see; capture health per node; targeted pods. */

import { useEffect, useState } from "react";
import { api } from "../lib/api";
import { formatBytes } from "../lib/body";
import { targetNames } from "../lib/format";
import type { StatusAnswer, Whoami } from "../lib/types";
import { parseTime } from "../lib/url";
import { ErrorState, Loading } from "./States";
import { TargetingRulesCard } from "./TargetingRules";

const PERMISSIONS: [string, string][] = [
  ["view-bodies", "see headers and bodies"],
  ["download-pcap", "download PCAP"],
  ["export", "export HAR/PCAP of many entries"],
  ["admin", "change targeting, manage tokens, read the audit log"],
];

function ago(v: number | string | null | undefined): string {
  if (v === null || v === undefined || v === "") return "never";
  const d = typeof v === "number" ? new Date(v * 1000) : parseTime(v);
  if (!d) return String(v);
  const s = Math.round((Date.now() - d.getTime()) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return d.toLocaleString();
}

export function StatusView({ me }: { me: Whoami }) {
  const [status, setStatus] = useState<StatusAnswer | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    setError(null);
    api.status().then(setStatus, setError);
  }, [tick]);
  useEffect(() => {
    const t = window.setInterval(() => setTick((n) => n + 1), 10_000);
    return () => window.clearInterval(t);
  }, []);

  return (
    <div className="status-page" data-testid="status">
      <section className="card" data-testid="whoami">
        <h2>You</h2>
        <dl className="kv">
          <dt>Name</dt>
          <dd data-testid="whoami-name">{me.name}</dd>
          <dt>Namespaces</dt>
          <dd data-testid="whoami-namespaces">{me.namespaces.map((n) => <code key={n} className="pill">{n}</code>)}</dd>
          <dt>Permissions</dt>
          <dd>
            <ul className="perms">
              {PERMISSIONS.map(([p, what]) => {
                const has = me.permissions.includes(p);
                return (
                  <li key={p} className={has ? "yes" : "no"} data-testid={`perm-${p}`} data-has={has}>
                    {has ? "✓" : "✗"} <code>{p}</code> — {what}
                    {!has ? <span className="muted"> (ask an administrator for a role with it)</span> : null}
                  </li>
                );
              })}
            </ul>
          </dd>
        </dl>
      </section>
      <section className="card" data-testid="capture">
        <h2>Capture</h2>
        {error ? (
          <ErrorState error={error} retry={() => setTick((n) => n + 1)} />
        ) : !status ? (
          <Loading what="capture status" />
        ) : status.sniffers.length === 0 ? (
          <p>No sniffer has reported yet. Deploy the DaemonSet (or run <code>kubeweir tap</code>); each node's sniffer appears here after its first heartbeat.</p>
        ) : (
          <table className="sniffers" data-testid="sniffers">
            <thead>
              <tr><th>Node</th><th>Last seen</th><th className="num">Entries</th><th className="num">Drops</th><th className="num">Spool</th><th className="num">Targets</th></tr>
            </thead>
            <tbody>
              {status.sniffers.map((s) => (
                <tr key={s.node}>
                  <td>{s.node}</td>
                  <td>{ago(s.last_seen)}</td>
                  <td className="num">{(s.entries ?? 0).toLocaleString()}</td>
                  <td className={`num ${s.drops ? "err" : ""}`}>{(s.drops ?? 0).toLocaleString()}</td>
                  <td className="num">{formatBytes(s.spool_bytes ?? 0)}</td>
                  <td className="num">{typeof s.targets === "number" ? s.targets : targetNames(s.targets).length}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section className="card" data-testid="targets">
        <h2>Targeted pods</h2>
        <TargetingRulesCard me={me} />
        {status ? (
          (() => {
            const all = status.sniffers.flatMap((s) => targetNames(s.targets).map((t) => [s.node, t] as const));
            const counts = status.sniffers.filter((s) => typeof s.targets === "number");
            if (all.length) {
              return (
                <ul className="targets" data-testid="target-list">
                  {all.map(([node, t]) => <li key={`${node}:${t}`}><code>{t}</code> <span className="muted">on {node}</span></li>)}
                </ul>
              );
            }
            if (counts.some((s) => (s.targets as number) > 0)) {
              return (
                <>
                  <ul className="target-counts" data-testid="target-counts">
                    {counts.map((s) => <li key={s.node}><b>{s.targets as number}</b> pods on <code>{s.node}</code></li>)}
                  </ul>
                  <p className="muted">The sniffers report how many pods they capture, not which; their logs name them.</p>
                </>
              );
            }
            return <p>No pod is targeted: check the sniffers' targeting rules (namespaces, labels, pod-name pattern).</p>;
          })()
        ) : null}
      </section>
    </div>
  );
}
