// corsgate's console: the admin API's answers at a glance, refreshed every few
// seconds. Served by the admin listener itself (no external assets; a strict
// Content-Security-Policy), it asks for the admin token when the API wants one
// and keeps it in sessionStorage for the tab.
"use strict";

const REFRESH_MS = 3000;
const HISTORY = 100; // reads kept for the charts: 5 minutes at 3 s
const KEY = "corsgate-admin-token";
const history = []; // { t, routes: { name: { req, ref } } }
let timer = null;

const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(KEY) || ""; }

// The admin API with the token; a 401 throws (the page then asks for one).
async function send(path, method = "GET") {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  const res = await fetch(path, { method, headers, cache: "no-store" });
  if (res.status === 401) {
    const err = new Error("unauthorized");
    err.unauthorized = true;
    throw err;
  }
  return res;
}

// ok: statuses whose body is an answer (/healthz says 503 with its JSON)
async function api(path, ok = [200]) {
  const res = await send(path);
  if (!ok.includes(res.status)) throw new Error(path + ": " + res.status);
  return res;
}

// { status, body }: for calls whose every status means something (/tenants)
async function call(path, method) {
  const res = await send(path, method);
  let body = {};
  try { body = await res.json(); } catch (_) { /* not JSON: an empty answer */ }
  return { status: res.status, body };
}

// Prometheus text: [{ name, labels: {...}, value }]
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$/);
    if (!m) continue;
    const labels = {};
    if (m[3])
      for (const l of m[3].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g))
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function sum(ms, name, pred) {
  let s = 0;
  for (const m of ms) if (m.name === name && (!pred || pred(m.labels))) s += m.value;
  return s;
}

// A counter's growth between two reads: a counter that went down was reset
// (a reload starts new workers at zero), and all of its value is new.
function grow(cur, prev) { return prev === undefined ? 0 : cur >= prev ? cur - prev : cur; }

// [[le, cumulative count]] of a histogram, sorted.
function buckets(ms, name) {
  const b = ms.filter((m) => m.name === name + "_bucket").map((m) => [m.labels.le === "+Inf" ? Infinity : Number(m.labels.le), m.value]);
  return b.sort((x, y) => x[0] - y[0]);
}

// The q quantile of the runs between two reads (or of all of them at the
// first read), interpolated in its bucket as Prometheus's
// histogram_quantile does.
function quantile(now, before, q) {
  const d = now.map(([le, c], i) => [le, before && before[i] ? grow(c, before[i][1]) : c]);
  const total = d.length ? d[d.length - 1][1] : 0;
  if (!total) return null;
  let lo = 0, below = 0;
  for (const [le, c] of d) {
    if (c >= q * total) {
      if (le === Infinity) return Infinity;
      return lo + ((le - lo) * (q * total - below)) / ((c - below) || 1);
    }
    lo = le;
    below = c;
  }
  return Infinity;
}

function ms(v) {
  if (v === null) return "–";
  if (v === Infinity) return "> 1 s";
  return v < 0.001 ? (v * 1000).toFixed(2) + " ms" : Math.round(v * 1000) + " ms";
}

function fmt(n) { return n >= 100 ? Math.round(n).toLocaleString("en") : n.toFixed(1); }

let last = null; // the previous read: { hits, misses, hook } for the deltas

function showMetrics(text) {
  const m = parseMetrics(text);
  const now = Date.now() / 1000;
  const routes = {};
  for (const x of m) {
    const route = x.labels.route || (x.labels.tenant === "other" ? "(other tenants)" : "(no route)");
    if (x.name === "corsgate_requests_total") (routes[route] ||= { req: 0, ref: 0 }).req += x.value;
    if (x.name === "corsgate_cors_decisions_total" && x.labels.result !== "allowed")
      (routes[route] ||= { req: 0, ref: 0 }).ref += x.value;
  }
  history.push({ t: now, routes });
  if (history.length > HISTORY) history.shift();
  const prev = history.length > 1 ? history[history.length - 2] : null;
  let rps = 0, refs = 0;
  if (prev) {
    const dt = now - prev.t || 1;
    for (const [name, r] of Object.entries(routes)) {
      const p = prev.routes[name] || { req: 0, ref: 0 };
      rps += grow(r.req, p.req) / dt;
      refs += grow(r.ref, p.ref) / dt;
    }
    $("rps").textContent = fmt(rps);
    $("refusals").textContent = fmt(refs);
  }
  // since the last read (all time at the first)
  const read = { hits: sum(m, "corsgate_cache_hits_total"), misses: sum(m, "corsgate_cache_misses_total"),
    hook: buckets(m, "corsgate_hook_duration_seconds") };
  const hits = last ? grow(read.hits, last.hits) : read.hits, misses = last ? grow(read.misses, last.misses) : read.misses;
  $("cache").textContent = hits + misses ? Math.round((100 * hits) / (hits + misses)) + "% hits" : "no lookups";
  // the store the workers share holds each decision once; without it, each worker's cache
  const shared = m.some((x) => x.name === "corsgate_cache_shared_entries");
  $("cache-size").textContent = sum(m, shared ? "corsgate_cache_shared_entries" : "corsgate_cache_entries").toLocaleString("en") +
    " cached" + (shared ? " (shared by the workers)" : "");
  const before = last ? last.hook : null;
  const p50 = quantile(read.hook, before, 0.5);
  $("hooks").textContent = p50 === null ? "no runs" : ms(p50) + " / " + ms(quantile(read.hook, before, 0.99));
  last = read;
  $("hook-errors").textContent = sum(m, "corsgate_hook_errors_total") + " errors, " +
    sum(m, "corsgate_hook_timeouts_total") + " timeouts";
  drawCharts();
}

