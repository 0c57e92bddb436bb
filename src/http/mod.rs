//! The HTTP front end: one listener for both client transports.
//!
//! Owns the listening socket, the tiny_http worker threads, the checks every request passes
//! (Origin, Host), and the legacy HTTP+SSE transport (`GET /sse`, `POST /messages`); the
//! Streamable HTTP transport (`/mcp`) lives in `streamable.rs`. It turns request bodies
//! into `jsonrpc::Message`s for the hub and writes what the hub sends back, flushing every
//! event. It never talks to a backend.

use crate::contract::{HubEvent, Outbound, Queue, Queued, Refused, SessionId, Sink};
use crate::jsonrpc::{self, Message};
use crate::sse;

mod legacy;
pub mod listen;
mod modern;
mod page;
pub mod server;
mod sessions;
pub mod streamable;
use crossbeam_channel::{Receiver, Sender, select};
use log::{debug, info, warn};
use server::{Request, Response};
use sessions::{Live, LiveSessions, no_room};
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;
use streamable::Streams;

/// Largest request body accepted (413 above it).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Messages queued for one client before it counts as not reading and is dropped.
pub const SESSION_QUEUE: usize = 1024;
/// Stack of a stream writer thread: it only formats and writes events.
pub const WRITER_STACK: usize = 64 * 1024;
/// Bytes of answers to POSTs (both eras) being written to clients at once, over all
/// connections: an answer that would go past it while others hold some is replaced by a
/// short JSON-RPC error, so clients that ask for large results and do not read them
/// cannot fill the gateway's memory (one answer alone always fits).
pub const ANSWER_MEMORY: usize = 4 * MAX_BODY;

pub struct Options {
    pub keepalive: Duration,
    /// Origins allowed besides loopback ones (`*` allows any).
    pub allowed_origins: Vec<String>,
    /// Listening on a loopback address: then the Host header must name one.
    pub loopback: bool,
    /// A Streamable HTTP session with no request for this long is ended.
    pub session_idle: Duration,
    /// A session with no request but `initialize` this long after it opened is ended.
    pub session_unused: Duration,
    /// Every request must carry `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    /// Sessions (of both transports) beyond this get 503.
    pub max_sessions: usize,
    /// This instance's tag, the start of every session id it mints (`--instance-id`), so a
    /// load balancer can send a session's requests to the instance that holds it.
    pub instance: String,
    /// Proxies whose `X-Forwarded-For`/`-Proto` are believed (`--trusted-proxy`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The profiles' names, in config order: `/p/NAME/...` serves the one named.
    pub profiles: Vec<String>,
    /// Client tokens: each opens only the profiles it names.
    pub clients: Vec<ClientToken>,
}

/// A client token (`gateway.tokens`), resolved: its label (for logs and the audit), the
/// secret, and the profiles (by place) it opens.
pub struct ClientToken {
    pub label: Arc<str>,
    pub token: String,
    pub profiles: Vec<usize>,
}

pub struct Frontend {
    server: server::Server,
    stopping: Arc<AtomicBool>,
    writers: Writers,
    shared: Arc<Shared>,
}

/// Counts the threads writing to clients, so shutdown can let them finish.
#[derive(Clone, Default)]
pub struct Writers(Arc<std::sync::atomic::AtomicUsize>);

/// Held by a writer thread while it runs.
pub struct Writing(Writers);

