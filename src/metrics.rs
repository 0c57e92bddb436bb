//! The request metrics and their Prometheus text. Counted under a lock by whoever
//! completes a request (a backend's reader, a router or the hub); rendered on the thread
//! that serves `/metrics`, with the gauges the hub reports (`Status`).

use crate::contract::Gauges;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// Recent errors kept for the status page.
const RECENT_ERRORS: usize = 20;

/// A request that ended in an error, for the status page.
#[derive(Clone, serde::Serialize)]
pub struct ErrorSeen {
    pub time: String,
    pub backend: String,
    pub method: String,
    pub message: String,
}

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
pub struct Metrics {
    by_backend: BTreeMap<String, BackendMetrics>,
    /// Answers completed by a backend's reader itself, without the hub.
    pub direct: u64,
    /// Requests routed by the thread that read them, without the hub.
    pub routed: u64,
    /// The last errors, newest last.
    pub recent: VecDeque<ErrorSeen>,
    /// Requests completed, and how many of them failed.
    pub total: u64,
    pub failed: u64,
}

#[derive(Default)]
struct BackendMetrics {
    /// method → outcome → count.
    requests: BTreeMap<String, BTreeMap<&'static str, u64>>,
    latency: Histogram,
    /// The latest requests' times, in microseconds, for the status page's median.
    recent: VecDeque<u32>,
}

/// Requests' times kept per backend for its median.
const RECENT_TIMES: usize = 256;

/// The entry for `key`, allocating its owned key only the first time (this runs per call).
fn entry_for<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("just inserted")
}

/// Writes the `# HELP` and `# TYPE` lines that open one Prometheus metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

impl Metrics {
    /// A request that failed, for the status page (its count is `record`'s).
    pub fn error(&mut self, backend: &str, method: &str, message: &str) {
        if self.recent.len() >= RECENT_ERRORS {
            self.recent.pop_front();
        }
        self.recent.push_back(ErrorSeen {
            time: crate::audit::now(),
            backend: backend.to_string(),
            method: method.to_string(),
            message: message.chars().take(300).collect(),
        });
    }

    /// A request the gateway refused itself (an unknown tool, a resource no backend has):
    /// counted as a failed request and listed among the recent errors, under "gateway".
    pub fn refused(&mut self, method: &str, message: &str) {
        self.total += 1;
        self.failed += 1;
        self.error("gateway", method, message);
    }

    /// The last error of `backend`, if one is among the recent.
    pub fn last_error(&self, backend: &str) -> Option<&ErrorSeen> {
        self.recent.iter().rev().find(|e| e.backend == backend)
    }

    pub fn record(&mut self, backend: &str, method: &str, outcome: &'static str, took: Duration) {
        self.total += 1;
        self.failed += u64::from(outcome != "ok");
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
        if m.recent.len() >= RECENT_TIMES {
            m.recent.pop_front();
        }
        m.recent
            .push_back(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
    }

    /// A backend's requests so far, and the median time of its latest ones (ms).
    pub fn backend_summary(&self, backend: &str) -> (u64, Option<f64>) {
        let Some(m) = self.by_backend.get(backend) else {
            return (0, None);
        };
        let mut times: Vec<u32> = m.recent.iter().copied().collect();
        times.sort_unstable();
        let median = times.get(times.len() / 2).map(|us| f64::from(*us) / 1000.0);
        (m.latency.count, median)
    }

    /// The gateway's part of the Prometheus text: these counters and `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        family(
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
        family(
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
        family(
            &mut out,
            "mcp_gateway_requests_in_flight",
            "gauge",
            "Requests waiting for a backend.",
        );
        let _ = writeln!(out, "mcp_gateway_requests_in_flight {}", gauges.in_flight);
        family(
            &mut out,
            "mcp_gateway_replies_direct_total",
            "counter",
            "Answers a backend's reader delivered to their client itself, without a hand-off to the hub.",
        );
        let _ = writeln!(out, "mcp_gateway_replies_direct_total {}", self.direct);
        family(
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
        family(
            &mut out,
            "mcp_gateway_sessions",
            "gauge",
            "Client sessions, by transport.",
        );
        for transport in [
            "sse",
            "streamable-http",
            "stdio",
            crate::contract::STATELESS,
        ] {
            let _ = writeln!(
                out,
                "mcp_gateway_sessions{{transport=\"{transport}\"}} {}",
                gauges.sessions.get(transport).copied().unwrap_or(0)
            );
        }
        family(
            &mut out,
            "mcp_gateway_backend_restarts_total",
            "counter",
            "Restarts of each backend.",
        );
        for (name, restarts, _) in &gauges.backends {
            let _ = writeln!(
                out,
                "mcp_gateway_backend_restarts_total{{backend=\"{name}\"}} {restarts}"
            );
        }
        family(
            &mut out,
            "mcp_gateway_backend_ready",
            "gauge",
            "Whether each backend is ready (1) or not (0).",
        );
        for (name, _, ready) in &gauges.backends {
            let _ = writeln!(
                out,
                "mcp_gateway_backend_ready{{backend=\"{name}\"}} {}",
                u8::from(*ready)
            );
        }
        out
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
        let text = m.render(&Gauges::default());
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
