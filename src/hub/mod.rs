//! The hub: the one thread that owns the routing state.
//!
//! It owns the session table, the backends and their running instances, the subscription
//! table and the registry, and alone changes them; it publishes the snapshots routers
//! read (`router.rs`). The pending-request table is shared (`replies.rs`): the hub, the
//! routers on the front ends' threads and the backends' readers take entries in and out
//! under its lock. The hub answers what the gateway owns (`initialize`, `ping`, the
//! aggregated lists, `logging/setLevel`) and routes what the routers leave to it,
//! replacing every request id and progress token with a gateway-unique one and restoring
//! it on the way back. It never reads a socket or a pipe.

mod call_params;
mod catalogue;
mod demand;
mod first_lists;
mod from_backend;
mod lists;
mod pending;
mod profiles;
mod reload;
mod replies;
mod route;
mod router;
mod sessions;
mod status;
mod supervise;
mod tasks;
#[cfg(test)]
mod tests;
mod unavailable;
mod unreadable;
mod wrapper;

pub use router::Router;

use pending::{GatewayId, Pending, PendingTable};
use replies::Replies;

use crate::config::{BackendSpec, Scope};
use crate::contract::{
    BackendHandle, HubEvent, InstanceId, Order, PROTOCOL_VERSIONS, SessionId, Sink, Spawner,
};
use crate::jsonrpc::{INTERNAL_ERROR, Message, Request, Response};
use crate::registry::{BackendIx, Kind, Lists, Registry};
use crossbeam_channel::{Receiver, Sender, select};
use log::{debug, info};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most pages the gateway follows when listing one backend.
const MAX_PAGES: usize = 1000;
/// The answer to every request still waiting when the gateway stops.
const SHUTTING_DOWN: &str = "the gateway is shutting down";
/// Resource-not-found, as the legacy versions define it.
const RESOURCE_NOT_FOUND: i64 = -32002;

pub struct HubOptions {
    pub init_timeout: Duration,
    /// Starts a backend's instance: `backend::start_for`, or a test's stand-in.
    pub spawner: Box<Spawner>,
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
    /// The named views of the catalogue sessions may be opened with (`profiles.rs`).
    pub profiles: Vec<crate::config::profiles::Profile>,
    /// `start`: whether backends without their own `start` run on demand.
    pub on_demand: bool,
    /// `idleStop`: how long an on-demand backend runs after its last request.
    pub idle_stop: Duration,
    /// Backends started with npx keep npm's process (`npm.rs`).
    pub keep_wrapper: bool,
    /// Where on-demand backends' lists are kept between runs (`cache.rs`).
    pub cache: Option<crate::cache::CatalogCache>,
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
    /// An on-demand backend with no process: its lists are known (learned, or from the
    /// catalogue cache), and a request that needs it wakes it.
    Sleeping,
    /// An on-demand backend starting for a request: its lists stay listed, and what needs
    /// it waits in its instance's queue.
    Waking,
}

/// What a backend said it can do in its `initialize` result.
#[derive(Debug, Clone, Default)]
struct Caps {
    lists: [bool; 4],
    logging: bool,
    /// It takes `tools/call` as a task (2025-11-25).
    tasks: bool,
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
    /// A backend that failed for good (`State::Failed`) is tried again at this time, if
    /// nothing asks for it sooner (or a reload).
    retry_at: Option<Instant>,
    /// When a request last tried to start it while failed (at most one try in a while).
    tried_at: Option<Instant>,
    /// A hash of the lists last written to the catalogue cache (so an unchanged catalogue
    /// is not written again on each wake).
    stored: Option<u64>,
    /// What it said of itself at `initialize` (`serverInfo`, `protocolVersion`,
    /// `capabilities`), from the instance whose lists are its catalog or from the cache.
    server: Option<Value>,
    /// The program npm runs for it (`npm.rs`), once an instance showed it: later
    /// instances run it directly.
    direct: Option<crate::config::Launch>,
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
            retry_at: None,
            tried_at: None,
            stored: None,
            server: None,
            direct: None,
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
            State::Sleeping => "sleeping",
            State::Waking => "waking",
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

/// Whom a per-session instance (`"scope": "session"`) belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Owner {
    /// A legacy session's own instance, stopped with it.
    Session(SessionId),
    /// A 2026-07-28 client's, which has no session: every request of one client key (its
    /// token and endpoint, `Session::client_key`) reaches it, and it stays until idle.
    Client(String),
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Session(s) => write!(f, "session {s}"),
            Owner::Client(k) => write!(f, "2026-07-28 client {k}"),
        }
    }
}

