/** Building CEL filter text from clicks (Kubeshark's green "+"): never a second grammar. */

/** A CEL string literal. */
export function celString(value: string): string {
  return (
    '"' +
    value.replace(/[\\"\n\r\t]/g, (c) =>
      c === "\n" ? "\\n" : c === "\r" ? "\\r" : c === "\t" ? "\\t" : `\\${c}`,
    ) +
    '"'
  );
}

export function celValue(value: string | number | boolean): string {
  return typeof value === "string" ? celString(value) : String(value);
}

/** `field == value` as CEL; map keys as `labels["app"]`. */
export function clause(field: string, value: string | number | boolean): string {
  return `${field} == ${celValue(value)}`;
}

/** Add a clause to a filter with `&&`, bracketing the old filter if it has a top-level `||`. */
export function addClause(q: string, c: string): string {
  const t = q.trim();
  if (!t) return c;
  if (t === c || t.endsWith(`&& ${c}`)) return t;
  const wrapped = hasTopLevelOr(t) ? `(${t})` : t;
  return `${wrapped} && ${c}`;
}

function hasTopLevelOr(q: string): boolean {
  let depth = 0;
  let quote = "";
  for (let i = 0; i < q.length; i++) {
    const ch = q[i];
    if (quote) {
      if (ch === "\\") i++;
      else if (ch === quote) quote = "";
      continue;
    }
    if (ch === '"' || ch === "'") quote = ch;
    else if (ch === "(" || ch === "[") depth++;
    else if (ch === ")" || ch === "]") depth--;
    else if (depth === 0 && ch === "|" && q[i + 1] === "|") return true;
  }
  return false;
}

/** The filter for calls between two workloads of the service map (node ids "ns/workload"). */
export function edgeFilter(source: { namespace: string; workload: string }, target: { namespace: string; workload: string }): string {
  const parts: string[] = [];
  for (const [side, n] of [["src", source], ["dst", target]] as const) {
    if (n.namespace) parts.push(clause(`${side}.namespace`, n.namespace));
    if (n.workload) parts.push(clause(`${side}.workload`, n.workload));
  }
  return parts.join(" && ");
}