impl Writers {
    pub fn enter(&self) -> Writing {
        self.0.fetch_add(1, Ordering::SeqCst);
        Writing(self.clone())
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// State shared by the worker threads and stream writers.
pub struct Shared {
    pub hub: Sender<HubEvent>,
    /// Routes the common `tools/call` on the connection's own thread (`hub::Router`).
    pub router: crate::hub::Router,
    pub writers: Writers,
    /// Bytes of request bodies read and of messages written to clients.
    pub bytes_in: std::sync::atomic::AtomicU64,
    pub bytes_out: std::sync::atomic::AtomicU64,
    /// Legacy sessions whose stream is open, so a POST for any other gets 404 at once.
    live: LiveSessions,
    pub streams: Streams,
    /// What 2026-07-28 requests are served with (`crate::stateless::serve`).
    modern: crate::stateless::Ends,
    pub opts: Options,
    /// Set when a drain begins: no new sessions or requests, and /readyz says 503.
    pub draining: AtomicBool,
    /// Requests let in (`admit`) and not yet handed to the hub.
    entering: AtomicUsize,
    /// New sessions (503) and new requests in open sessions (404) refused by a drain.
    refused_sessions: AtomicUsize,
    refused_requests: AtomicUsize,
    /// The HTTP layer's connection counters, for the metrics.
    pub connections: Arc<server::Counters>,
    /// What the answers being written hold (`ANSWER_MEMORY`).
    pub answers: crate::contract::sink::Budget,
}

/// A request let in before any drain began, on its way to the hub; dropped once it is
/// there (or refused), so a drain can tell when every such request is in the hub's count.
pub struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// Lets a new JSON-RPC request in, unless a drain has begun. Hold the guard until the
    /// request has been sent to the hub.
    pub fn admit(&self) -> Option<Admitted<'_>> {
        self.entering.fetch_add(1, Ordering::SeqCst);
        if self.draining.load(Ordering::SeqCst) {
            self.entering.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Admitted(&self.entering))
    }
}

