import { describe, expect, it } from "vitest";
import { formatBody, hexDump } from "./body";
import { LiveRows } from "./buffer";
import { applyCompletion, candidates, wordAt } from "./completion";
import { curlCommand, shellQuote } from "./curl";
import { addClause, celString, clause, edgeFilter } from "./filter";
import { HISTORY_KEY, HISTORY_MAX, loadHistory, pushHistory, saveHistory } from "./history";
import type { Entry } from "./types";
import { formatUrlState, fromLocalInput, isLive, parseUrlState, presetRange, toLocalInput } from "./url";

function entry(id: string, extra: Partial<Entry> = {}): Entry {
  return { id, ts: 1_700_000_000, proto: "http", src: { ip: "10.0.0.1" }, dst: { ip: "10.0.0.2", port: 80 }, ...extra };
}

describe("url state", () => {
  it("round-trips filter, range, view and entry", () => {
    const s = { view: "map" as const, q: 'dst.namespace == "a b" && x', from: "2026-01-01T00:00:00Z", to: "2026-01-01T01:00:00Z", entry: "abc" };
    const text = formatUrlState(s);
    expect(parseUrlState(text)).toEqual(s);
    expect(isLive(s)).toBe(false);
  });
  it("defaults and ignores unknown views", () => {
    expect(formatUrlState(parseUrlState("?view=nope"))).toBe("");
    expect(parseUrlState("").view).toBe("traffic");
    expect(isLive(parseUrlState("?q=x"))).toBe(true);
  });
  it("computes presets and converts local inputs", () => {
    const [from, to] = presetRange(900, new Date("2026-01-01T01:00:00.500Z"));
    expect([from, to]).toEqual(["2026-01-01T00:45:00Z", "2026-01-01T01:00:00Z"]);
    expect(fromLocalInput(toLocalInput(from))).toBe(from);
    expect(fromLocalInput("garbage")).toBe("");
    expect(toLocalInput("1767225600")).not.toBe("");
  });
});

describe("filter history", () => {
  it("keeps newest first, unique, capped", () => {
    let h: string[] = [];
    for (let i = 0; i < HISTORY_MAX + 5; i++) h = pushHistory(h, `q${i}`);
    h = pushHistory(h, "q10");
    expect(h[0]).toBe("q10");
    expect(h.length).toBe(HISTORY_MAX);
    expect(new Set(h).size).toBe(h.length);
    expect(pushHistory(h, "  ")).toEqual(h);
  });
  it("survives a store with garbage", () => {
    const data = new Map<string, string>();
    const store = { getItem: (k: string) => data.get(k) ?? null, setItem: (k: string, v: string) => void data.set(k, v) };
    data.set(HISTORY_KEY, "{not json");
    expect(loadHistory(store)).toEqual([]);
    saveHistory(store, ["a", "b"]);
    expect(loadHistory(store)).toEqual(["a", "b"]);
  });
});

describe("filter clauses", () => {
  it("quotes strings for CEL", () => {
    expect(celString('a"b\\c\n')).toBe('"a\\"b\\\\c\\n"');
    expect(clause("response.status", 500)).toBe("response.status == 500");
  });
  it("adds with && and brackets a top-level ||", () => {
    expect(addClause("", 'a == "1"')).toBe('a == "1"');
    expect(addClause("http", 'a == "1"')).toBe('http && a == "1"');
    expect(addClause("http || dns", "x == 1")).toBe("(http || dns) && x == 1");
    expect(addClause('p == "a||b"', "x == 1")).toBe('p == "a||b" && x == 1');
    expect(addClause("http && x == 1", "x == 1")).toBe("http && x == 1");
  });
  it("filters an edge of the service map", () => {
    expect(edgeFilter({ namespace: "a", workload: "Deployment/web" }, { namespace: "b", workload: "" })).toBe(
      'src.namespace == "a" && src.workload == "Deployment/web" && dst.namespace == "b"',
    );
  });
});

