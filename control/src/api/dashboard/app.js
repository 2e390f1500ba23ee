// Patronus dashboard: plain JavaScript, no build step, no third-party code.
//
// Authentication: the page asks for an API token and keeps it in
// sessionStorage (this tab only, gone when it closes; unlike a cookie it is
// never sent by the browser on its own, so there is no CSRF to defend
// against). Every call sends it as `Authorization: Bearer`. The event
// stream is read with fetch() and a stream reader instead of EventSource,
// because EventSource cannot send headers and the alternative, a token in
// the URL, would end up in logs and history. The cost: a few lines of SSE
// parsing here, and the reconnect logic is ours. If streaming fails, the
// page polls /api/v1/events?after= instead and tries the stream again later.
//
// Everything shown comes from the API and is inserted with textContent,
// never as HTML.
"use strict";

const TOKEN_KEY = "patronus.token";
const POLL_MS = 2000;
const HISTORY = 30; // samples per sparkline: one minute at POLL_MS
const MAX_EVENTS = 100;

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let pollTimer = null;
let streamAbort = null;
let lastSeq = 0;
const prev = { ports: new Map(), classes: new Map() };
const hist = { ports: new Map(), classes: new Map() };

class AuthError extends Error {}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${token}` }, options.headers || {});
  const res = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  if (res.status === 401 || res.status === 403) throw new AuthError(`${res.status}`);
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res;
}

const json = async (path) => (await api(path)).json();

// ---- formatting ----

function fmtRate(bitsPerSecond) {
  const units = ["b/s", "kb/s", "Mb/s", "Gb/s", "Tb/s"];
  let v = bitsPerSecond, i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

function fmtBytes(bytes) {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let v = bytes, i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

const ms = (v) => (v == null ? "–" : `${v.toFixed(1)} ms`);

function ago(unix) {
  if (unix == null) return "never";
  const s = Math.max(0, Date.now() / 1000 - unix);
  if (s < 120) return `${Math.round(s)} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function td(text, cls) {
  return el("td", cls ? { class: cls } : {}, text);
}

const SVG = "http://www.w3.org/2000/svg";

