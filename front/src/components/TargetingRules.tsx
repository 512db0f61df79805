/** The hub's targeting rules: shown to every viewer, editable by admins. */

import { useEffect, useState } from "react";
import type { FormEvent } from "react";
import { ApiError } from "../lib/api";
import { getTargeting, putTargeting, splitNames } from "../lib/targeting";
import type { TargetingAnswer } from "../lib/targeting";
import type { Whoami } from "../lib/types";

function message(err: unknown): string {
  return err instanceof ApiError ? err.message : String((err as Error)?.message ?? err);
}

function RulesList({ answer }: { answer: TargetingAnswer }) {
  const r = answer.rules;
  if (!r || answer.version === 0) {
    return <p data-testid="rules-none">The hub sets no targeting rules: each sniffer uses its own rules file (Helm values).</p>;
  }
  const list = (xs: string[]) => (xs.length ? xs.map((x) => <code key={x} className="pill">{x}</code>) : <span className="muted">any</span>);
  return (
    <dl className="kv" data-testid="rules-current">
      <dt>Namespaces</dt>
      <dd data-testid="rules-namespaces">{list(r.namespaces)}</dd>
      <dt>Excluded namespaces</dt>
      <dd data-testid="rules-excluded">{r.excludedNamespaces.length ? list(r.excludedNamespaces) : <span className="muted">none</span>}</dd>
      <dt>Pod name pattern</dt>
      <dd data-testid="rules-podregex">{r.podRegex ? <code>{r.podRegex}</code> : <span className="muted">any</span>}</dd>
      <dt>Label selector</dt>
      <dd data-testid="rules-selector">{r.labelSelector ? <code>{r.labelSelector}</code> : <span className="muted">any</span>}</dd>
      <dt>Version</dt>
      <dd data-testid="rules-version">
        {answer.version}
        {answer.updated_by ? <span className="muted"> (set by {answer.updated_by})</span> : null}
      </dd>
    </dl>
  );
}

export function TargetingRulesCard({ me }: { me: Whoami }) {
  const isAdmin = me.permissions.includes("admin");
  const [answer, setAnswer] = useState<TargetingAnswer | null>(null);
  const [loadError, setLoadError] = useState<string>("");
  const [form, setForm] = useState({ namespaces: "", excludedNamespaces: "", podRegex: "", labelSelector: "" });
  const [saveError, setSaveError] = useState<string>("");
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState(false);

  const fill = (a: TargetingAnswer) => {
    const r = a.rules;
    setForm({
      namespaces: (r?.namespaces ?? []).join(", "),
      excludedNamespaces: (r?.excludedNamespaces ?? []).join(", "),
      podRegex: r?.podRegex ?? "",
      labelSelector: r?.labelSelector ?? "",
    });
  };

  useEffect(() => {
    getTargeting().then(
      (a) => {
        setAnswer(a);
        fill(a);
      },
      (err) => setLoadError(message(err)),
    );
  }, []);

  const save = (ev: FormEvent) => {
    ev.preventDefault();
    setSaving(true);
    setSaveError("");
    setSaved(false);
    const rules = {
      namespaces: splitNames(form.namespaces),
      excludedNamespaces: splitNames(form.excludedNamespaces),
      podRegex: form.podRegex.trim(),
      labelSelector: form.labelSelector.trim(),
    };
    putTargeting(rules, me.csrf).then(
      (a) => {
        setAnswer(a);
        fill(a);
        setSaved(true);
        setSaving(false);
      },
      (err) => {
        setSaveError(message(err));
        setSaving(false);
      },
    );
  };

  const field = (key: keyof typeof form, label: string, placeholder: string) => (
    <label className="rules-field">
      <span>{label}</span>
      <input
        type="text"
        data-testid={`rules-input-${key}`}
        value={form[key]}
        placeholder={placeholder}
        onChange={(e) => {
          const value = e.target.value;
          setForm((f) => ({ ...f, [key]: value }));
          setSaved(false);
        }}
      />
    </label>
  );

  return (
    <div data-testid="targeting-rules">
      <h3>Targeting rules</h3>
      {loadError ? <p className="error-text" role="alert">Could not load the targeting rules: {loadError}</p> : null}
      {answer ? <RulesList answer={answer} /> : null}
      {isAdmin ? (
        <form className="rules-form" data-testid="rules-form" onSubmit={save}>
          {field("namespaces", "Namespaces (empty: all)", "shop, payments")}
          {field("excludedNamespaces", "Excluded namespaces", "kube-system")}
          {field("podRegex", "Pod name pattern (regex)", "^(orders|checkout)-")}
          {field("labelSelector", "Label selector", "app=web,tier in (api,db)")}
          <button type="submit" data-testid="rules-save" disabled={saving}>
            {saving ? "Saving…" : "Save rules"}
          </button>
          {saveError ? <p className="error-text" role="alert" data-testid="rules-error">{saveError}</p> : null}
          {saved ? <p className="muted" data-testid="rules-saved">Saved: sniffers apply them at their next heartbeat.</p> : null}
        </form>
      ) : (
        <p className="muted" data-testid="rules-readonly">Only administrators can change the targeting rules.</p>
      )}
    </div>
  );
}