describe("curl", () => {
  it("quotes for the shell", () => {
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });
  it("builds a command from an HTTP entry", () => {
    const cmd = curlCommand(
      entry("1", {
        request: { method: "POST", path: "/api/x", query: "a=1", host: "svc:8080", headers: { host: "svc:8080", "content-type": "application/json", "content-length": "7" }, body: '{"a":1}' },
      }),
    );
    expect(cmd).toBe(
      "curl -X 'POST' 'http://svc:8080/api/x?a=1' -H 'content-type: application/json' --data-raw '{\"a\":1}'",
    );
  });
  it("falls back to the address and decodes binary bodies in the shell", () => {
    const cmd = curlCommand(entry("2", { request: { method: "PUT", path: "/b", body: "AAE=", body_encoding: "base64" } }));
    expect(cmd).toBe("printf %s 'AAE=' | base64 -d | curl -X 'PUT' 'http://10.0.0.2:80/b' --data-binary @-");
  });
});

describe("bodies", () => {
  it("pretty-prints JSON, splits forms, dumps binary", () => {
    expect(formatBody({ body: '{"a":[1]}', content_type: "application/json" })).toEqual({ kind: "json", text: '{\n  "a": [\n    1\n  ]\n}' });
    expect(formatBody({ body: "a=1&b=x+y", headers: { "content-type": "application/x-www-form-urlencoded" } })).toEqual({ kind: "form", pairs: [["a", "1"], ["b", "x y"]] });
    const hex = formatBody({ body: "AAFBQg==", body_encoding: "base64" });
    expect(hex).toEqual({ kind: "hex", bytes: 4, text: "00000000  00 01 41 42" + " ".repeat(36) + "  ..AB" });
    expect(formatBody({ body: "not json{", content_type: "application/json" }).kind).toBe("text");
    expect(formatBody({}).kind).toBe("empty");
    expect(hexDump(new Uint8Array(40), 16)).toContain("… 24 more bytes");
  });
});

describe("completion", () => {
  const names = ["request.path", "request.method", "response.status", "src.namespace", "dst.namespace"];
  it("finds the word at the cursor outside strings", () => {
    expect(wordAt("http && req", 11)).toEqual({ start: 8, end: 11, prefix: "req" });
    expect(wordAt('x == "req', 9)).toBeNull();
    expect(wordAt("a == 12", 7)).toBeNull();
  });
  it("proposes and applies names", () => {
    expect(candidates(names, "req")).toEqual(["request.path", "request.method"]);
    expect(candidates(names, "namespace")).toEqual(["src.namespace", "dst.namespace"]);
    const w = wordAt("src.na == 1", 6)!;
    expect(applyCompletion("src.na == 1", w, "src.namespace")).toEqual({ text: "src.namespace == 1", cursor: 13 });
  });
});

describe("live rows", () => {
  it("batches, de-duplicates, caps and counts while paused", () => {
    const rows = new LiveRows(5);
    rows.push(entry("a"));
    rows.push(entry("b"));
    rows.push(entry("a"));
    expect(rows.rows).toEqual([]);
    expect(rows.flush()).toBe(true);
    expect(rows.rows.map((e) => e.id)).toEqual(["b", "a"]);
    rows.setPaused(true);
    for (const id of ["c", "d", "e", "f"]) rows.push(entry(id));
    expect(rows.flush()).toBe(false);
    expect(rows.pendingCount).toBe(4);
    rows.setPaused(false);
    rows.flush();
    expect(rows.rows.map((e) => e.id)).toEqual(["f", "e", "d", "c", "b"]);
    rows.push(entry("a"));
    rows.flush();
    expect(rows.rows[0].id).toBe("a");
    expect(rows.appendOlder([entry("z"), entry("f")])).toBe(true);
    expect(rows.rows.length).toBe(5);
  });
});

import { edgeColour, layoutMap } from "./maplayout";