impl Frontend {
    /// Serves the listener (`server::Listener::bind`) with these limits: a thread per
    /// connection, each answering its own requests.
    pub fn start(
        listener: server::Listener,
        limits: server::Limits,
        hub: Sender<HubEvent>,
        router: crate::hub::Router,
        opts: Options,
    ) -> io::Result<Frontend> {
        let stopping = Arc::new(AtomicBool::new(false));
        let modern = crate::stateless::Ends {
            hub: hub.clone(),
            router: router.clone(),
            instance: opts.instance.clone(),
            keepalive: opts.keepalive,
            parked: Arc::default(),
            tasks: Arc::default(),
            access: Default::default(),
        };
        let shared = Arc::new(Shared {
            hub,
            router,
            writers: Writers::default(),
            bytes_in: Default::default(),
            bytes_out: Default::default(),
            live: Arc::default(),
            streams: Streams::default(),
            modern,
            opts,
            draining: AtomicBool::new(false),
            entering: AtomicUsize::new(0),
            refused_sessions: AtomicUsize::new(0),
            refused_requests: AtomicUsize::new(0),
            connections: Arc::default(),
            answers: crate::contract::sink::Budget::new(ANSWER_MEMORY),
        });
        let handler = {
            let shared = shared.clone();
            Arc::new(move |rq: Request<'_>| handle(&shared, rq))
        };
        let server = server::serve(listener, limits, handler, shared.connections.clone())?;
        let (shared2, stopping2) = (shared.clone(), stopping.clone());
        thread::Builder::new()
            .name("http-reaper".into())
            .stack_size(WRITER_STACK)
            .spawn(move || {
                let every = (shared2.opts.session_idle.min(shared2.opts.session_unused) / 4)
                    .clamp(Duration::from_millis(250), Duration::from_secs(30));
                while !stopping2.load(Ordering::SeqCst) {
                    thread::sleep(every);
                    streamable::reap_idle(&shared2);
                    sessions::reap_unused(&shared2);
                }
            })?;
        let writers = shared.writers.clone();
        Ok(Frontend {
            server,
            stopping,
            writers,
            shared,
        })
    }

    /// Starts a drain: new sessions get 503 and /readyz turns 503 (so a balancer sends new
    /// clients elsewhere); new requests in existing sessions get 404 (so their clients start
    /// a session elsewhere), while responses and notifications, which may be what a call in
    /// flight waits for, still go through. Returns once every request let in before is in
    /// the hub's in-flight count.
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.shared.entering.load(Ordering::SeqCst) > 0
            && std::time::Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// How many new sessions and new requests in open sessions the drain refused.
    pub fn refused_while_draining(&self) -> (usize, usize) {
        (
            self.shared.refused_sessions.load(Ordering::Relaxed),
            self.shared.refused_requests.load(Ordering::Relaxed),
        )
    }

    /// Stops taking requests; open streams end when the hub drops their sessions. Returns
    /// what is still under way, to wait for once the hub has answered everything.
    pub fn stop(self) -> Finishing {
        self.stopping.store(true, Ordering::SeqCst);
        self.server.stop();
        Finishing {
            writers: self.writers,
            connections: self.shared.connections.clone(),
        }
    }
}

/// What a stopped front end still has under way: answers and streams being written,
/// requests being answered (refusals included).
pub struct Finishing {
    writers: Writers,
    connections: Arc<server::Counters>,
}

impl Finishing {
    /// Waits, at most `limit`, until nothing is being written or answered.
    pub fn wait(&self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        let busy = || {
            self.writers.0.load(Ordering::SeqCst) > 0
                || self.connections.busy.load(Ordering::SeqCst) > 0
        };
        while busy() && std::time::Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Who sent a request, for the log: the peer address, or — when the peer is a trusted
/// proxy — the client it names in `X-Forwarded-For` (the last address it added), with the
/// scheme from `X-Forwarded-Proto`, and the proxy.
pub fn client_of(rq: &Request<'_>, opts: &Options) -> String {
    let peer = rq.remote_addr().to_string();
    if !from_trusted_proxy(rq, opts) {
        return peer;
    }
    let Some(client) = rq
        .header("X-Forwarded-For")
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .filter(|c| !c.is_empty())
    else {
        return peer;
    };
    match rq.header("X-Forwarded-Proto") {
        Some(proto) => format!("{client} ({} via {peer})", proto.trim()),
        None => format!("{client} (via {peer})"),
    }
}

fn from_trusted_proxy(rq: &Request<'_>, opts: &Options) -> bool {
    opts.trusted_proxies.contains(&rq.remote_addr().ip())
}

/// The path a trusted proxy serves the gateway under (`X-Forwarded-Prefix: /gw`), to put
/// before the endpoint the legacy transport announces; empty from anyone else, or when
/// the value is not a plain path.
fn forwarded_prefix(rq: &Request<'_>, opts: &Options) -> String {
    let Some(prefix) = rq
        .header("X-Forwarded-Prefix")
        .filter(|_| from_trusted_proxy(rq, opts))
    else {
        return String::new();
    };
    let prefix = prefix.trim().trim_end_matches('/');
    if prefix.is_empty() {
        return String::new();
    }
    let plain = prefix.starts_with('/')
        && prefix.len() <= 256
        && !prefix.contains("//")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b));
    if !plain {
        debug!("http: ignored X-Forwarded-Prefix '{prefix}': not a plain path");
        return String::new();
    }
    prefix.to_string()
}

fn handle(shared: &Arc<Shared>, rq: Request<'_>) {
    // Counted until answered (a stream's writer counts itself), so a stopping gateway
    // waits for what it is answering.
    let _answering = shared.writers.enter();
    let url = rq.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    debug!("http: {} {path}", rq.method());
    if let Err(refusal) = check_origin_and_host(&rq, &shared.opts) {
        warn!(
            "http: refused {} {path} from {}: {refusal}",
            rq.method(),
            client_of(&rq, &shared.opts)
        );
        return rq.respond(Response::text(403, &refusal));
    }
    if path == "/healthz" {
        return rq.respond(Response::text(200, "ok"));
    }
    // The status page itself holds no data: its data (`/status.json`) needs the token.
    if rq.method() == "GET" && matches!(path, "/" | "/status.js") {
        return page::asset(rq, path);
    }
    // Who asks: the gateway's token (or, with no token at all, anyone) opens everything; a
    // client token opens the profiles it names.
    let opts = &shared.opts;
    let header = rq.header("Authorization");
    let admin = match &opts.token {
        Some(token) => bearer_matches(header, token),
        None => opts.clients.is_empty(),
    };
    let client = (!admin)
        .then(|| {
            opts.clients
                .iter()
                .find(|c| bearer_matches(header, &c.token))
        })
        .flatten();
    let authorized = admin || client.is_some();
    // Probes (Kubernetes, HAProxy) get the verdict without the token; only the details need it.
    if path == "/readyz" && rq.method() == "GET" {
        return status(shared, rq, path, admin);
    }
    if !authorized {
        warn!(
            "http: refused {} {path} from {}: missing or wrong bearer token",
            rq.method(),
            client_of(&rq, &shared.opts)
        );
        let response = Response::text(401, "this gateway needs 'Authorization: Bearer <token>'")
            .with_header("WWW-Authenticate", "Bearer realm=\"mcp-gateway\"");
        // No connection stays open for a client without a token: the connection cap is
        // kept for those with one (see `server::Fresh`).
        let mut rq = rq;
        rq.close_after();
        return rq.respond(response);
    }
    // A profile's endpoints: `/p/NAME/mcp`, `/p/NAME/sse` (its legacy POSTs go to
    // `/messages`, where the session says which profile it has).
    let (profile, path) = match path.strip_prefix("/p/") {
        None => (None, path),
        Some(rest) => {
            let name = rest.split('/').next().unwrap_or_default();
            let Some(p) = shared.opts.profiles.iter().position(|n| n == name) else {
                // A client token hears only of the profiles it opens; the gateway's own
                // token (or none) of them all.
                let known: Vec<&str> = match client {
                    Some(c) => c
                        .profiles
                        .iter()
                        .map(|&p| shared.opts.profiles[p].as_str())
                        .collect(),
                    None => shared.opts.profiles.iter().map(String::as_str).collect(),
                };
                let why = format!(
                    "not found: no profile is named '{name}' (profiles: {})",
                    known.join(", ")
                );
                return rq.respond(Response::text(404, &why));
            };
            (Some(p), &path[3 + name.len()..])
        }
    };
    if let Some(c) = client
        && !profile.is_some_and(|p| c.profiles.contains(&p))
        && !matches!(path, "/messages" | "/messages/")
    {
        let what = match profile {
            Some(p) => format!("the profile '{}'", opts.profiles[p]),
            None => format!("{path}, which is not a profile's endpoint"),
        };
        let mine: Vec<&str> = c
            .profiles
            .iter()
            .map(|&p| opts.profiles[p].as_str())
            .collect();
        warn!(
            "http: refused {} {path} from {}: the token '{}' is not for {what}",
            rq.method(),
            client_of(&rq, opts),
            c.label
        );
        let why = format!(
            "forbidden: the token '{}' opens the profiles {} (at /p/NAME/mcp and /p/NAME/sse), not {what}",
            c.label,
            mine.join(", ")
        );
        return rq.respond(Response::text(403, &why));
    }
    let access = crate::contract::Access {
        profile,
        token: client.map(|c| c.label.clone()),
    };
    match (rq.method(), path) {
        ("GET", "/sse") => legacy::open_stream(shared, rq, access),
        ("POST", "/messages" | "/messages/") => legacy::post_message(shared, rq, query, access),
        (_, "/sse") => {
            rq.respond(Response::text(405, "use GET on /sse").with_header("Allow", "GET"))
        }
        (_, "/messages" | "/messages/") => {
            rq.respond(Response::text(405, "use POST on /messages").with_header("Allow", "POST"))
        }
        (_, "/mcp" | "/mcp/") => streamable::handle(shared, rq, access),
        // The whole gateway's state: at the root only, and only to the gateway's own token
        // (or, with no token at all, to anyone), never to a client token.
        ("GET", "/metrics" | "/status.json") if profile.is_some() || !admin => {
            let why = if profile.is_some() {
                format!("not found: {path} is served at the root only (not under /p/NAME/)")
            } else {
                format!("forbidden: {path} needs the gateway's own token, not a client token")
            };
            let code = if profile.is_some() { 404 } else { 403 };
            rq.respond(Response::text(code, &why))
        }
        ("GET", "/metrics") => status(shared, rq, path, true),
        ("GET", "/status.json") => page::data(shared, rq),
        _ => rq.respond(Response::text(
            404,
            "not found: the MCP endpoints are /mcp (Streamable HTTP) and /sse (HTTP+SSE)",
        )),
    }
}

/// What the hub says of itself now (None when it does not answer within 5 s).
fn hub_status(shared: &Shared, full: bool) -> Option<crate::contract::Status> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    shared
        .hub
        .send(HubEvent::Status { reply: tx, full })
        .ok()
        .and_then(|_| rx.recv_timeout(Duration::from_secs(5)).ok())
}