function series(name, key) {
  const pts = [];
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1], b = history[i];
    const va = (a.routes[name] || {})[key] || 0, vb = (b.routes[name] || {})[key] || 0;
    pts.push([b.t, grow(vb, va) / ((b.t - a.t) || 1)]);
  }
  return pts;
}

function path(pts, t0, t1, max) {
  return pts.map(([t, v], i) => (i ? "L" : "M") + ((600 * (t - t0)) / (t1 - t0 || 1)).toFixed(1) + "," +
    (68 - (64 * v) / (max || 1)).toFixed(1)).join(" ");
}

function drawCharts() {
  const box = $("charts");
  const last = history[history.length - 1];
  if (!last || history.length < 2) return;
  const t0 = history[0].t, t1 = last.t;
  box.textContent = "";
  for (const name of Object.keys(last.routes).sort()) {
    const req = series(name, "req"), ref = series(name, "ref");
    const max = Math.max(1, ...req.map((p) => p[1]), ...ref.map((p) => p[1]));
    const div = document.createElement("div");
    div.className = "chart";
    const title = document.createElement("div");
    const nowReq = req.length ? req[req.length - 1][1] : 0, nowRef = ref.length ? ref[ref.length - 1][1] : 0;
    title.textContent = name + ": " + fmt(nowReq) + " requests/s, " + fmt(nowRef) + " refused/s (peak " + fmt(max) + ")";
    div.appendChild(title);
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 600 70");
    svg.setAttribute("preserveAspectRatio", "none");
    for (const [pts, cls] of [[req, "req"], [ref, "ref"]]) {
      const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
      p.setAttribute("d", path(pts, t0, t1, max));
      p.setAttribute("class", cls);
      svg.appendChild(p);
    }
    div.appendChild(svg);
    box.appendChild(div);
  }
}

