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

function rows(table, items, cells) {
  const body = $(table).tBodies[0];
  body.replaceChildren();
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
    rate = ((s.requests.total - last.total) / secs).toFixed(1);
  }
  last = { at: now, total: s.requests.total };
  const ready = s.backends.filter((b) => b.state === "ready").length;
  $("summary").replaceChildren(...[
    (s.ready ? "ready" : "NOT READY") + (s.draining ? " (draining)" : ""),
    ready + " of " + s.backends.length + " backends ready",
    s.tools + " tools exposed",
    s.requests.inFlight + " requests in flight",
    rate + " requests/s",
    s.requests.failed + " of " + s.requests.total + " requests failed",
  ].map((t) => { const e = document.createElement("span"); e.textContent = t; return e; }));
  rows("backends", s.backends, (b) => [
    [b.name], [b.type], [b.state, "state-" + b.state], [b.tools], [b.restarts],
    [b.reason || (b.lastError ? b.lastError.time + " " + b.lastError.method + ": " + b.lastError.message : "")],
  ]);
  const own = s.backends.flatMap((b) => (b.instances || []).map((i) => [b.name, i]));
  rows("instances", own.length ? own : [null], (row) => row ? [
    [row[0]], [(row[1].owner === "session" ? "session " : "2026-07-28 client ") + row[1].key],
    [row[1].busy ? "busy" : (row[1].ready ? "ready" : "starting")], [row[1].idleSeconds + " s"],
  ] : [["none"], [""], [""], [""]]);
  const sessions = Object.entries(s.sessions.byTransport).map(([k, v]) => ["transport " + k, v])
    .concat(Object.entries(s.sessions.byProfile).map(([k, v]) => [k ? "profile " + k : "whole catalogue", v]));
  rows("sessions", sessions, ([k, v]) => [[k], [v]]);
  rows("errors", s.recentErrors.slice().reverse(), (e) => [[e.time], [e.backend], [e.method], [e.message]]);
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
