/** "Copy as curl" for HTTP entries. */

import type { Entry } from "./types";

/** Quote for a POSIX shell: single quotes, with ' as '\''. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

const SKIP_HEADERS = new Set(["content-length", "host", ":authority", ":method", ":path", ":scheme"]);

export function curlCommand(entry: Entry): string {
  const req = entry.request ?? {};
  const method = typeof req.method === "string" ? req.method : "GET";
  const headers = (req.headers && typeof req.headers === "object" ? req.headers : {}) as Record<string, unknown>;
  const host =
    (typeof req.host === "string" && req.host) ||
    (typeof headers.host === "string" && headers.host) ||
    (typeof headers[":authority"] === "string" && (headers[":authority"] as string)) ||
    `${entry.dst.ip.includes(":") ? `[${entry.dst.ip}]` : entry.dst.ip}${entry.dst.port ? `:${entry.dst.port}` : ""}`;
  const path = typeof req.path === "string" && req.path ? req.path : "/";
  const query = typeof req.query === "string" && req.query ? `?${req.query}` : "";
  const scheme = entry.tls ? "https" : "http";
  const parts = ["curl"];
  if (method !== "GET" || req.body) parts.push("-X", shellQuote(method));
  parts.push(shellQuote(`${scheme}://${host}${path}${query}`));
  for (const [name, value] of Object.entries(headers)) {
    if (SKIP_HEADERS.has(name.toLowerCase()) || typeof value !== "string") continue;
    for (const v of name.toLowerCase() === "set-cookie" ? value.split("\n") : [value]) {
      parts.push("-H", shellQuote(`${name}: ${v}`));
    }
  }
  if (typeof req.body === "string" && req.body) {
    if (req.body_encoding === "base64") {
      // Binary body: decode it in the shell rather than pasting bytes into a terminal.
      return `printf %s ${shellQuote(req.body)} | base64 -d | ${parts.join(" ")} --data-binary @-`;
    }
    parts.push("--data-raw", shellQuote(req.body));
  }
  return parts.join(" ");
}
