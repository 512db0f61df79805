/** The traffic table's empty state: what to wait for, or what to change. */

import { useEffect, useState } from "react";
import { api } from "../lib/api";
import { targetNames } from "../lib/format";
import type { StatusAnswer } from "../lib/types";
import { Notice } from "./States";

export function EmptyTraffic({ q, live, onShowStatus }: { q: string; live: boolean; onShowStatus: () => void }) {
  const [status, setStatus] = useState<StatusAnswer | null>(null);
  useEffect(() => {
    if (!q) api.status().then(setStatus, () => setStatus(null));
  }, [q]);
  if (q) {
    return (
      <Notice title="No entries match this filter" testid="empty">
        <p>
          Nothing {live ? "yet " : "in this time range "}matches <code>{q}</code>. Loosen the filter, or{" "}
          {live ? "wait for matching traffic — new entries appear here as they arrive." : "widen the time range."}
        </p>
      </Notice>
    );
  }
  const sniffers = status?.sniffers ?? [];
  const targets = sniffers.flatMap((s) => targetNames(s.targets));
  const counted = sniffers.reduce((n, s) => n + (typeof s.targets === "number" ? s.targets : 0), 0);
  return (
    <Notice title={live ? "No traffic yet" : "No traffic in this time range"} testid="empty">
      {status && sniffers.length === 0 ? (
        <p>No sniffer has reported to the hub. Start one (the DaemonSet, or <code>kubeweir tap</code>) and traffic appears here.</p>
      ) : targets.length ? (
        <>
          <p>These pods are targeted; their calls appear here as soon as they talk:</p>
          <ul className="targets" data-testid="empty-targets">
            {targets.slice(0, 20).map((t) => <li key={t}><code>{t}</code></li>)}
          </ul>
          {targets.length > 20 ? <p>…and {targets.length - 20} more.</p> : null}
        </>
      ) : counted ? (
        <p data-testid="empty-targets">
          {counted} {counted === 1 ? "pod is" : "pods are"} targeted on {sniffers.length} {sniffers.length === 1 ? "node" : "nodes"}; their calls appear here as soon as they talk
          {live ? "" : " (widen the time range to see older ones)"}.
        </p>
      ) : status ? (
        <p>No pod is targeted yet: check the sniffers' targeting rules (namespaces, labels, pod-name pattern).</p>
      ) : null}
      <p>
        <button type="button" className="link" onClick={onShowStatus}>Capture status</button>
      </p>
    </Notice>
  );
}