/// `/readyz` (200 when a backend is ready, every `required` one is, and no drain has
/// begun, else 503; with `details`, which are not ready and each backend's state as JSON) and `/metrics` (Prometheus text).
fn status(shared: &Arc<Shared>, rq: Request<'_>, path: &str, details: bool) {
    let Some(status) = hub_status(shared, false) else {
        return rq.respond(Response::text(503, "the gateway is not answering"));
    };
    if path == "/readyz" {
        let draining = shared.draining.load(Ordering::SeqCst);
        let ready = status.ready && !draining;
        let body = if details {
            serde_json::json!({"ready": ready, "draining": draining,
                               "not_ready": status.not_ready, "backends": status.backends})
        } else {
            serde_json::json!({"ready": ready, "draining": draining})
        }
        .to_string();
        let code = if ready { 200 } else { 503 };
        return rq.respond(Response::json(code, body));
    }
    let mut body = shared
        .router
        .metrics()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .render(&status.gauges);
    use std::fmt::Write as _;
    crate::metrics::family(
        &mut body,
        "mcp_gateway_client_bytes_total",
        "counter",
        "Bytes from and to clients (bodies and messages).",
    );
    let _ = writeln!(
        body,
        "mcp_gateway_client_bytes_total{{direction=\"in\"}} {}",
        shared.bytes_in.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        body,
        "mcp_gateway_client_bytes_total{{direction=\"out\"}} {}",
        shared.bytes_out.load(Ordering::Relaxed)
    );
    let c = &shared.connections;
    crate::metrics::family(
        &mut body,
        "mcp_gateway_http_connections",
        "gauge",
        "Client connections open now.",
    );
    let _ = writeln!(
        body,
        "mcp_gateway_http_connections {}",
        c.open.load(Ordering::Relaxed)
    );
    crate::metrics::family(
        &mut body,
        "mcp_gateway_http_connections_total",
        "counter",
        "Client connections accepted, refused (over the cap or out of descriptors), and closed by a head, body or idle timeout.",
    );
    for (outcome, n) in [
        ("accepted", &c.accepted),
        ("refused", &c.refused),
        ("timed_out", &c.timed_out),
    ] {
        let _ = writeln!(
            body,
            "mcp_gateway_http_connections_total{{outcome=\"{outcome}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    #[cfg(feature = "count-allocs")]
    {
        let (count, bytes) = crate::allocs::counted();
        crate::metrics::family(
            &mut body,
            "mcp_gateway_allocations_total",
            "counter",
            "Allocations and reallocations (a build with count-allocs only).",
        );
        let _ = writeln!(body, "mcp_gateway_allocations_total {count}");
        crate::metrics::family(
            &mut body,
            "mcp_gateway_allocated_bytes_total",
            "counter",
            "Bytes allocated (a build with count-allocs only).",
        );
        let _ = writeln!(body, "mcp_gateway_allocated_bytes_total {bytes}");
    }
    rq.respond(Response::new(200, "text/plain; version=0.0.4", body));
}

/// Whether an Authorization header carries the token, compared in constant time.
fn bearer_matches(authorization: Option<&str>, token: &str) -> bool {
    let Some(given) = authorization.and_then(|a| {
        let (scheme, rest) = a.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
    }) else {
        return false;
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    // Every byte is compared whatever the earlier ones were; only the length leaks.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The 503 for a new session during a drain (counted for the drain's last console line).
pub fn draining_refusal(shared: &Shared) -> Response {
    shared.refused_sessions.fetch_add(1, Ordering::Relaxed);
    Response::text(
        503,
        "this gateway is draining; connect again (to another instance)",
    )
    .with_header("Retry-After", "1")
}

/// DNS-rebinding protection: a present Origin must be a loopback one or configured, and on
/// a loopback listener the Host must name a loopback address.
fn check_origin_and_host(rq: &Request<'_>, opts: &Options) -> Result<(), String> {
    if let Some(origin) = rq.header("Origin") {
        let allowed = opts.allowed_origins.iter().any(|o| o == "*" || o == origin)
            || origin_host(origin).is_some_and(is_loopback_name);
        if !allowed {
            return Err(format!(
                "Origin '{origin}' is not allowed (loopback origins are; add others with --allow-origin)"
            ));
        }
    }
    if opts.loopback
        && let Some(host) = rq.header("Host")
        && !is_loopback_name(strip_port(host))
    {
        return Err(format!(
            "Host '{host}' is not a loopback name: this gateway listens on a loopback address"
        ));
    }
    Ok(())
}

/// The host of an origin (`scheme://host[:port]`), without the port.
fn origin_host(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    Some(strip_port(rest.trim_end_matches('/')))
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let ends_in = |suffix: &str| {
        host.len() >= suffix.len()
            && host.as_bytes()[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    host.eq_ignore_ascii_case("localhost")
        || ends_in(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A message for a client as the JSON it is written as, charged to the answers' budget
/// until the charge is dropped (once written). Over the budget, an answer becomes a short
/// JSON-RPC error saying so, and anything else is dropped (None).
pub fn charged(shared: &Shared, msg: Message) -> Option<(String, crate::contract::sink::Charge)> {
    let json = msg.to_json();
    let id = match &msg {
        Message::Response(r) => Some(r.id.clone()),
        _ => None,
    };
    drop(msg);
    if let Some(charge) = shared.answers.charge(json.len()) {
        shared
            .bytes_out
            .fetch_add(json.len() as u64, Ordering::Relaxed);
        return Some((json, charge));
    }
    warn!(
        "http: an answer of {} bytes was not sent: answers of {ANSWER_MEMORY} bytes are waiting for clients that are slow to read them",
        json.len()
    );
    let error = jsonrpc::Response::error(
        id?,
        jsonrpc::INTERNAL_ERROR,
        format!(
            "the answer ({} bytes) was not sent: the gateway is holding {ANSWER_MEMORY} bytes of answers for clients slow to read them; try again",
            json.len()
        ),
    );
    let json = Message::Response(error).to_json();
    let charge = shared.answers.charge_anyway(json.len());
    Some((json, charge))
}

/// The head of a chunked SSE response, with extra header lines (each ending in CRLF).
pub fn sse_head(extra: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\n\
         Content-Type: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\
         X-Accel-Buffering: no\r\n\
         Transfer-Encoding: chunked\r\n\
         Connection: close\r\n\
         {extra}\r\n"
    )
}

pub fn send(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes)?;
    w.flush()
}

/// A 400 whose body is the JSON-RPC error for a message that could not be parsed.
pub fn parse_error_response(e: jsonrpc::ParseError) -> Response {
    let body = Message::Response(e.into_response()).to_json();
    Response::json(400, body)
}

/// A client's message, refused (with the JSON-RPC error to answer) when it is not UTF-8, not
/// a JSON-RPC message, or holds what no backend should be sent (`jsonrpc::check_payload`).
pub fn parse_body(body: &[u8]) -> Result<Message, jsonrpc::ParseError> {
    let text = std::str::from_utf8(body).map_err(|e| jsonrpc::ParseError {
        code: jsonrpc::PARSE_ERROR,
        message: format!("parse error: body is not UTF-8: {e}"),
        id: None,
    })?;
    let msg = Message::parse(text)?;
    jsonrpc::check_payload(text).map_err(|(code, message)| jsonrpc::ParseError {
        code,
        message,
        id: match &msg {
            Message::Request(r) => Some(r.id.clone()),
            Message::Response(r) => r.id.clone(),
            Message::Notification(_) => None,
        },
    })?;
    Ok(msg)
}

/// The 404 for a new request in a session of a draining gateway: the session takes no new
/// work, so the client starts another (which the balancer sends to another instance).
/// Counted for the drain's last console line.
pub fn draining_session(shared: &Shared, session: &str, start_again: &str) -> Response {
    shared.refused_requests.fetch_add(1, Ordering::Relaxed);
    Response::text(
        404,
        &format!(
            "session '{session}' takes no new requests: this gateway is draining; {start_again}"
        ),
    )
}

pub use crate::ids::{new_secret, new_session_id, short};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(bearer_matches(Some("bearer  s3cret "), "s3cret"));
        for bad in [
            None,
            Some("s3cret"),
            Some("Bearer s3cre"),
            Some("Bearer s3cretX"),
            Some("Basic s3cret"),
            Some("Bearer "),
        ] {
            assert!(!bearer_matches(bad, "s3cret"), "{bad:?}");
        }
    }

    #[test]
    fn loopback_names_and_origins() {
        for ok in [
            "localhost",
            "127.0.0.1",
            "::1",
            "127.1.2.3",
            "app.localhost",
            "LOCALHOST.",
        ] {
            assert!(is_loopback_name(ok), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "10.0.0.1",
            "localhost.evil.com",
            "0.0.0.0",
            "",
        ] {
            assert!(!is_loopback_name(bad), "{bad}");
        }
        assert_eq!(strip_port("localhost:9000"), "localhost");
        assert_eq!(strip_port("[::1]:9000"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
        assert_eq!(origin_host("http://127.0.0.1:3000"), Some("127.0.0.1"));
        assert_eq!(origin_host("https://evil.com"), Some("evil.com"));
        assert_eq!(origin_host("null"), None);
    }
}
