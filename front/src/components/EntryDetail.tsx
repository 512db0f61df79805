/** One entry in full: both ends, request and response (headers, bodies by type), timing,
 *  its TCP stream, redaction markers; copy as curl, HAR and PCAP downloads. */

import { Fragment, useEffect, useState } from "react";
import { api, apiUrl } from "../lib/api";
import { formatBody, formatBytes } from "../lib/body";
import { curlCommand } from "../lib/curl";
import { clause } from "../lib/filter";
import { entryStatus, entryTime, formatLatency, statusClass } from "../lib/format";
import type { Endpoint, Entry, Fields, Whoami } from "../lib/types";
import { ErrorState, Loading } from "./States";
import { Val } from "./Val";

export const REDACTED = "[REDACTED]";

interface Props {
  id: string;
  me: Whoami;
  onClose: () => void;
  onSelect: (id: string) => void;
  onAddFilter: (c: string) => void;
}

export function EntryDetail({ id, me, onClose, onSelect, onAddFilter }: Props) {
  const [entry, setEntry] = useState<Entry | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [copied, setCopied] = useState("");
  const [reload, setReload] = useState(0);

  useEffect(() => {
    const ctl = new AbortController();
    setEntry(null);
    setError(null);
    setCopied("");
    api.entry(id, ctl.signal).then(setEntry, (err: unknown) => {
      if ((err as Error).name !== "AbortError") setError(err);
    });
    return () => ctl.abort();
  }, [id, reload]);

  const idFilter = clause("id", id);
  const canPcap = me.permissions.includes("download-pcap") || me.permissions.includes("admin");
  const canBodies = me.permissions.includes("view-bodies") || me.permissions.includes("admin");

  async function copyCurl(e: Entry) {
    const text = curlCommand(e);
    try {
      await navigator.clipboard.writeText(text);
      setCopied(text);
    } catch {
      // No clipboard access (insecure origin, denied): show it to copy by hand.
      setCopied(text);
    }
  }

  return (
    <aside className="detail" data-testid="detail" aria-label="Entry detail">
      <div className="detail-head">
        <h2 title={entry?.summary}>{entry ? entry.summary || `${entry.proto} exchange` : "Entry"}</h2>
        <button type="button" className="close" aria-label="Close (Esc)" title="Close (Esc)" data-testid="detail-close" onClick={onClose}>
          ✕
        </button>
      </div>
      {error ? (
        <ErrorState error={error} retry={() => setReload((n) => n + 1)} />
      ) : !entry ? (
        <Loading what="the entry" />
      ) : (
        <div className="detail-body">
          <div className="actions">
            {entry.proto === "http" || entry.proto === "http2" || entry.proto === "grpc" ? (
              <button type="button" data-testid="copy-curl" onClick={() => void copyCurl(entry)}>
                Copy as curl
              </button>
            ) : null}
            <a className="button" data-testid="download-har" href={apiUrl("/api/v1/export.har", { q: idFilter })} download={`${id}.har`}>
              Download HAR
            </a>
            {canPcap ? (
              <a className="button" data-testid="download-pcap" href={apiUrl("/api/v1/export.pcap", { q: idFilter })} download={`${id}.pcap`}>
                Download PCAP
              </a>
            ) : (
              <span className="muted" data-testid="no-pcap" title="Ask an administrator for a role with download-pcap">
                PCAP needs the <code>download-pcap</code> permission
              </span>
            )}
          </div>
          {copied ? (
            <pre className="curl" data-testid="curl-text">{copied}</pre>
          ) : null}

          <Overview entry={entry} add={onAddFilter} />
          <div className="ends">
            <EndpointCard title="Source" side="src" ep={entry.src} add={onAddFilter} />
            <EndpointCard title="Destination" side="dst" ep={entry.dst} add={onAddFilter} />
          </div>
          {entry.redacted && entry.redacted.length ? (
            <section className="redaction" data-testid="redacted-paths">
              <h3>Redacted at the source</h3>
              <p className="muted">These values were replaced by <Redacted /> on the node; the hub never had them.</p>
              <ul>
                {entry.redacted.map((p) => <li key={p}><code>{p}</code></li>)}
              </ul>
            </section>
          ) : null}
          <Message title="Request" fields={entry.request} canBodies={canBodies} testid="request" />
          <Message title="Response" fields={entry.response} canBodies={canBodies} testid="response" />
          {entry.stream ? <StreamList entry={entry} onSelect={onSelect} /> : null}
        </div>
      )}
    </aside>
  );
}

