//! What the hub reports: the state of things for /readyz and /metrics (rendered by the
//! front end, `metrics.rs`), and the start-up progress and summary on the console.

use super::{Backend, Hub, Owner, PROGRESS_EVERY, State};
use crate::config::Scope;
use crate::contract::Status;
use crate::contract::{BackendStatus, Gauges, SessionId, SessionStatus};
use crate::registry::{self, BackendIx, Kind};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Instant;

impl Hub {
    pub(super) fn status(&self, full: bool) -> Status {
        let metrics = self.replies.metrics();
        let backends: Vec<BackendStatus> = self
            .live()
            .iter()
            .map(|b| {
                let reason = match &b.state {
                    State::Restarting { reason, .. } | State::Failed(reason) => {
                        Some(reason.clone())
                    }
                    _ => None,
                };
                let state = b.state.label();
                let ix = self.backends.iter().position(|x| std::ptr::eq(x, *b));
                let on_demand = ix.is_some_and(|i| self.on_demand(BackendIx(i)));
                // Its running processes: the status page adds up what they hold (off
                // this thread, and only when asked for).
                let pids = self
                    .instances
                    .values()
                    .filter(|i| Some(i.backend.0) == ix)
                    .filter_map(|i| i.conn.as_ref().and_then(|c| c.pid))
                    .collect();
                let (calls, p50) = metrics.backend_summary(&b.spec.name);
                BackendStatus {
                    name: b.spec.name.clone(),
                    transport: b.spec.transport.type_name(),
                    state,
                    required: b.spec.required,
                    reason,
                    restarts: b.restarts,
                    tools: b.lists.get(Kind::Tools).len(),
                    on_demand,
                    pids,
                    usage: None,
                    calls,
                    p50_ms: p50,
                    server: b.server.as_ref().and_then(|s| s.get("serverInfo")).cloned(),
                    instances: matches!(b.spec.scope, Scope::Session { .. })
                        .then(|| self.own_instances(&b.spec.name)),
                    last_error: None,
                }
            })
            .collect();
        drop(metrics);
        // A sleeping (or waking) on-demand backend is ready to be asked.
        let not_ready: Vec<&Backend> = self
            .live()
            .into_iter()
            .filter(|b| !matches!(b.state, State::Ready | State::Sleeping | State::Waking))
            .collect();
        let ready =
            not_ready.len() < self.live().len() && !not_ready.iter().any(|b| b.spec.required);
        let not_ready = not_ready.iter().map(|b| b.spec.name.clone()).collect();
        let mut sessions: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut profiles: BTreeMap<String, usize> = BTreeMap::new();
        for s in self.sessions.values() {
            *sessions.entry(s.transport).or_default() += 1;
            let profile = s.profile.map(|p| self.opts.profiles[p].name.clone());
            *profiles.entry(profile.unwrap_or_default()).or_default() += 1;
        }
        let mut rows: Vec<(&SessionId, &super::Session)> = self
            .sessions
            .iter()
            .filter(|(_, s)| full && s.transport != crate::contract::STATELESS)
            .collect();
        rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.opened));
        let session_rows = rows
            .into_iter()
            .take(crate::contract::SESSION_ROWS)
            .map(|(id, s)| SessionStatus {
                id: crate::ids::short(id).to_string(),
                transport: s.transport,
                client: s.client.clone(),
                protocol: s.version,
                profile: s.profile.map(|p| self.opts.profiles[p].name.clone()),
                token: s.token.as_deref().map(String::from),
                age_seconds: s.opened.elapsed().as_secs(),
                in_flight: self.pending().of_session(id).len(),
                instances: s.instances.len(),
            })
            .collect();
        // Requests held for the first start count too: they will be answered.
        let in_flight = self.pending().clients() + self.first_lists.held();
        let tools = self
            .registry
            .catalog(Kind::Tools)
            .entries()
            .iter()
            .zip(self.registry.catalog(Kind::Tools).items())
            .filter(|_| full)
            .map(|(e, item)| {
                let description = serde_json::from_str::<Value>(item.get())
                    .ok()
                    .and_then(|v| v.get("description").cloned())
                    .unwrap_or(Value::Null);
                json!({"name": e.exposed, "backend": self.backends[e.backend].spec.name,
                       "original": e.original, "description": description})
            })
            .collect();
        Status {
            ready,
            not_ready,
            settled: !self.live().iter().any(|b| b.state == State::Starting),
            in_flight,
            tools,
            backends,
            profiles,
            sessions: session_rows,
            notes: self.registry.notes.clone(),
            gauges: Gauges {
                sessions,
                in_flight,
                backends: self
                    .live()
                    .iter()
                    .map(|b| (b.spec.name.clone(), b.restarts, b.state == State::Ready))
                    .collect(),
            },
        }
    }

    /// A per-session backend's running instances: whose each is (a legacy session, or a
    /// 2026-07-28 client's token and endpoint), how long it has been idle, whether a
    /// request is in flight on it.
    fn own_instances(&self, backend: &str) -> Vec<Value> {
        let now = Instant::now();
        let mut rows: Vec<(String, Value)> = self
            .instances
            .iter()
            .filter(|(_, i)| self.backends[i.backend].spec.name == backend)
            .filter_map(|(id, i)| {
                let owner = i.owner.as_ref()?;
                let (kind, key) = match owner {
                    Owner::Session(s) => ("session", s.clone()),
                    Owner::Client(k) => ("client", k.clone()),
                };
                let row = json!({"owner": kind, "key": key, "ready": i.ready,
                                 "idleSeconds": now.duration_since(i.last_used).as_secs(),
                                 "busy": self.pending().waits_on(*id)});
                Some((key, row))
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.into_iter().map(|(_, r)| r).collect()
    }

    /// The backends in the config now, in file order.
    pub(super) fn live(&self) -> Vec<&Backend> {
        let mut live: Vec<&Backend> = self
            .backends
            .iter()
            .filter(|b| b.state != State::Removed)
            .collect();
        live.sort_by_key(|b| b.position);
        live
    }

    /// What is still starting, and for how long: on a terminal one status line rewritten
    /// in place, otherwise a plain line per backend every `PROGRESS_EVERY` seconds.
    pub(super) fn show_progress(&mut self, now: Instant) {
        let tty = crate::console::is_tty();
        let mut starting = Vec::new();
        for b in self.backends.iter_mut() {
            if b.state != State::Starting {
                continue;
            }
            let secs = now.duration_since(b.started).as_secs_f64();
            if tty {
                starting.push(format!("{} {secs:.1} s", b.spec.name));
                continue;
            }
            let interval = (secs as u64) / PROGRESS_EVERY;
            if interval > b.reported {
                b.reported = interval;
                console!(
                    "  {:<16} {:<15} starting ({} s so far)",
                    b.spec.name,
                    b.spec.transport.type_name(),
                    interval * PROGRESS_EVERY
                );
            }
        }
        if tty {
            let line = match starting.is_empty() {
                true => String::new(),
                false => format!("starting: {}", starting.join(", ")),
            };
            crate::console::status(&line);
        }
    }

    pub(super) fn maybe_print_summary(&mut self) {
        if self.summary_printed || self.live().iter().any(|b| b.state == State::Starting) {
            return;
        }
        self.summary_printed = true;
        let r = &self.registry;
        let summary = crate::console::Summary {
            backends: self
                .live()
                .iter()
                .map(|b| crate::console::SummaryRow {
                    name: &b.spec.name,
                    kind: b.spec.transport.type_name(),
                    state: b.state.label(),
                    ready: matches!(b.state, State::Ready | State::Sleeping),
                    counts: Kind::ALL.map(|k| b.lists.get(k).len()),
                    took: b.took,
                })
                .collect(),
            counts: Kind::ALL.map(|k| r.catalog(k).entries().len()),
            tools: r
                .tools()
                .iter()
                .map(|t| {
                    let backend = self.backends[t.backend].spec.name.as_str();
                    let safe = registry::is_client_safe(&t.exposed);
                    (t.exposed.as_str(), backend, t.original.as_str(), safe)
                })
                .collect(),
            notes: &r.notes,
            profiles: self.profile_counts(),
            ready_line: &self.opts.ready_line,
        };
        summary.print();
        self.release_lists(true);
    }
}