function spark(...series) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${HISTORY - 1} 24`);
  svg.setAttribute("preserveAspectRatio", "none");
  const max = Math.max(1, ...series.flat());
  series.forEach((values, n) => {
    const line = document.createElementNS(SVG, "polyline");
    const offset = HISTORY - values.length;
    line.setAttribute("points", values.map((v, i) => `${offset + i},${(22 - (v / max) * 20).toFixed(2)}`).join(" "));
    if (n === 1) line.setAttribute("class", "out");
    svg.append(line);
  });
  return svg;
}

function push(map, key, sample) {
  const h = map.get(key) || [];
  h.push(sample);
  if (h.length > HISTORY) h.shift();
  map.set(key, h);
  return h;
}

// ---- health ----

function pathHealth(p) {
  if (!p.up || (p.bfd && p.bfd.state !== "up")) return "bad";
  if (p.sla && Object.values(p.sla.compliant).some((ok) => !ok)) return "warn";
  return "ok";
}

function siteHealth(paths) {
  const hs = paths.map(pathHealth);
  if (hs.length === 0 || hs.every((h) => h === "bad")) return "bad";
  return hs.every((h) => h === "ok") ? "ok" : "warn";
}

// ---- rendering ----

function renderStatus(status) {
  $("#node-version").textContent = `v${status.version} · up ${Math.round(status.uptime_seconds)} s`;
  const ready = $("#node-ready");
  ready.dataset.ready = String(status.ready);
  ready.textContent = status.ready ? "ready" : "not ready";
}

function renderSites(peers, paths) {
  const cards = peers.map((peer) => {
    const own = paths.filter((p) => p.peer === peer.name);
    const dots = el("div", {}, ...own.map((p) =>
      el("span", { class: "dot", title: `path ${p.index} via ${p.port}`, "data-health": pathHealth(p), "data-path": String(p.index) })));
    return el("div", { class: "site", "data-peer": peer.name, "data-health": siteHealth(own) },
      el("h3", {}, peer.name),
      dots,
      el("div", { class: "muted" }, `handshake ${ago(peer.latest_handshake_unix)}`),
      el("div", { class: "muted" }, `rx ${fmtBytes(peer.rx_bytes)} · tx ${fmtBytes(peer.tx_bytes)}`),
      el("div", { class: "muted" }, peer.allowed_ips.join(", ")));
  });
  $("#sites").replaceChildren(...cards);
}

function renderPaths(paths) {
  const rows = paths.map((p) => {
    const s = p.sla;
    const classes = el("td", {}, ...(s ? Object.entries(s.compliant).map(([name, ok]) =>
      el("span", { class: "tag", "data-ok": String(ok), "data-class": name }, name)) : []));
    return el("tr", { "data-peer": p.peer, "data-path": String(p.index), "data-health": pathHealth(p) },
      td(p.peer), td(p.index), td(p.port), td(p.remote), td(p.up ? "up" : "down"),
      td(p.bfd ? p.bfd.state : "–"),
      td(ms(s && s.rtt_ms.p50), "num"), td(ms(s && s.rtt_ms.p95), "num"),
      td(ms(s && s.jitter_ms.forward), "num"),
      td(s ? `${s.loss_pct.round_trip.toFixed(2)} %` : "–", "num"),
      classes);
  });
  $("#paths tbody").replaceChildren(...rows);
}

function rate(map, key, now, values) {
  const before = map.get(key);
  map.set(key, { t: now, values });
  if (!before) return null;
  const dt = (now - before.t) / 1000;
  if (dt <= 0) return null;
  // A counter that went backwards (daemon restart) restarts the rate.
  return values.map((v, i) => Math.max(0, (v - before.values[i]) / dt));
}

function renderPorts(ports, now) {
  const rows = ports.map((p) => {
    const r = rate(prev.ports, p.name, now, [p.rx_bytes * 8, p.tx_bytes * 8]);
    const h = r ? push(hist.ports, p.name, r) : hist.ports.get(p.name) || [];
    return el("tr", { "data-port": p.name, "data-health": p.link_up ? "ok" : "bad" },
      td(p.name), td(p.link_up ? `up ${p.speed_mbps} Mb/s` : "down"),
      td(r ? fmtRate(r[0]) : "…", "num"), td(r ? fmtRate(r[1]) : "…", "num"),
      el("td", {}, spark(h.map((x) => x[0]), h.map((x) => x[1]))));
  });
  $("#ports tbody").replaceChildren(...rows);
}

function renderClasses(stats, now) {
  const sums = new Map();
  for (const port of stats.qos) {
    for (const c of port.classes) {
      const s = sums.get(c.class) || { bytes: 0, dropped: 0, delay: null };
      s.bytes += c.sent_bytes;
      s.dropped += c.dropped_packets;
      if (c.queue_delay_p99_us != null) s.delay = Math.max(s.delay || 0, c.queue_delay_p99_us);
      sums.set(c.class, s);
    }
  }
  const rows = [...sums].map(([name, s]) => {
    const r = rate(prev.classes, name, now, [s.bytes * 8, s.dropped]);
    const h = r ? push(hist.classes, name, r) : hist.classes.get(name) || [];
    return el("tr", { "data-class": name },
      td(name), td(r ? fmtRate(r[0]) : "…", "num"), td(r ? r[1].toFixed(1) : "…", "num"),
      td(s.delay == null ? "–" : `${(s.delay / 1000).toFixed(2)} ms`, "num"),
      el("td", {}, spark(h.map((x) => x[0]))));
  });
  $("#classes tbody").replaceChildren(...rows);
}

function renderApps(stats) {
  const rows = stats.dpi.top_apps.slice(0, 10).map((a) =>
    el("tr", { "data-app": a.app }, td(a.app), td(a.category), td(a.flows, "num"), td(fmtBytes(a.bytes), "num")));
  $("#apps tbody").replaceChildren(...rows);
}

function addEvent(e) {
  if (e.seq <= lastSeq) return;
  lastSeq = e.seq;
  const when = new Date(e.at_unix * 1000);
  const li = el("li", { "data-seq": String(e.seq), "data-kind": e.kind },
    el("time", { dateTime: when.toISOString() }, when.toLocaleTimeString()),
    el("span", { class: "kind" }, e.kind), e.message);
  const list = $("#events");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

function setConn(state) {
  const c = $("#conn");
  c.dataset.state = state;
  c.textContent = state;
}

// ---- loops ----

async function poll() {
  try {
    const [status, peers, paths, stats] = await Promise.all([
      json("/api/v1/status"), json("/api/v1/peers"), json("/api/v1/paths"), json("/api/v1/stats"),
    ]);
    const now = Date.now();
    renderStatus(status);
    renderSites(peers, paths);
    renderPaths(paths);
    renderPorts(status.ports, now);
    renderClasses(stats, now);
    renderApps(stats);
    const t = $("#last-updated");
    t.dataset.updated = String(now);
    t.dateTime = new Date(now).toISOString();
    t.textContent = new Date(now).toLocaleTimeString();
    if ($("#events-mode").dataset.mode === "poll") await pollEvents();
    if ($("#conn").dataset.state === "error") setConn($("#events-mode").dataset.mode === "stream" ? "live" : "polling");
  } catch (err) {
    if (err instanceof AuthError) return logout("The token was refused; enter another.");
    setConn("error");
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

async function pollEvents() {
  const page = await json(`/api/v1/events?after=${lastSeq}&limit=1000`);
  page.events.forEach(addEvent);
}

function setMode(mode) {
  const m = $("#events-mode");
  m.dataset.mode = mode;
  m.textContent = mode === "stream" ? "(live)" : "(polling)";
  setConn(mode === "stream" ? "live" : "polling");
}

// Server-Sent Events over fetch (WHATWG HTML §9.2 framing: fields up to a
// blank line; `data` lines joined with newlines).
async function stream() {
  streamAbort = new AbortController();
  const res = await api("/api/v1/events/stream", {
    headers: { Accept: "text/event-stream", "Last-Event-ID": String(lastSeq) },
    signal: streamAbort.signal,
  });
  if (!res.body) throw new Error("no streaming body");
  setMode("stream");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (data) addEvent(JSON.parse(data));
    }
  }
  throw new Error("stream ended");
}

async function events() {
  try {
    const page = await json("/api/v1/events?limit=50");
    page.events.forEach(addEvent);
    lastSeq = Math.max(lastSeq, page.next);
  } catch (err) {
    if (err instanceof AuthError) return;
  }
  for (;;) {
    if (!token) return;
    try {
      await stream();
    } catch (err) {
      if (err instanceof AuthError || !token) return;
      if (err.name === "AbortError") return;
      setMode("poll");
      await new Promise((r) => setTimeout(r, 10000));
    }
  }
}

function start() {
  $("#login").hidden = true;
  $("#dashboard").hidden = false;
  $("#logout").hidden = false;
  setConn("polling");
  poll();
  events();
}

function logout(message) {
  token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(pollTimer);
  if (streamAbort) streamAbort.abort();
  $("#dashboard").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  setConn("idle");
}

async function login(event) {
  event.preventDefault();
  const candidate = $("#token").value.trim();
  if (!candidate) return;
  token = candidate;
  try {
    await api("/api/v1/status");
  } catch (err) {
    token = "";
    $("#login-error").textContent = err instanceof AuthError ? "That token was refused." : `Cannot reach the API: ${err.message}`;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#token").value = "";
  start();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", () => logout());
  if (token) start();
  else logout();
});
