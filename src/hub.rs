//! The hub: the one thread that owns the routing state.
//!
//! It owns the session table, the pending-request table, the backends and their running
//! instances, the subscription table and the registry. Frontends and backends only send it
//! `HubEvent`s. It answers what the gateway owns (`initialize`, `ping`, the aggregated
//! lists, `logging/setLevel`) and routes the rest, replacing every request id and progress
//! token with a gateway-unique one and restoring it on the way back. It never reads a
//! socket or a pipe, and parses no more of a message than the fields it routes on.

mod first_lists;
pub mod sink;
mod unreadable;

pub use sink::{Budget, Charge, Outbound, Queue, Queued, Refused, Sink};

use crate::backend::{self, BackendHandle};
use crate::compat;
use crate::config::{BackendSpec, Scope};
use crate::jsonrpc::{
    self, ErrorObject, INTERNAL_ERROR, INVALID_PARAMS, Id, METHOD_NOT_FOUND, Message, Notification,
    Request, Response,
};
use crate::registry::{self, BackendLists, Kind, Lists, Registry};
use crossbeam_channel::{Receiver, Sender, select};
use log::{debug, info, warn};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Protocol versions the gateway speaks to clients, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Most pages the gateway follows when listing one backend.
const MAX_PAGES: usize = 1000;
/// Log levels from least to most severe (`logging/setLevel`, `notifications/message`).
const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];
/// Resource-not-found, as the legacy versions define it.
const RESOURCE_NOT_FOUND: i64 = -32002;

pub type SessionId = String;
/// A running copy of a backend; never reused, so late events of a stopped one are ignored.
pub type InstanceId = u64;

/// Everything that happens, as the hub hears of it.
pub enum HubEvent {
    /// A client session started; its messages go to `sink`.
    ClientOpened {
        session: SessionId,
        sink: Box<dyn Sink>,
        /// `sse`, `streamable-http` or `stdio`, for the metrics.
        transport: &'static str,
    },
    FromClient {
        session: SessionId,
        msg: Message,
    },
    /// The client's stream ended (it closed or could not be written).
    ClientGone {
        session: SessionId,
    },
    FromBackend {
        instance: InstanceId,
        msg: Message,
    },
    /// `/readyz` and `/metrics` ask for the state of things.
    Status {
        reply: Sender<Status>,
    },
    /// The config file changed: these are the enabled backends now, in file order.
    Reload {
        backends: Vec<BackendSpec>,
    },
    /// The instance's process or connection ended by itself; `reason` says how.
    BackendExited {
        instance: InstanceId,
        reason: String,
    },
    Shutdown,
}

/// What `/readyz` and `/metrics` show.
pub struct Status {
    /// At least one backend is ready, and every `required` one is.
    pub ready: bool,
    /// The backends that are not ready (required or not), in file order.
    pub not_ready: Vec<String>,
    /// No backend is still starting.
    pub settled: bool,
    /// Client requests waiting for a backend's answer.
    pub in_flight: usize,
    /// The exposed tools: name, backend, original name, description.
    pub tools: Vec<Value>,
    pub backends: Value,
    /// The hub's part of the Prometheus text.
    pub metrics: String,
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
struct Metrics {
    by_backend: BTreeMap<String, BackendMetrics>,
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
    fn record(&mut self, backend: &str, method: &str, outcome: &'static str, took: Duration) {
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

    fn render(
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

pub struct HubOptions {
    pub init_timeout: Duration,
    /// This executable, which serves the built-in servers.
    pub self_exe: String,
    /// The line printed once every backend has settled (where clients connect).
    pub ready_line: String,
    /// Most items in one page of an aggregated list.
    pub page_size: usize,
    /// A backend quiet this long gets a `ping`; one that does not answer within
    /// `ping_timeout` is restarted.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Where tool calls are recorded, if anywhere.
    pub audit: Option<crate::audit::Audit>,
    /// How long list requests wait for the first start to settle (`startupWait`).
    pub startup_wait: Duration,
}

/// What the audit log needs to know of a tool call.
struct AuditCall {
    tool: String,
    original: String,
    arguments: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Starting,
    Ready,
    /// Down, and due to be started again at `at` (its catalog stays listed meanwhile).
    Restarting {
        reason: String,
        at: Instant,
    },
    Failed(String),
    /// Taken out of the config by a reload: no instances, nothing listed. The slot stays
    /// (indices are never reused for another name) and comes back if the name does.
    Removed,
}

/// What a backend said it can do in its `initialize` result.
#[derive(Debug, Clone, Default)]
struct Caps {
    lists: [bool; 4],
    logging: bool,
}

/// One configured backend and its catalog.
struct Backend {
    spec: BackendSpec,
    /// Where it stands in the config file: the order decides who keeps a contested name.
    position: usize,
    state: State,
    lists: Lists,
    started: Instant,
    /// The instance whose lists are the catalog: the shared instance, or for per-session
    /// backends a probe started once to learn the lists.
    source: Option<InstanceId>,
    /// The wait before the next restart: 1 s, doubling to 60 s, back to 1 s after a minute
    /// of good health.
    backoff: Duration,
    /// When the current instance became ready.
    ready_since: Option<Instant>,
    restarts: u32,
    /// How long its first start took, once it is ready.
    took: Option<Duration>,
    /// While it starts: the last whole "still starting" interval said on the console.
    reported: u64,
}

impl Backend {
    /// A backend about to start, at `position` in the config file.
    fn new(spec: BackendSpec, position: usize) -> Backend {
        Backend {
            spec,
            position,
            state: State::Starting,
            lists: Lists::default(),
            started: Instant::now(),
            source: None,
            backoff: FIRST_BACKOFF,
            ready_since: None,
            restarts: 0,
            took: None,
            reported: 0,
        }
    }
}

impl State {
    /// The state's name in /readyz, the metrics' view and the start-up table.
    fn label(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ready => "ready",
            State::Restarting { .. } => "restarting",
            State::Failed(_) => "failed",
            State::Removed => "removed",
        }
    }
}

/// Seconds between "still starting" lines when the console is not a terminal.
const PROGRESS_EVERY: u64 = 10;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Ready this long, a backend's next failure starts the backoff over.
const STABLE: Duration = Duration::from_secs(60);
/// JSON-RPC code for a request that timed out (the SDKs' convention; not a spec code).
const REQUEST_TIMEOUT: i64 = -32001;

struct Instance {
    backend: usize,
    /// The session a per-session instance belongs to.
    owner: Option<SessionId>,
    conn: Option<BackendHandle>,
    ready: bool,
    caps: Caps,
    init_deadline: Option<Instant>,
    /// Pages gathered so far, per kind, while listing.
    listing: [Option<Vec<Map<String, Value>>>; 4],
    pages: [usize; 4],
    /// Requests not sent yet: the instance is not ready, or is at its `maxConcurrent`.
    queued: std::collections::VecDeque<Request>,
    last_used: Instant,
    log_level: Option<usize>,
    /// When it last said anything, and the deadline of a health ping in flight.
    last_heard: Instant,
    ping_deadline: Option<Instant>,
}

/// What to do with a routed request's answer besides passing it on.
enum After {
    Nothing,
    /// A `resources/read` whose URI was rewritten: put the exposed URI back in the result.
    MapUri {
        original: String,
        exposed: String,
    },
    /// A `resources/subscribe`: on error, forget the subscription.
    Subscribed {
        uri: String,
    },
}

enum Pending {
    /// A client's request, routed to a backend.
    Client {
        session: SessionId,
        id: Id,
        instance: InstanceId,
        method: String,
        /// The client's own progress token; the backend got the gateway id instead.
        progress: Option<Value>,
        after: After,
        /// When the client gets a timeout error instead; progress moves it on, up to
        /// `limit`.
        deadline: Instant,
        limit: Instant,
        timeout: Duration,
        /// What it asked for, for the timeout message (`tools/call 'x'`).
        what: String,
        started: Instant,
        audit: Option<Box<AuditCall>>,
    },
    /// A backend's request to a client (sampling, elicitation, roots), sent on to `session`.
    ServerRequest {
        session: SessionId,
        instance: InstanceId,
        backend_id: Id,
    },
    Initialize {
        instance: InstanceId,
    },
    List {
        instance: InstanceId,
        kind: Kind,
    },
    /// The gateway's own request whose answer only gets logged (setLevel, unsubscribe).
    Ignore {
        instance: InstanceId,
    },
    /// A health check.
    Ping {
        instance: InstanceId,
    },
}

impl Pending {
    fn instance(&self) -> InstanceId {
        match self {
            Pending::Client { instance, .. }
            | Pending::ServerRequest { instance, .. }
            | Pending::Initialize { instance }
            | Pending::List { instance, .. }
            | Pending::Ignore { instance }
            | Pending::Ping { instance } => *instance,
        }
    }
}

/// What a client declared it can do, for requests from servers.
#[derive(Debug, Clone, Default)]
struct ClientCaps {
    sampling: bool,
    elicitation_form: bool,
    elicitation_url: bool,
    roots: bool,
}

struct Session {
    sink: Box<dyn Sink>,
    transport: &'static str,
    initialized: bool,
    client: String,
    version: &'static str,
    caps: ClientCaps,
    log_level: Option<usize>,
    /// This session's own instances of per-session backends, by backend.
    instances: HashMap<usize, InstanceId>,
}

pub struct Hub {
    opts: HubOptions,
    backends: Vec<Backend>,
    instances: HashMap<InstanceId, Instance>,
    registry: Registry,
    sessions: HashMap<SessionId, Session>,
    pending: HashMap<u64, Pending>,
    /// Which sessions subscribed to which URI of which instance (the backend's URI).
    subscriptions: HashMap<(InstanceId, String), HashSet<SessionId>>,
    next_id: u64,
    events_tx: Sender<HubEvent>,
    metrics: Metrics,
    /// Supervisor threads of stopped instances, joined at shutdown.
    stopped: Vec<JoinHandle<()>>,
    summary_printed: bool,
    first_lists: first_lists::FirstLists,
}

type Params = BTreeMap<String, Box<RawValue>>;

impl Hub {
    pub fn new(specs: Vec<BackendSpec>, opts: HubOptions, events_tx: Sender<HubEvent>) -> Hub {
        Hub {
            first_lists: first_lists::FirstLists::new(opts.startup_wait),
            opts,
            backends: specs
                .into_iter()
                .enumerate()
                .map(|(position, spec)| Backend::new(spec, position))
                .collect(),
            instances: HashMap::new(),
            registry: Registry::empty(),
            sessions: HashMap::new(),
            pending: HashMap::new(),
            subscriptions: HashMap::new(),
            next_id: 1,
            events_tx,
            metrics: Metrics::default(),
            stopped: Vec::new(),
            summary_printed: false,
        }
    }

    /// Starts backend `b`'s shared instance (or its probe).
    fn start_backend(&mut self, b: usize) {
        match self.start_instance(b, None) {
            Ok(id) => self.backends[b].source = Some(id),
            // A program that cannot be started now may be installed later.
            Err(e) if self.backends[b].spec.policy.restart => self.schedule_restart(b, e),
            Err(e) => self.backend_failed(b, e),
        }
    }

    /// Runs until `Shutdown`, then stops every backend and returns their supervisor threads
    /// for the caller to join.
    pub fn run(mut self, events: Receiver<HubEvent>) -> Vec<JoinHandle<()>> {
        for b in 0..self.backends.len() {
            self.start_backend(b);
        }
        self.maybe_print_summary();
        let ticker = crossbeam_channel::tick(Duration::from_millis(250));
        loop {
            select! {
                recv(events) -> ev => match ev {
                    Ok(HubEvent::Shutdown) | Err(_) => break,
                    Ok(ev) => self.handle(ev),
                },
                recv(ticker) -> _ => self.tick(),
            }
        }
        self.shutdown()
    }

    fn handle(&mut self, ev: HubEvent) {
        match ev {
            HubEvent::ClientOpened {
                session,
                sink,
                transport,
            } => {
                debug!("session {session}: opened");
                self.sessions.insert(
                    session,
                    Session {
                        transport,
                        sink,
                        initialized: false,
                        client: String::new(),
                        version: PROTOCOL_VERSIONS[0],
                        caps: ClientCaps::default(),
                        log_level: None,
                        instances: HashMap::new(),
                    },
                );
            }
            HubEvent::FromClient { session, msg } => {
                if self.sessions.contains_key(&session) {
                    self.on_client_message(session, msg);
                }
            }
            HubEvent::ClientGone { session } => self.session_gone(&session),
            HubEvent::FromBackend { instance, msg } => {
                if self.instances.contains_key(&instance) {
                    self.on_backend_message(instance, msg);
                }
            }
            HubEvent::BackendExited { instance, reason } => self.instance_failed(instance, reason),
            HubEvent::Reload { backends } => self.reload(backends),
            HubEvent::Status { reply } => {
                let _ = reply.send(self.status());
            }
            HubEvent::Shutdown => {}
        }
    }

    fn status(&self) -> Status {
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
        let in_flight = self
            .pending
            .values()
            .filter(|p| matches!(p, Pending::Client { .. }))
            .count();
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
            metrics: self.metrics.render(&sessions, in_flight, &self.live()),
        }
    }

    /// The backends in the config now, in file order.
    fn live(&self) -> Vec<&Backend> {
        let mut live: Vec<&Backend> = self
            .backends
            .iter()
            .filter(|b| b.state != State::Removed)
            .collect();
        live.sort_by_key(|b| b.position);
        live
    }

    // ---- reload -------------------------------------------------------------------

    /// Applies a new config: backends no longer in it stop, new ones start, changed ones
    /// restart, and the rest keep running untouched, calls in flight included. A change
    /// only to what clients see or to the request policy (`tools`, `descriptions`,
    /// `prefix`, timeouts, `restart`, `maxConcurrent`) is applied without a restart.
    fn reload(&mut self, specs: Vec<BackendSpec>) {
        let mut changes: Vec<String> = Vec::new();
        for b in 0..self.backends.len() {
            let gone = self.backends[b].state != State::Removed
                && !specs.iter().any(|s| s.name == self.backends[b].spec.name);
            if gone {
                changes.push(format!("removed '{}'", self.backends[b].spec.name));
                self.retire(b, "was removed from the config");
            }
        }
        let mut restarted = Vec::new();
        for (position, spec) in specs.into_iter().enumerate() {
            let slot = self.backends.iter().position(|b| b.spec.name == spec.name);
            let Some(b) = slot else {
                changes.push(format!("added '{}'", spec.name));
                self.backends.push(Backend::new(spec, position));
                restarted.push(self.backends.len() - 1);
                continue;
            };
            let backend = &mut self.backends[b];
            backend.position = position;
            if backend.state == State::Removed {
                changes.push(format!("added '{}'", spec.name));
            } else if backend.spec == spec {
                continue;
            } else if !needs_restart(&backend.spec, &spec) {
                changes.push(format!("updated '{}'", spec.name));
                backend.spec = spec;
                continue;
            } else {
                changes.push(format!("restarting '{}' (changed)", spec.name));
                self.retire(b, "was restarted with a changed config");
            }
            // A fresh start in the same slot; the restart count goes on (it is a counter).
            let restarts = self.backends[b].restarts;
            self.backends[b] = Backend {
                restarts,
                ..Backend::new(spec, position)
            };
            restarted.push(b);
        }
        if changes.is_empty() {
            console!("config reloaded: no backend changed");
            return;
        }
        console!("config reloaded: {}", changes.join(", "));
        for b in restarted {
            self.start_backend(b);
        }
        self.rebuild_registry();
    }

    /// Takes backend `b` out of service: its instances stop and whatever is pending on
    /// them is answered with `reason`.
    fn retire(&mut self, b: usize, reason: &str) {
        let backend = &mut self.backends[b];
        backend.state = State::Removed;
        backend.source = None;
        backend.lists = Lists::default();
        let ids: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(_, i)| i.backend == b)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.end_instance(id, Some(reason.to_string()));
        }
    }

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ---- instances ----------------------------------------------------------------