function Overview({ entry, add }: { entry: Entry; add: (c: string) => void }) {
  const t = entryTime(entry);
  const rows: [string, React.ReactNode][] = [
    ["Time", <span title={String(entry.ts)}>{t.toISOString()}</span>],
    ["Protocol", <Val text={entry.proto} c={clause("proto", entry.proto)} add={add} />],
    ["Status", <span className={`status ${statusClass(entry)}`}>{entryStatus(entry) || "—"}</span>],
    ["Latency", formatLatency(entry.elapsed)],
    ["Stream", entry.stream ? <Val text={`${entry.stream} #${entry.index ?? 0}`} c={clause("stream", entry.stream)} add={add} /> : "—"],
    ["Captured on", entry.node ? <Val text={entry.node} c={clause("node", entry.node)} add={add} /> : "—"],
    ["TLS", entry.tls ? "yes (plaintext from a TLS library hook)" : "no"],
  ];
  if (entry.gaps) rows.push(["Gaps", `${entry.gaps} bytes missing from the capture`]);
  if (entry.error) rows.push(["Error", <span className="error-text">{entry.error}</span>]);
  rows.push(["Id", <code>{entry.id}</code>]);
  return (
    <dl className="kv overview" data-testid="overview">
      {rows.map(([k, v]) => (
        <Fragment key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </Fragment>
      ))}
    </dl>
  );
}

function EndpointCard({ title, side, ep, add }: { title: string; side: "src" | "dst"; ep: Endpoint; add: (c: string) => void }) {
  const items: [string, string, string][] = [
    ["Namespace", "namespace", ep.namespace ?? ""],
    ["Pod", "pod", ep.pod ?? ""],
    ["Workload", "workload", ep.workload ?? ""],
    ["Service", "service", ep.service ?? ""],
    ["Node", "node", ep.node ?? ""],
    ["Address", "ip", ep.ip],
  ];
  return (
    <section className="end" data-testid={`end-${side}`}>
      <h3>{title}</h3>
      <dl className="kv">
        {items.map(([label, field, v]) =>
          v ? (
            <Fragment key={field}>
              <dt>{label}</dt>
              <dd>
                <Val text={field === "ip" && ep.port ? `${v}:${ep.port}` : v} c={clause(`${side}.${field}`, v)} add={add} />
              </dd>
            </Fragment>
          ) : null,
        )}
        {Object.entries(ep.labels ?? {}).map(([k, v]) => (
          <Fragment key={`l:${k}`}>
            <dt className="label-key">{k}</dt>
            <dd>
              <Val text={v} c={`${side}.labels[${JSON.stringify(k)}] == ${JSON.stringify(v)}`} add={add} />
            </dd>
          </Fragment>
        ))}
      </dl>
    </section>
  );
}

/** Text with every [REDACTED] marked. */
export function Marked({ text }: { text: string }) {
  if (!text.includes(REDACTED)) return <>{text}</>;
  const parts = text.split(REDACTED);
  return (
    <>
      {parts.map((p, i) => (
        <Fragment key={i}>
          {p}
          {i < parts.length - 1 ? <Redacted /> : null}
        </Fragment>
      ))}
    </>
  );
}

function Redacted() {
  return <mark className="redacted" data-testid="redacted" title="Replaced by a redaction rule on the node">{REDACTED}</mark>;
}

const SKIP = new Set(["headers", "body", "body_encoding", "body_size", "body_truncated", "content_type"]);