function showHealth(h) {
  hasRedis = !!h.redis;
  $("workers").textContent = h.workers_up + " / " + h.workers + " up";
  if (h.redis) {
    $("fleet").textContent = "Redis " + h.redis.state + ", channel " + h.redis.subscriber;
    $("primary").textContent = h.redis.primary ? "primary " + h.redis.primary + ", " + h.redis.failovers + " failover(s)" : "";
  } else {
    $("fleet").textContent = "no Redis";
  }
  $("status").textContent = h.status + " · up " + h.uptime_s + " s";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function showRefused(j) {
  const body = $("refused").querySelector("tbody");
  body.textContent = "";
  $("refused-empty").hidden = j.refused.length > 0;
  for (const e of j.refused) {
    const tr = document.createElement("tr");
    cell(tr, e.origin, "origin");
    cell(tr, e.route);
    cell(tr, e.reason + (e.method ? " " + e.method : "") + (e.header ? " " + e.header : "") +
      (e.problem ? " (" + e.problem + ")" : ""), "reason");
    cell(tr, e.tenant || "");
    cell(tr, e.count.toLocaleString("en"));
    cell(tr, new Date(e.last_seen).toLocaleTimeString());
    const a = document.createElement("a");
    a.href = "#explain-form";
    a.textContent = "explain";
    a.className = "explain-link";
    a.addEventListener("click", () => fillExplain(e));
    cell(tr, "").appendChild(a);
    body.appendChild(tr);
  }
}

// The row's first refused request again: its origin, path and host, and the
// method or header refused (else a PUT: a method with a preflight).
function fillExplain(e) {
  const f = $("explain-form");
  f.origin.value = e.origin;
  f.method.value = e.method || "PUT";
  f.header.value = e.header || "";
  f.path.value = e.path || "/";
  f.host.value = e.host || "";
  f.requestSubmit();
}

function line(parent, label, text, cls) {
  const p = document.createElement("div");
  const b = document.createElement("strong");
  b.textContent = label + " ";
  p.appendChild(b);
  const s = document.createElement("span");
  s.textContent = text;
  if (cls) s.className = cls;
  p.appendChild(s);
  parent.appendChild(p);
}

function headersText(list) { return (list || []).map(([k, v]) => k + ": " + v).join("\n"); }

async function explain(ev) {
  ev.preventDefault();
  const f = ev.target;
  const q = new URLSearchParams();
  for (const k of ["origin", "method", "path", "host"]) if (f[k].value) q.set(k, f[k].value);
  for (const h of f.header.value.split(",").map((s) => s.trim()).filter(Boolean)) q.append("header", h);
  const out = $("verdict");
  out.textContent = "";
  try {
    const j = await (await api("/explain?" + q)).json();
    line(out, "verdict", j.allowed ? "allowed: the page can read the response" : "blocked: the browser reports a CORS error",
      j.allowed ? "allowed" : "blocked");
    if (!j.route || j.route.index === undefined) {
      line(out, "route", "no route matches this host and path (404, no CORS headers)");
      return;
    }
    line(out, "route", (j.route.name || "#" + j.route.index) + (j.route.plugin ? " (plugin " + j.route.plugin + ")" : ""));
    const d = j.decided_by;
    if (d && d.kind === "plugin")
      line(out, "decided by", "plugin " + d.plugin + ": " + (d.error ? "FAILED (" + d.error + "): denied, fails closed"
        : (d.allow ? "allowed" : "denied") + (d.tenant ? ", tenant " + d.tenant : "")));
    else if (d) line(out, "decided by", d.kind + ": " + (d.rule || ""));
    for (const [name, part] of [["preflight", j.preflight], ["request", j.actual]]) {
      if (!part) continue;
      if (part.sent === false) {
        line(out, name, "not sent: the browser stops at the refused preflight");
        continue;
      }
      line(out, name, part.result + (part.detail ? ": " + part.detail : "") + (part.detail_arg ? " (" + part.detail_arg + ")" : "") +
        (part.status ? ", " + part.status : ""));
      if (part.problems && part.problems.length > 1)
        for (const p of part.problems) line(out, "  problem", p.result + ": " + p.detail + (p.arg ? " (" + p.arg + ")" : ""));
      const pre = document.createElement("pre");
      pre.textContent = headersText(part.headers);
      if (pre.textContent) out.appendChild(pre);
    }
  } catch (e) {
    if (e.unauthorized) return askToken(true);
    line(out, "error", String(e.message || e), "blocked");
  }
}

// --- tenants: shown when the admin API has a tenant store (the config's redis) ---

let tenantQuery = { match: "", next: null };

function tenantNote(text, cls) {
  const p = $("tenant-note");
  p.textContent = text;
  p.className = cls || "muted";
  return p;
}

function button(text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

async function probeTenants() {
  const r = await call("/tenants?limit=1");
  $("tenants").hidden = r.status === 404;
  if (r.status === 200) tenantNote(r.body.total.toLocaleString("en") + " tenant(s) in the store. Search by name, or give an origin.");
  else if (r.status !== 404) tenantNote(r.body.error || "the tenant store answered " + r.status, "blocked");
}

async function purge(what, value) {
  const r = await call("/cache?" + what + "=" + encodeURIComponent(value), "DELETE");
  if (r.status !== 200) return tenantNote(r.body.error || "purge failed: " + r.status, "blocked");
  tenantNote("Purged " + r.body.purged + " cached decision(s) of " + what + " " + value +
    " in every worker; the next request asks the store again.", "allowed");
}

async function ownerOf(origin) {
  $("tenant-list").hidden = $("tenant-more").hidden = $("tenant-detail").hidden = true;
  const r = await call("/tenants?origin=" + encodeURIComponent(origin));
  if (r.status !== 200) return tenantNote(r.body.error || "the tenant store answered " + r.status, "blocked");
  const p = tenantNote(r.body.origin + " belongs to tenant " + r.body.tenant +
    (r.body.allowed ? "" : ", which is switched off (its origins are refused)") + ". ", "allowed");
  p.appendChild(button("Open " + r.body.tenant, () => openTenant(r.body.tenant).catch(tenantFailed)));
  p.appendChild(button("Purge this origin's cached decisions", () => purge("origin", r.body.origin).catch(tenantFailed)));
}

async function listTenants(more) {
  if (!more) tenantQuery.next = null;
  const q = new URLSearchParams({ limit: "50", match: tenantQuery.match });
  if (more && tenantQuery.next) q.set("after", tenantQuery.next);
  const r = await call("/tenants?" + q);
  if (r.status !== 200) return tenantNote(r.body.error || "the tenant store answered " + r.status, "blocked");
  const body = $("tenant-list").querySelector("tbody");
  if (!more) body.textContent = "";
  for (const t of r.body.tenants) {
    const tr = document.createElement("tr");
    const a = document.createElement("a");
    a.href = "#tenant-detail";
    a.textContent = t.name;
    a.className = "tenant-link";
    a.addEventListener("click", () => openTenant(t.name).catch(tenantFailed));
    cell(tr, "").appendChild(a);
    cell(tr, t.origins.toLocaleString("en"));
    cell(tr, t.allowed ? "allowed" : "switched off", t.allowed ? "" : "reason");
    body.appendChild(tr);
  }
  tenantQuery.next = r.body.next;
  $("tenant-list").hidden = body.children.length === 0;
  $("tenant-more").hidden = !r.body.next;
  tenantNote(body.children.length ? "" : "No tenant's name starts with \"" + tenantQuery.match + "\".");
}

function policyText(t) {
  const parts = [t.allowed === false ? "switched off: every origin refused" : "allowed"];
  if (t.credentials !== undefined) parts.push("credentials " + t.credentials);
  for (const k of ["expose_headers", "methods", "headers"])
    if (t[k] !== undefined) parts.push(k + ": " + (Array.isArray(t[k]) ? t[k].join(", ") || "none" : t[k]));
  for (const k of ["max_age", "ttl"]) if (t[k] !== undefined) parts.push(k + " " + t[k] + " s");
  return parts.join(" · ");
}

async function openTenant(name) {
  const r = await call("/tenants/" + encodeURIComponent(name));
  if (r.status !== 200) return tenantNote(r.body.error || "the tenant store answered " + r.status, "blocked");
  const t = r.body.tenant;
  $("tenant-name").textContent = "Tenant " + r.body.name + " (" + t.origins.length + " origin(s))";
  $("tenant-policy").textContent = policyText(t);
  const body = $("tenant-origins").querySelector("tbody");
  body.textContent = "";
  for (const o of t.origins) {
    const tr = document.createElement("tr");
    cell(tr, o, "origin");
    cell(tr, "").appendChild(button("Purge", () => purge("origin", o).catch(tenantFailed)));
    body.appendChild(tr);
  }
  $("tenant-purge").onclick = () => purge("tenant", r.body.name).catch(tenantFailed);
  $("tenant-detail").hidden = false;
}

function searchTenants(ev) {
  ev.preventDefault();
  const q = ev.target.q.value.trim();
  if (q.includes("://")) return ownerOf(q).catch(tenantFailed);
  tenantQuery.match = q;
  $("tenant-detail").hidden = true;
  listTenants(false).catch(tenantFailed);
}

function tenantFailed(e) {
  if (e.unauthorized) return askToken(true);
  tenantNote(String(e.message || e), "blocked");
}

function askToken(refused) {
  clearTimeout(timer);
  $("token-form").hidden = false;
  $("token-error").textContent = refused && token() ? "The admin token was refused." : "";
  $("status").textContent = "the admin API wants a token";
  $("token").focus();
}

let generation = 0;
let tenantsProbed = false;
let hasRedis = false;

// One read of everything, each part shown on its own (a degraded /healthz
// must not hide the rest); then the next, unless a newer loop started.
async function refresh() {
  clearTimeout(timer);
  const gen = ++generation;
  const parts = await Promise.allSettled([
    api("/metrics").then((r) => r.text()).then(showMetrics),
    api("/healthz", [200, 503]).then((r) => r.json()).then(showHealth),
    api("/refused?limit=20").then((r) => r.json()).then(showRefused),
  ]);
  if (gen !== generation) return;
  const failed = parts.filter((p) => p.status === "rejected").map((p) => p.reason);
  if (failed.some((e) => e.unauthorized)) return askToken(true);
  if (failed.length) $("status").textContent = "cannot read the admin API: " + failed.map((e) => e.message || e).join("; ");
  else $("token-form").hidden = true;
  // a tenant store is Redis's: without it the view stays hidden, unasked
  if (!failed.length && !tenantsProbed && hasRedis) {
    tenantsProbed = true;
    probeTenants().catch(tenantFailed);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!$("token").value) {
      $("token-error").textContent = "Enter the admin token (admin.token in the config).";
      return;
    }
    sessionStorage.setItem(KEY, $("token").value);
    $("token-error").textContent = "";
    refresh();
  });
  $("explain-form").addEventListener("submit", explain);
  $("tenant-search").addEventListener("submit", searchTenants);
  $("tenant-more").addEventListener("click", () => listTenants(true).catch(tenantFailed));
  refresh();
});
