// The status page's only script: reads /status.json (with the token, when the gateway has
// one) every 3 seconds and fills the tables. Everything it shows is set as text, never as
// markup, since backend names and errors come from outside.
"use strict";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("mcp-gateway-token") || "";
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) {
  token = fromHash;
  sessionStorage.setItem("mcp-gateway-token", token);
  history.replaceState(null, "", location.pathname);
}
let last = null;
// Requests per second at each refresh, the latest last: three minutes of them.
const rates = [];
const CHART_POINTS = 60;

function chart() {
  const peak = Math.max(1, ...rates);
  const w = 360, h = 70, step = w / (CHART_POINTS - 1);
  const start = CHART_POINTS - rates.length;
  const y = (r) => (h - 4 - (r / peak) * (h - 8)).toFixed(1);
  const points = rates.map((r, i) => ((start + i) * step).toFixed(1) + "," + y(r));
  // A single point draws nothing: the first is a short level line.
  if (rates.length === 1) points.unshift(((start - 1) * step).toFixed(1) + "," + y(rates[0]));
  $("chart").querySelector("polyline").setAttribute("points", points.join(" "));
  $("peak").textContent = "peak " + peak.toFixed(1) + " requests/s; each point is one refresh (3 s)";
}

function kib(n) {
  if (!n) return "";
  return n >= 10240 ? (n / 1024).toFixed(0) + " MiB" : n.toFixed(0) + " KiB";
}

// A time from the gateway (RFC 3339, UTC) as this browser's local time: the time of day for
// today, else the date too; the exact value on hover.
function when(t) {
  const d = new Date(t);
  if (isNaN(d)) return t || "";
  const today = d.toDateString() === new Date().toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

// A duration in whole seconds, in the largest unit that keeps it short.
function age(s) {
  if (s < 120) return s + " s";
  if (s < 7200) return Math.floor(s / 60) + " min";
  return Math.floor(s / 3600) + " h";
}

function rows(table, items, cells) {
  const body = $(table).tBodies[0];
  body.replaceChildren();
  if (!items.length) {
    // An empty table says so.
    const td = body.insertRow().insertCell();
    td.textContent = "none";
    td.colSpan = $(table).tHead ? $(table).tHead.rows[0].cells.length : 1;
    td.className = "none";
    return;
  }
  for (const item of items) {
    const tr = body.insertRow();
    for (const [text, cls] of cells(item)) {
      const td = tr.insertCell();
      td.textContent = text == null ? "" : String(text);
      if (cls) td.className = cls;
    }
  }
}

function show(s) {
  $("version").textContent = s.version + " · instance " + s.instance;
  const now = Date.now();
  let rate = "…";
  if (last) {
    const secs = (now - last.at) / 1000;
    const r = (s.requests.total - last.total) / secs;
    rate = r.toFixed(1);
    rates.push(r);
    if (rates.length > CHART_POINTS) rates.shift();
    chart();
  }
  last = { at: now, total: s.requests.total };
  const ready = s.backends.filter((b) => b.state === "ready").length;
  const sleeping = s.backends.filter((b) => b.state === "sleeping").length;
  $("summary").replaceChildren(...[
    (s.ready ? "ready" : "NOT READY") + (s.draining ? " (draining)" : ""),
    ready + " of " + s.backends.length + " backends ready" + (sleeping ? ", " + sleeping + " sleeping" : ""),
    s.tools + " tools exposed",
    s.requests.inFlight + " requests in flight",
    rate + " requests/s",
    s.requests.failed + " of " + s.requests.total + " requests failed",
  ].map((t) => { const e = document.createElement("span"); e.textContent = t; return e; }));
  rows("backends", s.backends, (b) => [
    [b.name], [b.type], [b.state + (b.onDemand ? " (on demand)" : ""), "state-" + b.state], [b.tools],
    [b.calls], [b.p50Ms == null ? "" : b.p50Ms.toFixed(1) + " ms"],
    [b.processes ? kib(b.rssKiB) + " (" + b.processes + " process" + (b.processes > 1 ? "es" : "") + ")" : ""],
    [b.processes ? b.cpuSeconds.toFixed(1) + " s" : ""], [b.restarts],
    // Why it is not ready; for one that is, its last call's error, said as a call's.
    b.reason ? [b.reason] : b.lastError
      ? ["a call failed at " + when(b.lastError.time) + " (" + b.lastError.method + "): " + b.lastError.message, "call-error"]
      : [""],
  ]);
  const own = s.backends.flatMap((b) => (b.instances || []).map((i) => [b.name, i]));
  rows("instances", own, (row) => [
    [row[0]], [(row[1].owner === "session" ? "session " : "2026-07-28 client ") + row[1].key],
    [row[1].busy ? "busy" : (row[1].ready ? "ready" : "starting")], [row[1].idleSeconds + " s"],
  ]);
  const sessions = Object.entries(s.sessions.byTransport).map(([k, v]) => ["transport " + k, v])
    .concat(Object.entries(s.sessions.byProfile).map(([k, v]) => [k ? "profile " + k : "whole catalogue", v]));
  rows("sessions", sessions, ([k, v]) => [[k], [v]]);
  // One row per open session, newest first (2026-07-28 requests are sessions of one
  // request: counted above, not listed).
  const open = s.sessions.open;
  const total = Object.values(s.sessions.byTransport).reduce((a, b) => a + b, 0);
  $("open-note").textContent = open.length < total && open.length === s.sessions.listedAtMost
    ? "The newest " + open.length + " sessions:" : "Open sessions:";
  rows("open", open, (o) => [
    ["…" + o.id], [o.transport], [o.client || "(not initialized)"], [o.protocol],
    [o.profile || "whole catalogue"], [o.token || ""], [age(o.ageSeconds)], [o.inFlight], [o.instances || ""],
  ]);
  rows("errors", s.recentErrors.slice().reverse(), (e) => [[when(e.time)], [e.backend], [e.method], [e.message]]);
  $("names").textContent = s.tools + " tools; " + (s.notes.length ? s.notes.length + " names rewritten or contested:" : "no names rewritten.");
  const notes = $("notes");
  notes.replaceChildren(...s.notes.map((n) => { const li = document.createElement("li"); li.textContent = n; return li; }));
  document.body.dataset.loaded = "yes";
}

async function refresh() {
  try {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const r = await fetch("/status.json", { headers, cache: "no-store" });
    if (r.status === 401) {
      $("auth").style.display = "block";
      $("problem").textContent = token ? "That token was refused." : "";
      return;
    }
    if (!r.ok) throw new Error("HTTP " + r.status + ": " + (await r.text()));
    $("auth").style.display = "none";
    $("problem").textContent = "";
    show(await r.json());
  } catch (e) {
    $("problem").textContent = "The gateway is not answering: " + e.message;
  }
}

$("auth").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("mcp-gateway-token", token);
  refresh();
});
refresh();
setInterval(refresh, 3000);