struct Instance {
    backend: BackendIx,
    /// Whom a per-session instance belongs to.
    owner: Option<Owner>,
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
    /// The order of its messages between its reader and the hub, and whether the reader
    /// may complete replies itself.
    order: std::sync::Arc<Order>,
    /// Cleared (under the pending table's lock) when it ends, so no router registers a
    /// request on it after its requests were answered.
    alive: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// It runs the program npm ran for an earlier instance, without npm.
    direct: bool,
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
    sink: std::sync::Arc<dyn Sink>,
    transport: &'static str,
    initialized: bool,
    client: String,
    version: &'static str,
    caps: ClientCaps,
    log_level: Option<usize>,
    /// This session's own instances of per-session backends, by backend.
    instances: HashMap<BackendIx, InstanceId>,
    /// The profile it sees the catalogue through (an index into `HubOptions::profiles`).
    profile: Option<usize>,
    /// The label of the client token it was opened with.
    token: Option<std::sync::Arc<str>>,
    opened: Instant,
}

impl Session {
    /// For a 2026-07-28 request's session: the client it stands for, which is all a
    /// per-session instance can be kept for when the revision has no session: its client
    /// token and the endpoint (profile) it came to. Clients without a token at one
    /// endpoint are one client here. None for a legacy session, which is its own.
    fn client_key(&self, profiles: &[crate::config::profiles::Profile]) -> Option<String> {
        if self.transport != crate::contract::STATELESS {
            return None;
        }
        let token = match &self.token {
            Some(label) => format!("token '{label}'"),
            None => "without a token".to_string(),
        };
        let endpoint = match self.profile {
            Some(p) => format!("/p/{}/", profiles[p].name),
            None => "/".to_string(),
        };
        Some(format!("{token} at {endpoint}"))
    }
}

pub struct Hub {
    opts: HubOptions,
    backends: Vec<Backend>,
    instances: HashMap<InstanceId, Instance>,
    registry: Registry,
    /// Each profile's view of the registry (`profiles.rs`).
    views: Vec<profiles::ProfileView>,
    sessions: HashMap<SessionId, Session>,
    /// The requests in flight, the sessions' sinks, the metrics and the audit log: shared
    /// with the backends' readers, which complete plain replies themselves.
    replies: std::sync::Arc<Replies>,
    /// Which sessions subscribed to which URI of which instance (the backend's URI).
    subscriptions: HashMap<(InstanceId, String), HashSet<SessionId>>,
    /// Tasks sessions made, by the id their clients know (`tasks.rs`).
    tasks: HashMap<String, tasks::Task>,
    task_seq: u64,
    events_tx: Sender<HubEvent>,
    /// Supervisor threads of stopped instances, joined at shutdown.
    stopped: Vec<JoinHandle<()>>,
    summary_printed: bool,
    first_lists: first_lists::FirstLists,
    /// The URL elicitations sent to clients, for their completions.
    url_elicitations: from_backend::UrlElicitations,
    /// The per-session instances of 2026-07-28 clients, by backend and client key.
    keyed: HashMap<(BackendIx, String), InstanceId>,
}

type Params = BTreeMap<String, Box<RawValue>>;