describe("service map layout", () => {
  it("places every node inside its namespace cluster and routes edges", () => {
    const m = layoutMap({
      nodes: [
        { id: "shop/Deployment/web", namespace: "shop", workload: "Deployment/web", count: 10 },
        { id: "shop/Deployment/api", namespace: "shop", workload: "Deployment/api", count: 10 },
        { id: "pay/Deployment/ledger", namespace: "pay", workload: "Deployment/ledger", count: 5 },
      ],
      edges: [
        { source: "shop/Deployment/web", target: "shop/Deployment/api", count: 10, errors: 0, error_rate: 0, rate: 1, p95: 0.01 },
        { source: "shop/Deployment/api", target: "pay/Deployment/ledger", count: 5, errors: 1, error_rate: 0.2, rate: 0.5, p95: 0.2 },
        { source: "shop/Deployment/api", target: "ext/unknown", count: 1, errors: 0, error_rate: 0, rate: 0.1 },
      ],
    });
    expect(m.nodes.map((n) => n.label).sort()).toEqual(["api", "ledger", "unknown", "web"]);
    expect(m.clusters.map((c) => c.namespace).sort()).toEqual(["ext", "pay", "shop"]);
    for (const n of m.nodes) {
      const c = m.clusters.find((k) => k.namespace === n.node.namespace)!;
      expect(Math.abs(n.x - c.x)).toBeLessThanOrEqual(c.width / 2);
      expect(Math.abs(n.y - c.y)).toBeLessThanOrEqual(c.height / 2);
    }
    expect(m.edges.every((e) => e.points.length >= 2)).toBe(true);
    expect(m.width).toBeGreaterThan(0);
    expect(edgeColour(0)).not.toBe(edgeColour(0.2));
  });
});

import { ApiError, apiUrl, streamUrl } from "./api";
import { endpointLabel, entryStatus, formatLatency, percent, rate, statusClass, targetNames } from "./format";

describe("formatting", () => {
  it("labels endpoints, latencies, statuses", () => {
    expect(endpointLabel({ ip: "10.0.0.1", port: 80, pod: "web-1", namespace: "shop" })).toBe("shop/web-1");
    expect(endpointLabel({ ip: "fd00::1", port: 53 })).toBe("[fd00::1]:53");
    expect(formatLatency(0.0000421)).toBe("42 µs");
    expect(formatLatency(0.0042)).toBe("4.20 ms");
    expect(formatLatency(0.25)).toBe("250.0 ms");
    expect(formatLatency(2)).toBe("2.00 s");
    expect(formatLatency(null)).toBe("—");
    const dns = entry("d", { proto: "dns", response: { rcode: "NXDOMAIN" } });
    expect([entryStatus(dns), statusClass(dns)]).toEqual(["NXDOMAIN", "warn"]);
    expect(statusClass(entry("g", { proto: "grpc", response: { status: 14 } }))).toBe("err");
    expect(statusClass(entry("h", { response: { status: 404 } }))).toBe("warn");
    expect(statusClass(entry("e", { error: "no response" }))).toBe("err");
    expect([percent(0), percent(0.0004), percent(0.05), percent(0.5)]).toEqual(["0%", "<0.1%", "5.0%", "50%"]);
    expect([rate(0.5), rate(12.34), rate(512)]).toEqual(["0.50/s", "12.3/s", "512/s"]);
  });
  it("reads targets as counts, names or objects", () => {
    expect(targetNames(3)).toEqual([]);
    expect(targetNames(["shop/web-1"])).toEqual(["shop/web-1"]);
    expect(targetNames([{ namespace: "shop", pod: "web-1" }])).toEqual(["shop/web-1"]);
    expect(targetNames(null)).toEqual([]);
  });
});

describe("api helpers", () => {
  it("builds URLs without empty parameters", () => {
    expect(apiUrl("/api/v1/entries", { q: 'a == "b"', from: "", cursor: null, limit: 5 })).toBe(
      "/api/v1/entries?q=a+%3D%3D+%22b%22&limit=5",
    );
    expect(apiUrl("/x")).toBe("/x");
    expect(streamUrl("http", { protocol: "https:", host: "hub:8443" } as Location)).toBe("wss://hub:8443/api/v1/stream?q=http");
  });
  it("recognises the hub's query errors", () => {
    const e = new ApiError(400, { message: "unknown field", position: 3, hint: "proto" }, "/x");
    expect(e.queryError?.position).toBe(3);
    expect(e.message).toBe("unknown field");
    expect(new ApiError(403, "download-pcap permission needed", "/x").queryError).toBeNull();
    expect(new ApiError(0, null, "/x").message).toBe("the hub did not answer");
  });
});