    /// Starts a process for backend `b` and sends it `initialize`.
    fn start_instance(&mut self, b: usize, owner: Option<SessionId>) -> Result<InstanceId, String> {
        let id = self.alloc_id();
        let spec = &self.backends[b].spec;
        let name = spec.name.clone();
        let conn = backend::start_for(id, spec, &self.opts.self_exe, self.events_tx.clone())?;
        let now = Instant::now();
        self.instances.insert(
            id,
            Instance {
                backend: b,
                owner: owner.clone(),
                conn: Some(conn),
                ready: false,
                caps: Caps::default(),
                init_deadline: Some(now + self.opts.init_timeout),
                listing: Default::default(),
                pages: [0; 4],
                queued: Default::default(),
                last_used: now,
                log_level: None,
                last_heard: now,
                ping_deadline: None,
            },
        );
        if let Some(s) = &owner {
            info!("backend '{name}': started an instance for session {s}");
        }
        let params = json!({
            "protocolVersion": PROTOCOL_VERSIONS[0],
            // Everything the gateway can route back to a client.
            "capabilities": {"roots": {"listChanged": true}, "sampling": {}, "elicitation": {"form": {}, "url": {}}},
            "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        });
        self.request_instance(
            id,
            "initialize",
            Some(params),
            Pending::Initialize { instance: id },
        );
        Ok(id)
    }

    /// Sends a gateway-originated request to an instance.
    fn request_instance(
        &mut self,
        instance: InstanceId,
        method: &str,
        params: Option<Value>,
        why: Pending,
    ) {
        let gid = self.alloc_id();
        let request = Request {
            id: Id::number(gid),
            method: method.to_string(),
            params: params.map(|p| jsonrpc::to_raw(&p)),
        };
        self.pending.insert(gid, why);
        if !self.send_instance(instance, Message::Request(request)) {
            self.instance_failed(instance, "its stdin is closed".into());
        }
    }

    fn send_instance(&self, instance: InstanceId, msg: Message) -> bool {
        self.instances
            .get(&instance)
            .and_then(|i| i.conn.as_ref())
            .is_some_and(|c| c.tx.send(msg).is_ok())
    }

    fn notify_instance(&self, instance: InstanceId, method: &str, params: Option<Value>) {
        let n = Notification {
            method: method.into(),
            params: params.map(|p| jsonrpc::to_raw(&p)),
        };
        self.send_instance(instance, Message::Notification(n));
    }

    /// The instance that serves backend `b` for `session`, starting a per-session one if
    /// needed. It may still be initializing: requests to it wait in its queue.
    fn instance_for(&mut self, b: usize, session: &str) -> Result<InstanceId, String> {
        let backend = &self.backends[b];
        if backend.state == State::Removed {
            return Err(format!(
                "backend '{}' was removed from the config",
                backend.spec.name
            ));
        }
        if let State::Failed(reason) = &backend.state {
            return Err(format!(
                "backend '{}' is not available: {reason}",
                backend.spec.name
            ));
        }
        if let (State::Restarting { reason, at }, None) = (&backend.state, backend.source) {
            let wait = at.saturating_duration_since(Instant::now()).as_secs_f64();
            return Err(format!(
                "backend '{}' is restarting ({reason}); next attempt in {wait:.0} s",
                backend.spec.name
            ));
        }
        match backend.spec.scope {
            Scope::Shared => backend
                .source
                .ok_or_else(|| format!("backend '{}' is not running", backend.spec.name)),
            Scope::Session { .. } => {
                if let Some(&id) = self.sessions.get(session).and_then(|s| s.instances.get(&b)) {
                    return Ok(id);
                }
                let id = self.start_instance(b, Some(session.to_string()))?;
                if let Some(s) = self.sessions.get_mut(session) {
                    s.instances.insert(b, id);
                }
                Ok(id)
            }
        }
    }

    /// An instance failed: it is stopped and everything pending on it is answered.
    fn instance_failed(&mut self, instance: InstanceId, reason: String) {
        self.end_instance(instance, Some(reason));
    }

    /// A deliberate stop: the session ended, the instance sat idle, or a probe is done.
    fn stop_instance(&mut self, instance: InstanceId) {
        self.end_instance(instance, None);
    }

    fn end_instance(&mut self, instance: InstanceId, failure: Option<String>) {
        let deliberate = failure.is_none();
        let reason = failure.unwrap_or_else(|| "was stopped".into());
        let Some(mut inst) = self.instances.remove(&instance) else {
            return;
        };
        if let Some(conn) = inst.conn.take() {
            self.stopped.extend(conn.stop());
        }
        let b = inst.backend;
        let name = self.backends[b].spec.name.clone();
        let orphaned: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.instance() == instance)
            .map(|(&id, _)| id)
            .collect();
        for gid in orphaned {
            match self.pending.remove(&gid) {
                Some(Pending::Client {
                    session,
                    id,
                    method,
                    started,
                    audit,
                    ..
                }) => {
                    self.metrics
                        .record(&name, &method, "error", started.elapsed());
                    if let Some(call) = &audit {
                        self.audit(&session, call, &name, started, Err(&reason));
                    }
                    let reply = Response::error(
                        Some(id),
                        INTERNAL_ERROR,
                        format!("backend '{name}' {reason} before answering this request"),
                    );
                    self.deliver(&session, Message::Response(reply));
                }
                Some(Pending::ServerRequest { session, .. }) => {
                    let params =
                        json!({"requestId": gid, "reason": format!("backend '{name}' {reason}")});
                    self.notify_session(&session, "notifications/cancelled", Some(params));
                }
                _ => {}
            }
        }
        self.subscriptions.retain(|(i, _), _| *i != instance);
        if let Some(owner) = &inst.owner {
            if let Some(s) = self.sessions.get_mut(owner) {
                s.instances.remove(&b);
            }
            if !deliberate {
                warn!("backend '{name}': the instance of session {owner} {reason}");
            }
        }
        if self.backends[b].source == Some(instance) {
            self.backends[b].source = None;
            let shared_or_starting = self.backends[b].spec.scope == Scope::Shared
                || self.backends[b].state == State::Starting;
            if deliberate || !shared_or_starting {
                // A probe that is done, or a per-session backend: nothing to restart.
            } else if self.backends[b].spec.policy.restart {
                self.schedule_restart(b, reason);
            } else {
                self.backend_failed(b, reason);
            }
        }
    }

    /// Plans the next start of a backend that went down, with exponential backoff.
    fn schedule_restart(&mut self, b: usize, reason: String) {
        let backend = &mut self.backends[b];
        if backend
            .ready_since
            .take()
            .is_some_and(|t| t.elapsed() >= STABLE)
        {
            backend.backoff = FIRST_BACKOFF;
        }
        let wait = backend.backoff;
        backend.backoff = (backend.backoff * 2).min(MAX_BACKOFF);
        let at = Instant::now() + wait;
        let name = backend.spec.name.clone();
        let first = backend.state == State::Starting;
        backend.state = State::Restarting {
            reason: reason.clone(),
            at,
        };
        let status = if first { "FAILED  " } else { "DOWN    " };
        console!(
            "  {:<16} {:<15} {status} {reason}; restarting in {} s",
            name,
            backend.spec.transport.type_name(),
            wait.as_secs()
        );
        self.maybe_print_summary();
    }

    /// Starts the backends whose restart time has come.
    fn restart_due(&mut self, now: Instant) {
        let due: Vec<usize> = (0..self.backends.len())
            .filter(|&b| {
                matches!(self.backends[b].state, State::Restarting { at, .. } if at <= now)
                    && self.backends[b].source.is_none()
            })
            .collect();
        for b in due {
            self.backends[b].restarts += 1;
            info!(
                "backend '{}': restart {}",
                self.backends[b].spec.name, self.backends[b].restarts
            );
            match self.start_instance(b, None) {
                Ok(id) => self.backends[b].source = Some(id),
                Err(e) => self.schedule_restart(b, e),
            }
        }
    }

    /// Marks a backend failed: its catalog is withdrawn.
    fn backend_failed(&mut self, b: usize, reason: String) {
        let backend = &mut self.backends[b];
        if matches!(backend.state, State::Failed(_)) {
            return;
        }
        let was = std::mem::replace(&mut backend.state, State::Failed(reason.clone()));
        let name = backend.spec.name.clone();
        if was == State::Starting {
            console!(
                "  {:<16} {:<15} FAILED   {reason}",
                name,
                backend.spec.transport.type_name()
            );
        } else {
            warn!("backend '{name}': {reason}; its tools, prompts and resources are withdrawn");
        }
        if backend.lists != Lists::default() {
            backend.lists = Lists::default();
            self.rebuild_registry();
        }
        self.maybe_print_summary();
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let late: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(_, i)| i.init_deadline.is_some_and(|d| now >= d))
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let secs = self.opts.init_timeout.as_secs_f64();
            self.instance_failed(
                id,
                format!("did not finish initializing within {secs:.0} s"),
            );
        }
        let idle: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(id, i)| {
                let Scope::Session { idle } = self.backends[i.backend].spec.scope else {
                    return false;
                };
                i.owner.is_some()
                    && now.duration_since(i.last_used) >= idle
                    && !self.pending.values().any(|p| p.instance() == **id)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in idle {
            info!(
                "backend '{}': stopping an idle per-session instance",
                self.backends[self.instances[&id].backend].spec.name
            );
            self.stop_instance(id);
        }
        self.expire_requests(now);
        self.check_health(now);
        self.restart_due(now);
        self.show_progress(now);
        self.release_lists(false);
    }

