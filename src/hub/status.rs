//! What the hub reports: the state of things for /readyz and /metrics, the start-up
//! progress and summary table on the console, and the request metrics.

use super::*;

/// Latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Request counters and latencies, by backend.
#[derive(Default)]
pub(super) struct Metrics {
    by_backend: BTreeMap<String, BackendMetrics>,
    /// Answers completed by a backend's reader itself, without the hub.
    pub(super) direct: u64,
    /// Requests routed by the thread that read them, without the hub.
    pub(super) routed: u64,
}

#[derive(Default)]
struct BackendMetrics {
    /// method → outcome → count.
    requests: BTreeMap<String, BTreeMap<&'static str, u64>>,
    latency: Histogram,
}

/// The entry for `key`, allocating its owned key only the first time (this runs per call).
fn entry_for<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("just inserted")
}

/// Writes the `# HELP` and `# TYPE` lines that open one Prometheus metric family.
pub(crate) fn metric_family(out: &mut String, name: &str, kind: &str, help: &str) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

impl Metrics {
    pub(super) fn record(
        &mut self,
        backend: &str,
        method: &str,
        outcome: &'static str,
        took: Duration,
    ) {
        let m = entry_for(&mut self.by_backend, backend);
        *entry_for(&mut m.requests, method)
            .entry(outcome)
            .or_default() += 1;
        let h = &mut m.latency;
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub(super) fn render(
        &self,
        sessions: &BTreeMap<&str, usize>,
        in_flight: usize,
        backends: &[&Backend],
    ) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        metric_family(
            &mut out,
            "mcp_gateway_requests_total",
            "counter",
            "Requests routed to backends, by outcome.",
        );
        for (backend, m) in &self.by_backend {
            for (method, outcomes) in &m.requests {
                for (outcome, n) in outcomes {
                    let _ = writeln!(
                        out,
                        "mcp_gateway_requests_total{{backend=\"{backend}\",method=\"{method}\",outcome=\"{outcome}\"}} {n}"
                    );
                }
            }
        }
        metric_family(
            &mut out,
            "mcp_gateway_request_duration_seconds",
            "histogram",
            "Time from a request reaching the hub to its answer.",
        );
        for (backend, h) in self.by_backend.iter().map(|(b, m)| (b, &m.latency)) {
            for (le, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "mcp_gateway_request_duration_seconds_bucket{{backend=\"{backend}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "mcp_gateway_request_duration_seconds_bucket{{backend=\"{backend}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "mcp_gateway_request_duration_seconds_sum{{backend=\"{backend}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "mcp_gateway_request_duration_seconds_count{{backend=\"{backend}\"}} {}",
                h.count
            );
        }
        metric_family(
            &mut out,
            "mcp_gateway_requests_in_flight",
            "gauge",
            "Requests waiting for a backend.",
        );
        let _ = writeln!(out, "mcp_gateway_requests_in_flight {in_flight}");
        metric_family(
            &mut out,
            "mcp_gateway_replies_direct_total",
            "counter",
            "Answers a backend's reader delivered to their client itself, without a hand-off to the hub.",
        );
        let _ = writeln!(out, "mcp_gateway_replies_direct_total {}", self.direct);
        metric_family(
            &mut out,
            "mcp_gateway_requests_routed_direct_total",
            "counter",
            "Requests the thread that read them routed to their backend itself, without a hand-off to the hub.",
        );
        let _ = writeln!(
            out,
            "mcp_gateway_requests_routed_direct_total {}",
            self.routed
        );
        metric_family(
            &mut out,
            "mcp_gateway_sessions",
            "gauge",
            "Client sessions, by transport.",
        );
        for transport in ["sse", "streamable-http", "stdio"] {
            let _ = writeln!(
                out,
                "mcp_gateway_sessions{{transport=\"{transport}\"}} {}",
                sessions.get(transport).copied().unwrap_or(0)
            );
        }
        metric_family(
            &mut out,
            "mcp_gateway_backend_restarts_total",
            "counter",
            "Restarts of each backend.",
        );
        for b in backends {
            let _ = writeln!(
                out,
                "mcp_gateway_backend_restarts_total{{backend=\"{}\"}} {}",
                b.spec.name, b.restarts
            );
        }
        metric_family(
            &mut out,
            "mcp_gateway_backend_ready",
            "gauge",
            "Whether each backend is ready (1) or not (0).",
        );
        for b in backends {
            let _ = writeln!(
                out,
                "mcp_gateway_backend_ready{{backend=\"{}\"}} {}",
                b.spec.name,
                u8::from(b.state == State::Ready)
            );
        }
        out
    }
}

impl Hub {
    pub(super) fn status(&self) -> Status {
        let backends: Vec<Value> = self
            .live()
            .iter()
            .map(|b| {
                let reason = match &b.state {
                    State::Restarting { reason, .. } | State::Failed(reason) => Some(reason),
                    _ => None,
                };
                let state = b.state.label();
                json!({"name": b.spec.name, "type": b.spec.transport.type_name(), "state": state,
                       "required": b.spec.required, "reason": reason, "restarts": b.restarts,
                       "tools": b.lists.get(Kind::Tools).len()})
            })
            .collect();
        let not_ready: Vec<&Backend> = self
            .live()
            .into_iter()
            .filter(|b| b.state != State::Ready)
            .collect();
        let ready =
            not_ready.len() < self.live().len() && !not_ready.iter().any(|b| b.spec.required);
        let not_ready = not_ready.iter().map(|b| b.spec.name.clone()).collect();
        let mut sessions: BTreeMap<&str, usize> = BTreeMap::new();
        for s in self.sessions.values() {
            *sessions.entry(s.transport).or_default() += 1;
        }
        let in_flight = self.pending().clients();
        let tools = self
            .registry
            .catalog(Kind::Tools)
            .entries()
            .iter()
            .zip(self.registry.catalog(Kind::Tools).items())
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
            backends: Value::Array(backends),
            metrics: self
                .replies
                .metrics()
                .render(&sessions, in_flight, &self.live()),
        }
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
        crate::console::status("");
        console!(
            "  {:<16} {:<15} {:<10} {:>5} {:>7} {:>9} {:>9} {:>9}",
            "BACKEND",
            "TYPE",
            "STATE",
            "TOOLS",
            "PROMPTS",
            "RESOURCES",
            "TEMPLATES",
            "START"
        );
        for b in self.live() {
            let state = b.state.label();
            let counts = Kind::ALL.map(|k| b.lists.get(k).len());
            let took = b.took.map_or("-".to_string(), |t| {
                format!("{:.0} ms", t.as_secs_f64() * 1000.0)
            });
            console!(
                "  {:<16} {:<15} {state:<10} {:>5} {:>7} {:>9} {:>9} {took:>9}",
                b.spec.name,
                b.spec.transport.type_name(),
                counts[0],
                counts[1],
                counts[2],
                counts[3],
            );
        }
        let ready = self
            .live()
            .iter()
            .filter(|b| b.state == State::Ready)
            .count();
        let r = &self.registry;
        console!(
            "{ready} of {} backend(s) ready, {} tool(s) exposed, {} prompt(s), {} resource(s), {} template(s):",
            self.live().len(),
            r.tools().len(),
            r.catalog(Kind::Prompts).entries().len(),
            r.catalog(Kind::Resources).entries().len(),
            r.catalog(Kind::Templates).entries().len(),
        );
        for t in r.tools() {
            let backend = &self.backends[t.backend].spec.name;
            let warning = if registry::is_client_safe(&t.exposed) {
                ""
            } else {
                "  (rejected by Claude/OpenAI clients)"
            };
            console!("  {:<40} {backend} / {}{warning}", t.exposed, t.original);
        }
        for note in &r.notes {
            console!("  note: {note}");
        }
        console!("{}", self.opts.ready_line);
        self.release_lists(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_count_by_backend_method_and_outcome_in_order() {
        let mut m = Metrics::default();
        let ms = Duration::from_millis;
        m.record("b", "tools/call", "ok", ms(3));
        m.record("a", "tools/call", "error", ms(30));
        m.record("b", "tools/call", "ok", ms(200));
        m.record("b", "prompts/get", "timeout", ms(4));
        let text = m.render(&BTreeMap::new(), 0, &[]);
        let requests: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("mcp_gateway_requests_total{"))
            .collect();
        assert_eq!(
            requests,
            [
                r#"mcp_gateway_requests_total{backend="a",method="tools/call",outcome="error"} 1"#,
                r#"mcp_gateway_requests_total{backend="b",method="prompts/get",outcome="timeout"} 1"#,
                r#"mcp_gateway_requests_total{backend="b",method="tools/call",outcome="ok"} 2"#,
            ]
        );
        for line in [
            r#"mcp_gateway_request_duration_seconds_bucket{backend="b",le="0.005"} 2"#,
            r#"mcp_gateway_request_duration_seconds_bucket{backend="b",le="0.25"} 3"#,
            r#"mcp_gateway_request_duration_seconds_count{backend="b"} 3"#,
            r#"mcp_gateway_request_duration_seconds_count{backend="a"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
