/** Bodies as the sniffer keeps them (UTF-8 text or base64), shown by their type. */

import type { Fields } from "./types";

export type BodyView =
  | { kind: "empty" }
  | { kind: "json"; text: string }
  | { kind: "form"; pairs: [string, string][] }
  | { kind: "text"; text: string }
  | { kind: "hex"; text: string; bytes: number };

export function headerValue(fields: Fields | undefined, name: string): string {
  const headers = fields?.headers;
  if (!headers || typeof headers !== "object") return "";
  const v = (headers as Record<string, unknown>)[name.toLowerCase()];
  return typeof v === "string" ? v : "";
}

export function contentType(fields: Fields | undefined): string {
  const ct = typeof fields?.content_type === "string" ? fields.content_type : headerValue(fields, "content-type");
  return ct.split(";")[0].trim().toLowerCase();
}

export function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64.replace(/\s+/g, ""));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Classic 16-bytes-a-line dump: offset, hex, ASCII. */
export function hexDump(bytes: Uint8Array, max = 64 * 1024): string {
  const lines: string[] = [];
  const n = Math.min(bytes.length, max);
  for (let off = 0; off < n; off += 16) {
    const chunk = bytes.subarray(off, Math.min(off + 16, n));
    const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(chunk, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${off.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (bytes.length > n) lines.push(`… ${bytes.length - n} more bytes`);
  return lines.join("\n");
}

function isJsonType(ct: string): boolean {
  return ct === "application/json" || ct.endsWith("+json") || ct === "application/x-ndjson";
}

export function formatBody(fields: Fields | undefined): BodyView {
  const body = fields?.body;
  if (typeof body !== "string" || body === "") return { kind: "empty" };
  if (fields?.body_encoding === "base64") {
    let bytes: Uint8Array;
    try {
      bytes = decodeBase64(body);
    } catch {
      return { kind: "text", text: body };
    }
    return { kind: "hex", text: hexDump(bytes), bytes: bytes.length };
  }
  const ct = contentType(fields);
  const trimmed = body.trimStart();
  if (isJsonType(ct) || (!ct && (trimmed.startsWith("{") || trimmed.startsWith("[")))) {
    try {
      return { kind: "json", text: JSON.stringify(JSON.parse(body), null, 2) };
    } catch {
      return { kind: "text", text: body };
    }
  }
  if (ct === "application/x-www-form-urlencoded") {
    const pairs: [string, string][] = [];
    for (const [k, v] of new URLSearchParams(body)) pairs.push([k, v]);
    return { kind: "form", pairs };
  }
  return { kind: "text", text: body };
}

export function formatBytes(n: number | undefined | null): string {
  if (n === undefined || n === null || Number.isNaN(n)) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