    /// What is still starting, and for how long: on a terminal one status line rewritten
    /// in place, otherwise a plain line per backend every `PROGRESS_EVERY` seconds.
    fn show_progress(&mut self, now: Instant) {
        let tty = crate::console_is_tty();
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
            crate::console_status(&line);
        }
    }

    /// Writes a finished tool call to the audit log: `result` is the raw result, or the
    /// error message.
    fn audit(
        &self,
        session: &str,
        call: &AuditCall,
        backend: &str,
        started: Instant,
        result: Result<&RawValue, &str>,
    ) {
        let Some(audit) = &self.opts.audit else {
            return;
        };
        #[derive(Deserialize)]
        struct R {
            #[serde(rename = "isError")]
            is_error: Option<bool>,
        }
        let (bytes, is_error, error) = match result {
            Ok(raw) => {
                // Parsed only when it can say something: results can be megabytes.
                let r: Option<R> = raw
                    .get()
                    .contains("isError")
                    .then(|| serde_json::from_str(raw.get()).ok())
                    .flatten();
                (
                    raw.get().len(),
                    r.and_then(|r| r.is_error).unwrap_or(false),
                    None,
                )
            }
            Err(e) => (0, true, Some(e.to_string())),
        };
        let client = self
            .sessions
            .get(session)
            .map(|s| s.client.clone())
            .unwrap_or_default();
        let mut record = json!({
            "time": crate::audit::now(),
            "session": session,
            "client": client,
            "tool": call.tool,
            "original": call.original,
            "backend": backend,
            "durationMs": (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
            "resultBytes": bytes,
            "isError": is_error,
            "error": error,
        });
        if let Some(args) = &call.arguments {
            record["arguments"] = args.clone();
        }
        audit.record(record);
    }

    /// Answers requests whose time is up with an error, and cancels them at the backend.
    fn expire_requests(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p, Pending::Client { deadline, .. } if *deadline <= now))
            .map(|(&gid, _)| gid)
            .collect();
        for gid in expired {
            let Some(Pending::Client {
                session,
                id,
                instance,
                timeout,
                what,
                method,
                started,
                audit,
                ..
            }) = self.pending.remove(&gid)
            else {
                continue;
            };
            let name = self.name_of(instance).to_string();
            self.metrics
                .record(&name, &method, "timeout", started.elapsed());
            if let Some(call) = &audit {
                self.audit(&session, call, &name, started, Err("timed out"));
            }
            warn!(
                "backend '{name}': {what} timed out after {} s; cancelled",
                timeout.as_secs()
            );
            let reply = Response::error(
                Some(id),
                REQUEST_TIMEOUT,
                format!(
                    "backend '{name}' did not answer {what} within {} s; the request was cancelled",
                    timeout.as_secs()
                ),
            );
            self.deliver(&session, Message::Response(reply));
            let reason = Value::from(format!("timed out after {} s", timeout.as_secs()));
            self.cancel_at_instance(instance, gid, Some(reason));
        }
    }

    /// Pings backends that have been quiet for a while; restarts those that do not answer.
    fn check_health(&mut self, now: Instant) {
        let (interval, timeout) = (self.opts.ping_interval, self.opts.ping_timeout);
        let mut unanswered = Vec::new();
        let mut quiet = Vec::new();
        for (&id, inst) in &self.instances {
            match inst.ping_deadline {
                Some(d) if d <= now => unanswered.push(id),
                Some(_) => {}
                // Only idle ones: a server busy with a long call may not answer until it is
                // done, and that is no reason to kill it.
                None if inst.ready
                    && now.duration_since(inst.last_heard) >= interval
                    && !self
                        .pending
                        .values()
                        .any(|p| matches!(p, Pending::Client { instance: i, .. } if *i == id)) =>
                {
                    quiet.push(id)
                }
                None => {}
            }
        }
        for id in unanswered {
            self.instance_failed(
                id,
                format!("did not answer a ping within {} s", timeout.as_secs()),
            );
        }
        for id in quiet {
            if let Some(inst) = self.instances.get_mut(&id) {
                inst.ping_deadline = Some(now + timeout);
            }
            self.request_instance(id, "ping", None, Pending::Ping { instance: id });
        }
    }

    // ---- clients ------------------------------------------------------------------

    fn on_client_message(&mut self, session: SessionId, msg: Message) {
        match msg {
            Message::Request(req) => {
                if let Some(reply) = self.client_request(&session, req) {
                    self.deliver(&session, Message::Response(reply));
                }
            }
            Message::Notification(n) => self.client_notification(&session, n),
            Message::Response(r) => self.client_response(&session, r),
        }
    }

    /// Answers a client request, or routes it and returns `None` (the backend answers).
    fn client_request(&mut self, session: &str, req: Request) -> Option<Response> {
        let req = self.hold_list(session, req)?;
        let id = req.id.clone();
        let result = match req.method.as_str() {
            "initialize" => Ok(self.initialize(session, req.params.as_deref())),
            "ping" => Ok(empty()),
            "tools/list" => self.list_page(session, Kind::Tools, req.params.as_deref()),
            "prompts/list" => self.list_page(session, Kind::Prompts, req.params.as_deref()),
            "resources/list" => self.list_page(session, Kind::Resources, req.params.as_deref()),
            "resources/templates/list" => {
                self.list_page(session, Kind::Templates, req.params.as_deref())
            }
            "logging/setLevel" => self.set_level(session, req.params.as_deref()),
            "tools/call"
            | "prompts/get"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "completion/complete" => {
                return match self.route(session, req) {
                    Ok(()) => None,
                    Err(e) => Some(Response {
                        id: Some(id),
                        outcome: Err(e),
                    }),
                };
            }
            other => Err(ErrorObject::new(
                METHOD_NOT_FOUND,
                format!("method not found: '{other}'"),
            )),
        };
        Some(Response {
            id: Some(id),
            outcome: result,
        })
    }

    fn initialize(&mut self, session: &str, params: Option<&RawValue>) -> Box<RawValue> {
        #[derive(Deserialize, Default)]
        struct ClientInfo {
            name: Option<String>,
            version: Option<String>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Params {
            protocol_version: Option<String>,
            client_info: Option<ClientInfo>,
            capabilities: Option<Map<String, Value>>,
        }
        let p: Params = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let version = PROTOCOL_VERSIONS
            .iter()
            .find(|v| p.protocol_version.as_deref() == Some(**v))
            .copied()
            .unwrap_or(PROTOCOL_VERSIONS[0]);
        let info = p.client_info.unwrap_or_default();
        let client = format!(
            "{} {}",
            info.name.as_deref().unwrap_or("unknown"),
            info.version.as_deref().unwrap_or("")
        )
        .trim()
        .to_string();
        let caps = p.capabilities.unwrap_or_default();
        let elicitation = caps.get("elicitation").and_then(Value::as_object);
        let caps = ClientCaps {
            sampling: caps.contains_key("sampling"),
            // An empty elicitation object means form mode only.
            elicitation_form: elicitation.is_some_and(|e| e.is_empty() || e.contains_key("form")),
            elicitation_url: elicitation.is_some_and(|e| e.contains_key("url")),
            roots: caps.contains_key("roots"),
        };
        info!(
            "session {session}: initialize from '{client}', protocol {version} (asked {}), capabilities {caps:?}",
            p.protocol_version.as_deref().unwrap_or("none")
        );
        if let Some(s) = self.sessions.get_mut(session) {
            s.client = client;
            s.version = version;
            s.caps = caps;
        }
        // Per-session backends start now, so the first call does not wait for them.
        let per_session: Vec<usize> = (0..self.backends.len())
            .filter(|&b| {
                matches!(self.backends[b].spec.scope, Scope::Session { .. })
                    && self.backends[b].state == State::Ready
            })
            .collect();
        for b in per_session {
            if let Err(e) = self.instance_for(b, session) {
                warn!("session {session}: {e}");
            }
        }
        jsonrpc::to_raw(&json!({
            "protocolVersion": version,
            "capabilities": {
                "tools": {"listChanged": true},
                "prompts": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "logging": {},
                "completions": {},
            },
            "serverInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        }))
    }

    /// One page of an aggregated list, with the gateway's own cursor.
    fn list_page(
        &self,
        session: &str,
        kind: Kind,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, ErrorObject> {
        #[derive(Deserialize, Default)]
        struct P {
            cursor: Option<Value>,
        }
        let p: P = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let items = self.registry.catalog(kind).items();
        let start = match p.cursor.filter(|c| !c.is_null()) {
            None => 0,
            Some(c) => c
                .as_str()
                .and_then(|c| decode_cursor(kind, c))
                .filter(|&offset| offset <= items.len())
                .ok_or_else(|| {
                    ErrorObject::new(
                        INVALID_PARAMS,
                        format!("invalid cursor {c} for {}", kind.list_method()),
                    )
                })?,
        };
        let end = items.len().min(start + self.opts.page_size.max(1));
        let version = self
            .sessions
            .get(session)
            .map_or(PROTOCOL_VERSIONS[0], |s| s.version);
        let mut out = String::with_capacity(
            64 + items[start..end]
                .iter()
                .map(|i| i.get().len() + 1)
                .sum::<usize>(),
        );
        out.push_str("{\"");
        out.push_str(kind.field());
        out.push_str("\":[");
        for (i, item) in items[start..end].iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if compat::needs_downgrade(version) {
                let mut m: Map<String, Value> =
                    serde_json::from_str(item.get()).unwrap_or_default();
                compat::downgrade_item(kind, &mut m, version);
                out.push_str(&Value::Object(m).to_string());
            } else {
                out.push_str(item.get());
            }
        }
        out.push(']');
        if end < items.len() {
            out.push_str(",\"nextCursor\":\"");
            out.push_str(&encode_cursor(kind, end));
            out.push('"');
        }
        out.push('}');
        Ok(RawValue::from_string(out).expect("concatenated JSON items form valid JSON"))
    }

    fn set_level(
        &mut self,
        session: &str,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let level = params
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
            .and_then(|p| p.get("level")?.as_str().map(str::to_string));
        let rank = level.as_deref().and_then(level_rank).ok_or_else(|| {
            ErrorObject::new(
                INVALID_PARAMS,
                format!(
                    "logging/setLevel: 'level' must be one of {}",
                    LEVELS.join(", ")
                ),
            )
        })?;
        if let Some(s) = self.sessions.get_mut(session) {
            s.log_level = Some(rank);
        }
        self.apply_log_levels();
        Ok(empty())
    }

    /// Sets each logging backend to the most verbose level any of its sessions asked for;
    /// the gateway filters per session.
    fn apply_log_levels(&mut self) {
        let shared_min = self.sessions.values().filter_map(|s| s.log_level).min();
        let mut changes = Vec::new();
        for (&id, inst) in &self.instances {
            if !inst.ready || !inst.caps.logging {
                continue;
            }
            let want = match &inst.owner {
                Some(owner) => self.sessions.get(owner).and_then(|s| s.log_level),
                None => shared_min,
            };
            if let Some(want) = want.filter(|w| inst.log_level != Some(*w)) {
                changes.push((id, want));
            }
        }
        for (id, level) in changes {
            if let Some(inst) = self.instances.get_mut(&id) {
                inst.log_level = Some(level);
            }
            self.request_instance(
                id,
                "logging/setLevel",
                Some(json!({"level": LEVELS[level]})),
                Pending::Ignore { instance: id },
            );
        }
    }

    /// Routes a request that names a tool, prompt or resource to its backend.
    fn route(&mut self, session: &str, req: Request) -> Result<(), ErrorObject> {
        let in_flight = self.pending.values().any(|p| {
            matches!(p, Pending::Client { session: s, id, .. } if s == session && *id == req.id)
        });
        if in_flight {
            return Err(ErrorObject::new(
                jsonrpc::INVALID_REQUEST,
                format!("request id {} is already in flight in this session", req.id),
            ));
        }
        let invalid = |m: String| ErrorObject::new(INVALID_PARAMS, m);
        let mut params: Params = match req.params.as_deref().map(|p| serde_json::from_str(p.get()))
        {
            Some(Ok(p)) => p,
            _ => {
                return Err(invalid(format!(
                    "{}: 'params' must be an object",
                    req.method
                )));
            }
        };
        let string = |params: &Params, key: &str| {
            params
                .get(key)
                .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        };
        let mut after = After::Nothing;
        let backend = match req.method.as_str() {
            "tools/call" | "prompts/get" => {
                let kind = if req.method == "tools/call" {
                    Kind::Tools
                } else {
                    Kind::Prompts
                };
                let what = if kind == Kind::Tools {
                    "tool"
                } else {
                    "prompt"
                };
                let name = string(&params, "name").ok_or_else(|| {
                    invalid(format!("{}: 'params.name' must be a string", req.method))
                })?;
                let entry = self
                    .registry
                    .catalog(kind)
                    .lookup(&name)
                    .ok_or_else(|| invalid(format!("unknown {what} '{name}'")))?;
                let b = entry.backend;
                params.insert("name".into(), jsonrpc::to_raw(&entry.original));
                b
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let uri = string(&params, "uri").ok_or_else(|| {
                    invalid(format!("{}: 'params.uri' must be a string", req.method))
                })?;
                let (b, original) = self.registry.route_uri(&uri).ok_or_else(|| {
                    let mut e = ErrorObject::new(
                        RESOURCE_NOT_FOUND,
                        format!("resource not found: no backend serves '{uri}'"),
                    );
                    e.data = Some(jsonrpc::to_raw(&json!({"uri": uri})));
                    e
                })?;
                if original != uri {
                    params.insert("uri".into(), jsonrpc::to_raw(&original));
                }
                match req.method.as_str() {
                    "resources/read" if original != uri => {
                        after = After::MapUri {
                            original,
                            exposed: uri,
                        };
                    }
                    "resources/subscribe" => {
                        let instance = self
                            .instance_for(b, session)
                            .map_err(|e| ErrorObject::new(INTERNAL_ERROR, e))?;
                        let subscribers = self
                            .subscriptions
                            .entry((instance, original.clone()))
                            .or_default();
                        let first = subscribers.is_empty();
                        subscribers.insert(session.to_string());
                        if !first {
                            // The backend already sends this URI's updates; nothing to ask it.
                            self.deliver(session, Message::Response(Response::ok(req.id, empty())));
                            return Ok(());
                        }
                        after = After::Subscribed { uri: original };
                    }
                    "resources/unsubscribe" => {
                        let instance = self
                            .instance_for(b, session)
                            .map_err(|e| ErrorObject::new(INTERNAL_ERROR, e))?;
                        let key = (instance, original);
                        let last = self
                            .subscriptions
                            .get_mut(&key)
                            .is_some_and(|subs| subs.remove(session) && subs.is_empty());
                        if !last {
                            // Others still need it (or this session never subscribed).
                            self.deliver(session, Message::Response(Response::ok(req.id, empty())));
                            return Ok(());
                        }
                        self.subscriptions.remove(&key);
                    }
                    _ => {}
                }
                b
            }
            "completion/complete" => self.route_completion(&mut params)?,
            other => unreachable!("route() is only called for routed methods, not '{other}'"),
        };
        self.forward(session, backend, req.id, req.method, params, after)
            .map_err(|e| ErrorObject::new(INTERNAL_ERROR, e))
    }

    /// `completion/complete` goes where its `ref` points: a prompt or a resource template.
    fn route_completion(&self, params: &mut Params) -> Result<usize, ErrorObject> {
        let invalid = |m: String| ErrorObject::new(INVALID_PARAMS, m);
        let mut reference: Map<String, Value> = params
            .get("ref")
            .and_then(|r| serde_json::from_str(r.get()).ok())
            .ok_or_else(|| invalid("completion/complete: 'params.ref' must be an object".into()))?;
        let field =
            |r: &Map<String, Value>, k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        let (b, key, original) = match field(&reference, "type").as_deref() {
            Some("ref/prompt") => {
                let name = field(&reference, "name").ok_or_else(|| {
                    invalid("completion/complete: 'ref.name' must be a string".into())
                })?;
                let e = self
                    .registry
                    .catalog(Kind::Prompts)
                    .lookup(&name)
                    .ok_or_else(|| invalid(format!("unknown prompt '{name}'")))?;
                (e.backend, "name", e.original.clone())
            }
            Some("ref/resource") => {
                let uri = field(&reference, "uri").ok_or_else(|| {
                    invalid("completion/complete: 'ref.uri' must be a string".into())
                })?;
                let (b, original) = self
                    .registry
                    .route_template(&uri)
                    .or_else(|| self.registry.route_uri(&uri))
                    .ok_or_else(|| invalid(format!("unknown resource template '{uri}'")))?;
                (b, "uri", original)
            }
            other => {
                return Err(invalid(format!(
                    "completion/complete: 'ref.type' must be \"ref/prompt\" or \"ref/resource\", got {other:?}"
                )));
            }
        };
        reference.insert(key.into(), Value::String(original));
        params.insert("ref".into(), jsonrpc::to_raw(&reference));
        Ok(b)
    }

    /// Sends a client's request on to backend `b` with a gateway id (and progress token).
    fn forward(
        &mut self,
        session: &str,
        b: usize,
        id: Id,
        method: String,
        mut params: Params,
        after: After,
    ) -> Result<(), String> {
        let instance = self.instance_for(b, session)?;
        let gid = self.alloc_id();
        let progress = swap_progress_token(&mut params, gid);
        // The tool's own timeout, when this is a call of a tool that has one.
        let tool = (method == "tools/call")
            .then(|| {
                params
                    .get("name")
                    .and_then(|n| serde_json::from_str::<String>(n.get()).ok())
            })
            .flatten();
        let policy = &self.backends[b].spec.policy;
        let timeout = policy.timeout_for(tool.as_deref());
        let now = Instant::now();
        let what = match &tool {
            Some(t) => format!("{method} '{t}'"),
            None => method.clone(),
        };
        let audit = match (&self.opts.audit, &tool) {
            (Some(a), Some(t)) => Some(Box::new(AuditCall {
                tool: self
                    .registry
                    .tools()
                    .iter()
                    .find(|e| e.backend == b && e.original == *t)
                    .map_or_else(|| t.clone(), |e| e.exposed.clone()),
                original: t.clone(),
                arguments: a
                    .arguments
                    .then(|| {
                        params
                            .get("arguments")
                            .and_then(|v| serde_json::from_str(v.get()).ok())
                    })
                    .flatten(),
            })),
            _ => None,
        };
        let request = Request {
            id: Id::number(gid),
            method: method.clone(),
            params: Some(jsonrpc::to_raw(&params)),
        };
        self.pending.insert(
            gid,
            Pending::Client {
                audit,
                session: session.to_string(),
                id,
                instance,
                method,
                progress,
                after,
                deadline: now + timeout,
                limit: now + policy.max_timeout.max(timeout),
                timeout,
                what,
                started: now,
            },
        );
        let inst = self
            .instances
            .get_mut(&instance)
            .expect("instance_for returns a live instance");
        inst.last_used = Instant::now();
        inst.queued.push_back(request);
        self.pump(instance);
        Ok(())
    }

    /// Sends queued requests to a ready instance, as many as its `maxConcurrent` allows.
    fn pump(&mut self, instance: InstanceId) {
        let Some(inst) = self.instances.get(&instance) else {
            return;
        };
        if !inst.ready || inst.queued.is_empty() {
            return;
        }
        let limit = self.backends[inst.backend].spec.policy.max_concurrent;
        let mut free = match limit {
            None => usize::MAX,
            Some(limit) => {
                let pending = self
                    .pending
                    .values()
                    .filter(|p| matches!(p, Pending::Client { instance: i, .. } if *i == instance))
                    .count();
                limit.saturating_sub(pending - inst.queued.len())
            }
        };
        while free > 0 {
            let Some(request) = self
                .instances
                .get_mut(&instance)
                .and_then(|i| i.queued.pop_front())
            else {
                break;
            };
            free -= 1;
            if !self.send_instance(instance, Message::Request(request)) {
                self.instance_failed(instance, "has closed its input".into());
                return;
            }
        }
    }

    fn client_notification(&mut self, session: &str, n: Notification) {
        match n.method.as_str() {
            "notifications/initialized" => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.initialized = true;
                }
            }
            "notifications/cancelled" => {
                let p: Value = n
                    .params
                    .as_deref()
                    .and_then(|p| serde_json::from_str(p.get()).ok())
                    .unwrap_or_default();
                let Some(target) = p.get("requestId") else {
                    return;
                };
                let found = self.pending.iter().find_map(|(gid, p)| match p {
                    Pending::Client { session: s, id, .. }
                        if s == session && id.matches(target) =>
                    {
                        Some(*gid)
                    }
                    _ => None,
                });
                let Some(gid) = found else {
                    debug!("session {session}: cancellation of unknown request {target} ignored");
                    return;
                };
                if let Some(Pending::Client { instance, .. }) = self.pending.remove(&gid) {
                    self.cancel_at_instance(instance, gid, p.get("reason").cloned());
                }
            }
            "notifications/roots/list_changed" => {
                let targets: Vec<InstanceId> = self
                    .instances
                    .iter()
                    .filter(|(_, i)| i.ready && i.owner.as_deref().is_none_or(|o| o == session))
                    .filter(|(id, i)| {
                        i.owner.is_some() || self.backends[i.backend].source == Some(**id)
                    })
                    .map(|(&id, _)| id)
                    .collect();
                for id in targets {
                    self.notify_instance(id, "notifications/roots/list_changed", None);
                }
            }
            other => debug!("session {session}: notification '{other}' not handled"),
        }
    }

    /// Withdraws request `gid` from an instance: still queued, it is simply dropped;
    /// already sent, the backend gets `notifications/cancelled`.
    fn cancel_at_instance(&mut self, instance: InstanceId, gid: u64, reason: Option<Value>) {
        let Some(inst) = self.instances.get_mut(&instance) else {
            return;
        };
        let queued = inst.queued.len();
        inst.queued.retain(|r| r.id.as_u64() != Some(gid));
        if inst.queued.len() == queued {
            let mut params = json!({"requestId": gid});
            if let Some(reason) = reason {
                params["reason"] = reason;
            }
            self.notify_instance(instance, "notifications/cancelled", Some(params));
            // Its place is free for the next one in line.
            self.pump(instance);
        }
    }

    /// A client's answer to a request a backend sent it.
    fn client_response(&mut self, session: &str, r: Response) {
        let Some(gid) = r.id.as_ref().and_then(Id::as_u64) else {
            debug!("session {session}: response without a gateway id ignored");
            return;
        };
        match self.pending.remove(&gid) {
            Some(Pending::ServerRequest {
                session: s,
                instance,
                backend_id,
            }) if s == session => {
                let reply = Response {
                    id: Some(backend_id),
                    outcome: r.outcome,
                };
                self.send_instance(instance, Message::Response(reply));
            }
            Some(other) => {
                debug!(
                    "session {session}: response to id {gid}, which is not its request; ignored"
                );
                self.pending.insert(gid, other);
            }
            None => debug!("session {session}: response to unknown id {gid} ignored"),
        }
    }

    fn session_gone(&mut self, session: &str) {
        let Some(s) = self.sessions.remove(session) else {
            return;
        };
        info!("session {session}: closed (client '{}')", s.client);
        // Requests it had in flight are cancelled at their backends.
        let mine: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p, Pending::Client { session: x, .. } | Pending::ServerRequest { session: x, .. } if x == session))
            .map(|(&gid, _)| gid)
            .collect();
        for gid in mine {
            match self.pending.remove(&gid) {
                Some(Pending::Client { instance, .. }) => {
                    let reason = Value::from("the client disconnected");
                    self.cancel_at_instance(instance, gid, Some(reason));
                }
                Some(Pending::ServerRequest {
                    instance,
                    backend_id,
                    ..
                }) => {
                    let reply = Response::error(
                        Some(backend_id),
                        INTERNAL_ERROR,
                        "the client disconnected before answering",
                    );
                    self.send_instance(instance, Message::Response(reply));
                }
                _ => {}
            }
        }
        for (_, id) in s.instances {
            self.stop_instance(id);
        }
        let mut emptied = Vec::new();
        for (key, subs) in self.subscriptions.iter_mut() {
            if subs.remove(session) && subs.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.subscriptions.remove(&key);
            let (instance, uri) = key;
            if self.instances.contains_key(&instance) {
                self.request_instance(
                    instance,
                    "resources/unsubscribe",
                    Some(json!({"uri": uri})),
                    Pending::Ignore { instance },
                );
            }
        }
        self.apply_log_levels();
    }

    // ---- backends -----------------------------------------------------------------

    fn on_backend_message(&mut self, instance: InstanceId, msg: Message) {
        if let Some(inst) = self.instances.get_mut(&instance) {
            inst.last_heard = Instant::now();
        }
        match msg {
            Message::Response(resp) => self.backend_response(instance, resp),
            Message::Request(req) => self.backend_request(instance, req),
            Message::Notification(n) => self.backend_notification(instance, n),
        }
    }

    fn name_of(&self, instance: InstanceId) -> &str {
        self.instances
            .get(&instance)
            .map_or("?", |i| self.backends[i.backend].spec.name.as_str())
    }

    fn backend_response(&mut self, instance: InstanceId, resp: Response) {
        let gid = resp.id.as_ref().and_then(Id::as_u64);
        let Some(gid) = gid.or_else(|| self.sole_request_for(instance, &resp)) else {
            warn!(
                "backend '{}': response without a usable id ignored: {:?}",
                self.name_of(instance),
                resp.outcome.err()
            );
            return;
        };
        let Some(pending) = self.pending.remove(&gid) else {
            debug!(
                "backend '{}': response to unknown or cancelled id {gid} dropped",
                self.name_of(instance)
            );
            return;
        };
        if pending.instance() != instance || matches!(pending, Pending::ServerRequest { .. }) {
            warn!(
                "backend '{}': answered id {gid}, which is not its request; dropped",
                self.name_of(instance)
            );
            self.pending.insert(gid, pending);
            return;
        }
        match pending {
            Pending::Client {
                session,
                id,
                method,
                after,
                started,
                audit,
                ..
            } => {
                let outcome_name = if resp.outcome.is_ok() { "ok" } else { "error" };
                let backend_name = self.name_of(instance).to_string();
                self.metrics
                    .record(&backend_name, &method, outcome_name, started.elapsed());
                if let Some(call) = &audit {
                    let result = match &resp.outcome {
                        Ok(r) => Ok(r.as_ref()),
                        Err(e) => Err(e.message.as_str()),
                    };
                    self.audit(&session, call, &backend_name, started, result);
                }
                let mut outcome = resp.outcome;
                match (after, &mut outcome) {
                    (After::MapUri { original, exposed }, Ok(result)) => {
                        *result = map_contents_uri(result, &original, &exposed);
                    }
                    (After::Subscribed { uri }, Err(_)) => {
                        if let Some(subs) = self.subscriptions.get_mut(&(instance, uri)) {
                            subs.remove(&session);
                        }
                    }
                    _ => {}
                }
                let version = self
                    .sessions
                    .get(&session)
                    .map_or(PROTOCOL_VERSIONS[0], |s| s.version);
                if let Ok(result) = &mut outcome
                    && matches!(method.as_str(), "tools/call" | "prompts/get")
                    && compat::result_may_need_downgrade(version, result.get())
                    && let Ok(mut v) = serde_json::from_str::<Value>(result.get())
                {
                    compat::downgrade_result(&method, &mut v, version);
                    *result = jsonrpc::to_raw(&v);
                }
                let reply = Response {
                    id: Some(id),
                    outcome,
                };
                self.deliver(&session, Message::Response(reply));
                self.pump(instance);
            }
            Pending::Initialize { .. } => self.instance_initialized(instance, resp.outcome),
            Pending::List { kind, .. } => self.listed(instance, kind, resp.outcome),
            Pending::Ping { .. } => {
                if let Some(inst) = self.instances.get_mut(&instance) {
                    inst.ping_deadline = None;
                }
            }
            Pending::Ignore { .. } => {
                if let Err(e) = resp.outcome {
                    debug!(
                        "backend '{}': declined a gateway request: {} ({})",
                        self.name_of(instance),
                        e.message,
                        e.code
                    );
                }
            }
            Pending::ServerRequest { .. } => unreachable!("checked above"),
        }
    }

    fn instance_initialized(
        &mut self,
        instance: InstanceId,
        outcome: Result<Box<RawValue>, ErrorObject>,
    ) {
        let result = match outcome {
            Ok(r) => r,
            Err(e) => {
                self.instance_failed(
                    instance,
                    format!("initialize failed: {} ({})", e.message, e.code),
                );
                return;
            }
        };
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct InitResult {
            protocol_version: Option<String>,
            capabilities: Option<Map<String, Value>>,
            server_info: Option<Value>,
        }
        let r: InitResult = serde_json::from_str(result.get()).unwrap_or_default();
        let declared = r.capabilities.unwrap_or_default();
        let has = |k: &str| declared.contains_key(k);
        let caps = Caps {
            lists: [
                has("tools"),
                has("prompts"),
                has("resources"),
                has("resources"),
            ],
            logging: has("logging"),
        };
        info!(
            "backend '{}': initialized: protocol {}, server {}, capabilities {}",
            self.name_of(instance),
            r.protocol_version.as_deref().unwrap_or("?"),
            r.server_info.map(|s| s.to_string()).unwrap_or_default(),
            Value::Object(declared)
        );
        self.notify_instance(instance, "notifications/initialized", None);
        let inst = self
            .instances
            .get_mut(&instance)
            .expect("checked by the caller");
        inst.caps = caps.clone();
        inst.init_deadline = Some(Instant::now() + self.opts.init_timeout);
        let is_source = self.backends[inst.backend].source == Some(instance);
        if is_source && caps.lists.iter().any(|&l| l) {
            for kind in Kind::ALL {
                if caps.lists[kind.index()] {
                    self.list(instance, kind, None);
                }
            }
        } else {
            self.instance_ready(instance);
        }
    }

    fn list(&mut self, instance: InstanceId, kind: Kind, cursor: Option<Value>) {
        let Some(inst) = self.instances.get_mut(&instance) else {
            return;
        };
        let slot = kind.index();
        if cursor.is_none() {
            inst.listing[slot] = Some(Vec::new());
            inst.pages[slot] = 0;
        }
        inst.pages[slot] += 1;
        let params = cursor.map(|c| json!({ "cursor": c }));
        self.request_instance(
            instance,
            kind.list_method(),
            params,
            Pending::List { instance, kind },
        );
    }

    fn listed(
        &mut self,
        instance: InstanceId,
        kind: Kind,
        outcome: Result<Box<RawValue>, ErrorObject>,
    ) {
        let field = kind.field();
        let page = outcome
            .map_err(|e| format!("{} failed: {} ({})", kind.list_method(), e.message, e.code))
            .and_then(|r| {
                let mut v: Map<String, Value> = serde_json::from_str(r.get()).map_err(|e| {
                    format!("{} returned an unreadable result: {e}", kind.list_method())
                })?;
                let items = match v.remove(field) {
                    Some(Value::Array(items)) => items
                        .into_iter()
                        .filter_map(|i| match i {
                            Value::Object(m) => Some(m),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                    _ => return Err(format!("{} returned no '{field}' list", kind.list_method())),
                };
                Ok((items, v.remove("nextCursor").filter(|c| !c.is_null())))
            });
        let Some(inst) = self.instances.get_mut(&instance) else {
            return;
        };
        let slot = kind.index();
        let (items, next) = match page {
            Ok(p) => p,
            Err(e) => {
                if inst.ready {
                    warn!(
                        "backend '{}': {e}; keeping its previous list",
                        self.backends[inst.backend].spec.name
                    );
                    inst.listing[slot] = None;
                } else {
                    self.instance_failed(instance, e);
                }
                return;
            }
        };
        inst.listing[slot]
            .get_or_insert_with(Vec::new)
            .extend(items);
        match next {
            Some(_) if inst.pages[slot] >= MAX_PAGES => {
                let e = format!(
                    "{} still had more pages after {MAX_PAGES}",
                    kind.list_method()
                );
                self.instance_failed(instance, e);
            }
            Some(cursor) => self.list(instance, kind, Some(cursor)),
            None => {
                let done = inst.listing[slot].take().unwrap_or_default();
                let b = inst.backend;
                self.backends[b].lists.items[slot] = done;
                let inst = &self.instances[&instance];
                if inst.ready {
                    self.rebuild_registry();
                } else if inst.listing.iter().all(Option::is_none) {
                    self.instance_ready(instance);
                }
            }
        }
    }

    fn instance_ready(&mut self, instance: InstanceId) {
        let Some(inst) = self.instances.get_mut(&instance) else {
            return;
        };
        inst.ready = true;
        inst.init_deadline = None;
        let b = inst.backend;
        let is_source = self.backends[b].source == Some(instance);
        self.pump(instance);
        if is_source {
            self.backends[b].ready_since = Some(Instant::now());
        }
        if is_source && matches!(self.backends[b].state, State::Restarting { .. }) {
            let backend = &mut self.backends[b];
            backend.state = State::Ready;
            console!(
                "  {:<16} {:<15} ready again (restart {})",
                backend.spec.name,
                backend.spec.transport.type_name(),
                backend.restarts
            );
            self.rebuild_registry();
        } else if is_source && self.backends[b].state == State::Starting {
            let backend = &mut self.backends[b];
            backend.state = State::Ready;
            backend.took = Some(backend.started.elapsed());
            let took = backend.started.elapsed().as_secs_f64() * 1000.0;
            let counts = Kind::ALL.map(|k| backend.lists.get(k).len());
            let scope = if matches!(backend.spec.scope, Scope::Session { .. }) {
                ", per session"
            } else {
                ""
            };
            console!(
                "  {:<16} {:<15} ready    {:>3} tools, {} prompts, {} resources, {} templates{scope}  {took:.0} ms",
                backend.spec.name,
                backend.spec.transport.type_name(),
                counts[0],
                counts[1],
                counts[2],
                counts[3],
            );
            if let Scope::Session { .. } = backend.spec.scope {
                // The probe has told us the lists; sessions get their own instances.
                backend.source = None;
                self.stop_instance(instance);
            }
            self.rebuild_registry();
            self.maybe_print_summary();
        }
        self.apply_log_levels();
    }

    /// A request from a backend: `ping` is answered here; sampling, elicitation and roots go
    /// to the client whose request is in flight there (the newest, if several).
    fn backend_request(&mut self, instance: InstanceId, req: Request) {
        let name = self.name_of(instance).to_string();
        let refuse = |hub: &Self, code, message: String| {
            debug!("backend '{name}': {message}");
            hub.send_instance(
                instance,
                Message::Response(Response::error(Some(req.id.clone()), code, message)),
            );
        };
        if req.method == "ping" {
            self.send_instance(instance, Message::Response(Response::ok(req.id, empty())));
            return;
        }
        if !matches!(
            req.method.as_str(),
            "sampling/createMessage" | "elicitation/create" | "roots/list"
        ) {
            return refuse(
                self,
                METHOD_NOT_FOUND,
                format!("the gateway does not forward '{}' to clients", req.method),
            );
        }
        let target = self.client_for(instance);
        let Some(session) = target.filter(|s| self.sessions.contains_key(s)) else {
            return refuse(
                self,
                INTERNAL_ERROR,
                format!(
                    "no client request is in flight on backend '{name}', so '{}' has no client to go to",
                    req.method
                ),
            );
        };
        let caps = &self.sessions[&session].caps;
        let mode_url = req.method == "elicitation/create"
            && req.params.as_deref().is_some_and(|p| {
                serde_json::from_str::<Value>(p.get())
                    .is_ok_and(|v| v.get("mode").and_then(Value::as_str) == Some("url"))
            });
        let (allowed, cap) = match req.method.as_str() {
            "sampling/createMessage" => (caps.sampling, "sampling"),
            "roots/list" => (caps.roots, "roots"),
            _ if mode_url => (caps.elicitation_url, "elicitation.url"),
            _ => (caps.elicitation_form, "elicitation"),
        };
        if !allowed {
            return refuse(
                self,
                METHOD_NOT_FOUND,
                format!(
                    "the client of this session did not declare the '{cap}' capability, so it cannot answer '{}'",
                    req.method
                ),
            );
        }
        let gid = self.alloc_id();
        self.pending.insert(
            gid,
            Pending::ServerRequest {
                session: session.clone(),
                instance,
                backend_id: req.id,
            },
        );
        let forwarded = Request {
            id: Id::number(gid),
            method: req.method,
            params: req.params,
        };
        let related = self.newest_in_flight(&session, instance);
        self.deliver_related(&session, related, Message::Request(forwarded));
    }

    fn backend_notification(&mut self, instance: InstanceId, n: Notification) {
        let params: Map<String, Value> = n
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let Some(inst) = self.instances.get(&instance) else {
            return;
        };
        let (b, owner, ready) = (inst.backend, inst.owner.clone(), inst.ready);
        let name = self.backends[b].spec.name.clone();
        match n.method.as_str() {
            "notifications/tools/list_changed"
            | "notifications/prompts/list_changed"
            | "notifications/resources/list_changed" => {
                if let Some(owner) = owner {
                    // A per-session instance's own view: its session hears of it directly.
                    self.notify_session(&owner, &n.method, None);
                } else if ready && self.backends[b].source == Some(instance) {
                    info!("backend '{name}': {} ; listing again", n.method);
                    let kinds: &[Kind] = match n.method.as_str() {
                        "notifications/tools/list_changed" => &[Kind::Tools],
                        "notifications/prompts/list_changed" => &[Kind::Prompts],
                        _ => &[Kind::Resources, Kind::Templates],
                    };
                    for &kind in kinds {
                        self.list(instance, kind, None);
                    }
                }
            }
            "notifications/progress" => {
                let Some(gid) = params.get("progressToken").and_then(Value::as_u64) else {
                    return;
                };
                let Some(Pending::Client {
                    session,
                    instance: i,
                    progress: Some(token),
                    id,
                    deadline,
                    limit,
                    timeout,
                    ..
                }) = self.pending.get_mut(&gid)
                else {
                    debug!("backend '{name}': progress for unknown or finished token dropped");
                    return;
                };
                if *i != instance {
                    return;
                }
                // Progress shows the work goes on: its time is extended, up to the limit.
                *deadline = (Instant::now() + *timeout).min(*limit);
                let (session, token, related) = (session.clone(), token.clone(), id.clone());
                let mut params = params;
                params.insert("progressToken".into(), token);
                let n = Notification {
                    method: n.method,
                    params: Some(jsonrpc::to_raw(&params)),
                };
                self.deliver_related(&session, Some(related), Message::Notification(n));
            }
            "notifications/message" => {
                let rank = params
                    .get("level")
                    .and_then(Value::as_str)
                    .and_then(level_rank)
                    .unwrap_or(0);
                let targets: Vec<SessionId> = self
                    .sessions
                    .iter()
                    .filter(|(id, s)| owner.as_ref().is_none_or(|o| o == *id) && s.initialized)
                    .filter(|(_, s)| s.log_level.is_none_or(|min| rank >= min))
                    .map(|(id, _)| id.clone())
                    .collect();
                let params = jsonrpc::to_raw(&params);
                for s in targets {
                    // A log line written during a request travels with that request.
                    let related = self.newest_in_flight(&s, instance);
                    let n = Notification {
                        method: n.method.clone(),
                        params: Some(params.clone()),
                    };
                    self.deliver_related(&s, related, Message::Notification(n));
                }
            }
            "notifications/resources/updated" => {
                let Some(uri) = params.get("uri").and_then(Value::as_str) else {
                    return;
                };
                let Some(subs) = self.subscriptions.get(&(instance, uri.to_string())) else {
                    debug!("backend '{name}': update for '{uri}', which no session subscribed to");
                    return;
                };
                let targets: Vec<SessionId> = subs.iter().cloned().collect();
                let mut params = params.clone();
                params.insert(
                    "uri".into(),
                    Value::String(self.registry.exposed_uri(b, uri)),
                );
                let params = Value::Object(params);
                for s in targets {
                    self.notify_session(
                        &s,
                        "notifications/resources/updated",
                        Some(params.clone()),
                    );
                }
            }
            "notifications/cancelled" => {
                // The backend gave up on a request it sent a client.
                let Some(target) = params.get("requestId") else {
                    return;
                };
                let found = self.pending.iter().find_map(|(gid, p)| match p {
                    Pending::ServerRequest {
                        instance: i,
                        backend_id,
                        ..
                    } if *i == instance && backend_id.matches(target) => Some(*gid),
                    _ => None,
                });
                if let Some(gid) = found
                    && let Some(Pending::ServerRequest { session, .. }) = self.pending.remove(&gid)
                {
                    let mut p = json!({"requestId": gid});
                    if let Some(r) = params.get("reason") {
                        p["reason"] = r.clone();
                    }
                    self.notify_session(&session, "notifications/cancelled", Some(p));
                }
            }
            "notifications/elicitation/complete" => {
                // Goes to whoever the backend last asked; a per-session instance has one.
                let target = self.client_for(instance);
                if let Some(s) = target {
                    self.notify_session(&s, &n.method, Some(Value::Object(params)));
                }
            }
            other => debug!("backend '{name}': notification '{other}' not forwarded"),
        }
    }

    fn rebuild_registry(&mut self) {
        let mut ready: Vec<(usize, &Backend)> = self
            .backends
            .iter()
            .enumerate()
            .filter(|(_, b)| matches!(b.state, State::Ready | State::Restarting { .. }))
            .collect();
        ready.sort_by_key(|(_, b)| b.position);
        let ready: Vec<BackendLists<'_>> = ready
            .into_iter()
            .map(|(i, b)| BackendLists {
                backend: i,
                name: &b.spec.name,
                prefix: &b.spec.prefix,
                lists: &b.lists,
                view: &b.spec.view,
            })
            .collect();
        let registry = Registry::build(&ready);
        for note in &registry.notes {
            if !self.registry.notes.contains(note) {
                warn!("{note}");
            }
        }
        let old = std::mem::replace(&mut self.registry, registry);
        if !self.summary_printed {
            return;
        }
        let mut sent = HashSet::new();
        for kind in Kind::ALL {
            let (a, b) = (
                old.catalog(kind).items(),
                self.registry.catalog(kind).items(),
            );
            let same = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.get() == y.get());
            if !same && sent.insert(kind.changed_notification()) {
                info!("{} changed: {} now", kind.list_method(), b.len());
                self.notify_all(kind.changed_notification());
            }
        }
    }

    fn notify_all(&mut self, method: &str) {
        let targets: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.initialized)
            .map(|(id, _)| id.clone())
            .collect();
        for session in targets {
            self.notify_session(&session, method, None);
        }
    }

    fn notify_session(&mut self, session: &str, method: &str, params: Option<Value>) {
        let n = Notification {
            method: method.to_string(),
            params: params.map(|p| jsonrpc::to_raw(&p)),
        };
        self.deliver(session, Message::Notification(n));
    }

    /// Queues a message for a session; a response relates to its own request.
    fn deliver(&mut self, session: &str, msg: Message) {
        let related = match &msg {
            Message::Response(r) => r.id.clone(),
            _ => None,
        };
        self.deliver_related(session, related, msg);
    }

    /// Queues a message on a session's stream. A client whose queue is full is not reading:
    /// it is dropped rather than allowed to hold anyone else up.
    fn deliver_related(&mut self, session: &str, related: Option<Id>, msg: Message) {
        let Some(s) = self.sessions.get(session) else {
            debug!("session {session}: gone; dropped {}", brief(&msg));
            return;
        };
        match s.sink.offer(Outbound { related, msg }) {
            Ok(()) => {}
            Err(Refused::Full) => {
                warn!(
                    "session {session}: client '{}' is not reading its stream (its queue is full, by count or by bytes); disconnecting it",
                    s.client
                );
                self.session_gone(session);
            }
            Err(Refused::Closed) => self.session_gone(session),
        }
    }

    /// The session a message from `instance` concerns: a per-session instance's own, else
    /// the one with the newest request in flight there.
    fn client_for(&self, instance: InstanceId) -> Option<SessionId> {
        if let Some(owner) = self.instances.get(&instance).and_then(|i| i.owner.clone()) {
            return Some(owner);
        }
        self.pending
            .iter()
            .filter_map(|(gid, p)| match p {
                Pending::Client {
                    session,
                    instance: i,
                    ..
                } if *i == instance => Some((*gid, session)),
                _ => None,
            })
            .max_by_key(|(gid, _)| *gid)
            .map(|(_, s)| s.clone())
    }

    /// The client id of the newest request `session` has in flight on `instance`.
    fn newest_in_flight(&self, session: &str, instance: InstanceId) -> Option<Id> {
        self.pending
            .iter()
            .filter_map(|(gid, p)| match p {
                Pending::Client {
                    session: s,
                    instance: i,
                    id,
                    ..
                } if s == session && *i == instance => Some((*gid, id)),
                _ => None,
            })
            .max_by_key(|(gid, _)| *gid)
            .map(|(_, id)| id.clone())
    }

    fn maybe_print_summary(&mut self) {
        if self.summary_printed || self.live().iter().any(|b| b.state == State::Starting) {
            return;
        }
        self.summary_printed = true;
        crate::console_status("");
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

    fn shutdown(mut self) -> Vec<JoinHandle<()>> {
        info!(
            "hub: shutting down: {} session(s), {} pending request(s)",
            self.sessions.len(),
            self.pending.len()
        );
        // Lists still held get what there is; every request still waiting gets its answer
        // before the streams close.
        self.release_lists(true);
        for (_, p) in std::mem::take(&mut self.pending) {
            if let Pending::Client { session, id, .. } = p {
                let reply =
                    Response::error(Some(id), INTERNAL_ERROR, "the gateway is shutting down");
                self.deliver(&session, Message::Response(reply));
            }
        }
        self.sessions.clear(); // ends every stream, after what is queued on it
        let mut threads = std::mem::take(&mut self.stopped);
        for (_, mut inst) in self.instances.drain() {
            if let Some(conn) = inst.conn.take() {
                threads.extend(conn.stop());
            }
        }
        threads
    }
}