impl Hub {
    pub fn new(specs: Vec<BackendSpec>, opts: HubOptions, events_tx: Sender<HubEvent>) -> Hub {
        let replies = Replies::new(opts.audit.clone());
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
            views: Vec::new(),
            sessions: HashMap::new(),
            replies,
            subscriptions: HashMap::new(),
            tasks: HashMap::new(),
            task_seq: 0,
            events_tx,
            stopped: Vec::new(),
            summary_printed: false,
            url_elicitations: Default::default(),
            keyed: HashMap::new(),
        }
    }

    /// Runs until `Shutdown`, then stops every backend and returns their supervisor threads
    /// for the caller to join.
    pub fn run(mut self, events: Receiver<HubEvent>) -> Vec<JoinHandle<()>> {
        for b in (0..self.backends.len()).map(BackendIx) {
            if let Scope::Session { idle } = self.backends[b].spec.scope {
                info!(
                    "backend '{}' is per-session: a legacy session gets an instance of its own when a request first needs it; a 2026-07-28 client, which has no session, gets one per client token and endpoint, kept until idle for {} s, so such clients without a token at one endpoint share it (give each client its own token to keep them apart)",
                    self.backends[b].spec.name,
                    idle.as_secs()
                );
            }
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
        self.shutdown(&events)
    }

    fn handle(&mut self, ev: HubEvent) {
        match ev {
            HubEvent::ClientOpened {
                session,
                sink,
                transport,
                access,
            } => {
                debug!("session {session}: opened");
                let sink: std::sync::Arc<dyn Sink> = std::sync::Arc::from(sink);
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
                        profile: access.profile.filter(|p| *p < self.opts.profiles.len()),
                        token: access.token,
                        opened: Instant::now(),
                    },
                );
            }
            HubEvent::FromClient {
                session,
                msg,
                order,
            } => {
                if self.sessions.contains_key(&session) {
                    self.on_client_message(session, msg);
                }
                if let Some(order) = order {
                    order.handled();
                }
            }
            HubEvent::ClientGone { session } => self.session_gone(&session),
            HubEvent::Refused { session, why } => self.refused(&session, why),
            HubEvent::FromBackend {
                instance,
                msg,
                during,
            } => {
                if let Some(inst) = self.instances.get(&instance) {
                    let order = inst.order.clone();
                    self.on_backend_message(instance, msg, during);
                    // Only now may the reader complete a reply itself: what it sent before
                    // has reached its clients.
                    order.handled();
                }
            }
            HubEvent::BackendExited { instance, reason } => self.instance_failed(instance, reason),
            HubEvent::Reload { backends } => self.reload(backends),
            HubEvent::Status { reply, full } => {
                let _ = reply.send(self.status(full));
            }
            HubEvent::Shutdown => {}
        }
    }

    /// The requests in flight. Lock it for one statement at a time: the guard must not
    /// live across a call that may take it again (a `match` or `for` on it would).
    fn pending(&self) -> std::sync::MutexGuard<'_, PendingTable> {
        self.replies.pending()
    }

    fn alloc_id(&mut self) -> GatewayId {
        GatewayId(self.replies.alloc_id())
    }

    fn name_of(&self, instance: InstanceId) -> &str {
        self.instances
            .get(&instance)
            .map_or("?", |i| self.backends[i.backend].spec.name.as_str())
    }

    fn shutdown(mut self, events: &Receiver<HubEvent>) -> Vec<JoinHandle<()>> {
        info!(
            "hub: shutting down: {} session(s), {} pending request(s)",
            self.sessions.len(),
            self.pending().len()
        );
        // Lists still held get what there is; every request still waiting gets its answer
        // before the streams close. Routers route nothing more: the snapshots go, and every
        // instance's flag is cleared under the table's lock, so a router that read a
        // snapshot before either registered its entry already (and it is answered below)
        // or registers none.
        self.release_at_shutdown();
        self.replies.published.clear();
        {
            let _table = self.pending();
            for inst in self.instances.values() {
                inst.alive.store(false, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let all = self.pending().drain();
        for (_, p) in all {
            if let Pending::Client { session, id, .. } = p {
                let reply = Response::error(Some(id), INTERNAL_ERROR, SHUTTING_DOWN);
                self.deliver(&session, Message::Response(reply));
            }
        }
        // Requests that reached the hub after it was told to stop get the same answer.
        while let Ok(ev) = events.try_recv() {
            if let HubEvent::FromClient {
                session,
                msg: Message::Request(r),
                ..
            } = ev
            {
                let reply = Response::error(Some(r.id), INTERNAL_ERROR, SHUTTING_DOWN);
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

impl std::ops::Index<BackendIx> for Vec<Backend> {
    type Output = Backend;

    fn index(&self, b: BackendIx) -> &Backend {
        &self[b.0]
    }
}

impl std::ops::IndexMut<BackendIx> for Vec<Backend> {
    fn index_mut(&mut self, b: BackendIx) -> &mut Backend {
        &mut self[b.0]
    }
}

/// `{}`, the result of `ping`, `logging/setLevel` and friends.
fn empty() -> Box<RawValue> {
    RawValue::from_string("{}".into()).expect("{} is valid JSON")
}

fn brief(msg: &Message) -> String {
    match msg {
        Message::Request(r) => format!("request '{}'", r.method),
        Message::Notification(n) => format!("notification '{}'", n.method),
        Message::Response(r) => format!("response to {:?}", r.id),
    }
}
