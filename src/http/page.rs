//! The status page: `/` (HTML) and `/status.js`, which hold no data and are served to
//! anyone the Origin and Host checks let in, and `/status.json`, the data, which needs
//! the gateway's own token like `/metrics`. The page polls the data every 3 seconds; it
//! needs no network beyond the gateway and no framework.

use super::server::{Request, Response};
use super::{Shared, hub_status};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;

const HTML: &str = include_str!("page/status.html");
const SCRIPT: &str = include_str!("page/status.js");
/// The page runs only its own script and talks only to its own origin.
const POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `/` and `/status.js`.
pub(super) fn asset(rq: Request<'_>, path: &str) {
    let (kind, body) = if path == "/" {
        ("text/html; charset=utf-8", HTML)
    } else {
        ("text/javascript; charset=utf-8", SCRIPT)
    };
    let response = Response::new(200, kind, body)
        .with_header("Content-Security-Policy", POLICY)
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Cache-Control", "no-cache");
    rq.respond(response);
}

/// `/status.json`: the backends with their state, restarts, tool counts and last error;
/// sessions by transport and by profile, and the newest ones each with its client,
/// protocol, profile, token label, age and requests in flight; request totals (the page makes a rate of them)
/// and the recent errors; the exposed names' rewrites.
pub(super) fn data(shared: &Arc<Shared>, rq: Request<'_>) {
    let Some(status) = hub_status(shared, true) else {
        return rq.respond(Response::text(503, "the gateway is not answering"));
    };
    let counters = shared.router.metrics();
    let metrics = counters.lock().unwrap_or_else(|p| p.into_inner());
    let trees = crate::procfs::trees();
    let mut backends = status.backends;
    for b in &mut backends {
        b.last_error = metrics.last_error(&b.name).map(|e| json!(e));
        let mut usage = crate::procfs::Usage::default();
        for pid in &b.pids {
            usage.add(trees.get(pid).copied().unwrap_or_default());
        }
        usage.cpu_seconds = (usage.cpu_seconds * 100.0).round() / 100.0;
        b.usage = Some(usage);
    }
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "instance": shared.opts.instance,
        "ready": status.ready,
        "draining": shared.draining.load(Ordering::SeqCst),
        "backends": backends,
        "sessions": {"byTransport": status.gauges.sessions, "byProfile": status.profiles,
                     "open": status.sessions, "listedAtMost": crate::contract::SESSION_ROWS},
        "requests": {"total": metrics.total, "failed": metrics.failed, "inFlight": status.in_flight},
        "recentErrors": metrics.recent,
        "tools": status.tools.len(),
        "notes": status.notes,
    });
    drop(metrics);
    rq.respond(Response::json(200, body.to_string()).with_header("Cache-Control", "no-store"));
}