/// Whether a changed backend entry needs a new process: anything about how it is started
/// or reached does; what clients see and the request policy are read per request.
fn needs_restart(old: &BackendSpec, new: &BackendSpec) -> bool {
    old.transport != new.transport
        || old.scope != new.scope
        || old.policy.max_message != new.policy.max_message
}

/// Replaces `params._meta.progressToken` with the gateway's own token (`gid`) and returns
/// the client's.
fn swap_progress_token(params: &mut Params, gid: u64) -> Option<Value> {
    let meta = params.get("_meta")?;
    let mut meta: Map<String, Value> = serde_json::from_str(meta.get()).ok()?;
    let token = meta.insert("progressToken".into(), Value::from(gid))?;
    params.insert("_meta".into(), jsonrpc::to_raw(&meta));
    Some(token)
}

/// A `resources/read` result with `contents[].uri` put back to the URI the client used.
fn map_contents_uri(result: &RawValue, original: &str, exposed: &str) -> Box<RawValue> {
    let Ok(mut v) = serde_json::from_str::<Value>(result.get()) else {
        return result.to_owned();
    };
    if let Some(Value::Array(contents)) = v.get_mut("contents") {
        for c in contents {
            if c.get("uri").and_then(Value::as_str) == Some(original) {
                c["uri"] = Value::String(exposed.to_string());
            }
        }
    }
    jsonrpc::to_raw(&v)
}