function scalar(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function Message({ title, fields, canBodies, testid }: { title: string; fields?: Fields; canBodies: boolean; testid: string }) {
  if (!fields || Object.keys(fields).length === 0) {
    return (
      <section className="message" data-testid={testid}>
        <h3>{title}</h3>
        <p className="muted">{testid === "response" ? "No response was seen." : "No request fields."}</p>
      </section>
    );
  }
  const headers = fields.headers && typeof fields.headers === "object" ? (fields.headers as Record<string, unknown>) : null;
  const others = Object.entries(fields).filter(([k]) => !SKIP.has(k));
  const body = formatBody(fields);
  const size = typeof fields.body_size === "number" ? fields.body_size : undefined;
  const withheld = !canBodies && !("body" in fields);
  return (
    <section className="message" data-testid={testid}>
      <h3>{title}</h3>
      {others.length ? (
        <dl className="kv">
          {others.map(([k, v]) => (
            <Fragment key={k}>
              <dt>{k}</dt>
              <dd><Marked text={scalar(v)} /></dd>
            </Fragment>
          ))}
        </dl>
      ) : null}
      {!canBodies && !headers ? (
        <p className="muted" data-testid={`${testid}-withheld`}>
          Headers and body are withheld: your role lacks the <code>view-bodies</code> permission.
        </p>
      ) : null}
      {headers && Object.keys(headers).length ? (
        <>
          <h4>Headers</h4>
          <table className="headers" data-testid={`${testid}-headers`}>
            <tbody>
              {Object.entries(headers).map(([k, v]) => (
                <tr key={k}>
                  <th>{k}</th>
                  <td><Marked text={scalar(v)} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
      <h4>
        Body{" "}
        <span className="muted">
          {formatBytes(size)}
          {fields.body_truncated ? " (truncated)" : ""}
          {typeof fields.content_type === "string" && fields.content_type ? ` · ${fields.content_type}` : ""}
          {body.kind !== "empty" ? ` · shown as ${body.kind}` : ""}
        </span>
      </h4>
      <div data-testid={`${testid}-body`}>
        {withheld ? (
          <p className="muted">Withheld{size ? ` (${formatBytes(size)} on the wire)` : ""}.</p>
        ) : body.kind === "empty" ? (
          <p className="muted">Empty.</p>
        ) : body.kind === "form" ? (
          <table className="headers">
            <tbody>
              {body.pairs.map(([k, v], i) => (
                <tr key={i}>
                  <th>{k}</th>
                  <td><Marked text={v} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <pre className={`body ${body.kind}`}>
            <Marked text={body.text} />
          </pre>
        )}
        {typeof fields.body_error === "string" ? <p className="error-text">{fields.body_error}</p> : null}
      </div>
    </section>
  );
}

function StreamList({ entry, onSelect }: { entry: Entry; onSelect: (id: string) => void }) {
  const [items, setItems] = useState<Entry[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const ctl = new AbortController();
    setItems(null);
    setError(null);
    api.entries({ q: clause("stream", entry.stream ?? ""), limit: 100 }, ctl.signal).then(
      (p) => setItems([...p.entries].sort((a, b) => (a.index ?? 0) - (b.index ?? 0))),
      (err: unknown) => {
        if ((err as Error).name !== "AbortError") setError(err);
      },
    );
    return () => ctl.abort();
  }, [entry.stream]);
  return (
    <section className="stream" data-testid="stream">
      <h3>TCP stream <span className="muted">{entry.stream}</span></h3>
      {error ? (
        <p className="error-text">{error instanceof Error ? error.message : String(error)}</p>
      ) : !items ? (
        <p className="muted">Loading…</p>
      ) : (
        <ol className="stream-list">
          {items.map((e) => (
            <li key={e.id} className={e.id === entry.id ? "current" : ""}>
              <button type="button" className="link" onClick={() => onSelect(e.id)} disabled={e.id === entry.id}>
                #{e.index ?? 0} {e.summary || e.proto}
              </button>{" "}
              <span className="muted">{formatLatency(e.elapsed)}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