/// `{}`, the result of `ping`, `logging/setLevel` and friends.
fn empty() -> Box<RawValue> {
    RawValue::from_string("{}".into()).expect("{} is valid JSON")
}

fn level_rank(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| *l == level)
}

/// The gateway's list cursor: opaque to clients, `<kind>:<offset>` in hex.
fn encode_cursor(kind: Kind, offset: usize) -> String {
    format!("{}:{offset}", kind.field())
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_cursor(kind: Kind, cursor: &str) -> Option<usize> {
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (field, offset) = text.split_once(':')?;
    (field == kind.field()).then(|| offset.parse().ok())?
}

fn brief(msg: &Message) -> String {
    match msg {
        Message::Request(r) => format!("request '{}'", r.method),
        Message::Notification(n) => format!("notification '{}'", n.method),
        Message::Response(r) => format!("response to {:?}", r.id),
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

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(Kind::Tools, 500);
        assert_eq!(decode_cursor(Kind::Tools, &c), Some(500));
        assert_eq!(
            decode_cursor(Kind::Prompts, &c),
            None,
            "a tools cursor is not a prompts cursor"
        );
        for bad in ["", "zz", "abc", "bogus", "746f6f6c733a", "é"] {
            assert_eq!(decode_cursor(Kind::Tools, bad), None, "{bad}");
        }
    }

    #[test]
    fn progress_tokens_are_swapped_only_when_present() {
        let mut p: Params =
            serde_json::from_str(r#"{"name":"x","_meta":{"progressToken":"abc","other":1}}"#)
                .unwrap();
        assert_eq!(swap_progress_token(&mut p, 42), Some(json!("abc")));
        assert_eq!(p["_meta"].get(), r#"{"other":1,"progressToken":42}"#);
        let mut p: Params = serde_json::from_str(r#"{"name":"x","_meta":{"other":1}}"#).unwrap();
        assert_eq!(swap_progress_token(&mut p, 42), None);
        let mut p: Params = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(swap_progress_token(&mut p, 42), None);
    }

    #[test]
    fn read_results_get_the_clients_uri_back() {
        let r = jsonrpc::to_raw(
            &json!({"contents": [{"uri": "file:///a", "text": "x"}, {"uri": "file:///b"}]}),
        );
        let out = map_contents_uri(&r, "file:///a", "mcp-gateway://b/file:///a");
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v["contents"][0]["uri"], "mcp-gateway://b/file:///a");
        assert_eq!(v["contents"][1]["uri"], "file:///b");
    }
}
