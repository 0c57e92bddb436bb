//! The hub: the one thread that owns the routing state.
//!
//! It owns the session table, the pending-request table, the backends' handles and states,
//! and the registry. Frontends and backends only send it `HubEvent`s; it answers what the
//! gateway owns (`initialize`, `ping`, `tools/list`) and routes the rest, replacing each
//! request id with a gateway-unique one and restoring it on the way back. It never reads a
//! socket or a pipe and never parses anything bigger than an envelope's `params`.

use crate::backend::{self, BackendHandle};
use crate::config::BackendSpec;
use crate::jsonrpc::{
    self, ErrorObject, INTERNAL_ERROR, INVALID_PARAMS, Id, METHOD_NOT_FOUND, Message, Notification,
    Request, Response,
};
use crate::registry::{self, BackendTools, Registry};
use crossbeam_channel::{Receiver, Sender, TrySendError, select};
use log::{debug, info, warn};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Protocol versions the gateway speaks to clients, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Most pages the gateway follows when listing one backend.
const MAX_PAGES: usize = 1000;

pub type SessionId = String;

/// Everything that happens, as the hub hears of it.
pub enum HubEvent {
    /// A client opened a stream; messages for it go down `tx`.
    ClientOpened {
        session: SessionId,
        tx: Sender<Message>,
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
        backend: usize,
        msg: Message,
    },
    /// The backend's process ended by itself.
    BackendExited {
        backend: usize,
        reason: String,
    },
    Shutdown,
}

pub struct HubOptions {
    pub init_timeout: Duration,
    /// This executable, which serves the built-in servers.
    pub self_exe: String,
    /// The address clients should use, printed once every backend has settled.
    pub client_url: String,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Starting,
    Ready,
    Failed(String),
}

struct Slot {
    spec: BackendSpec,
    state: State,
    conn: Option<BackendHandle>,
    tools: Vec<Map<String, Value>>,
    /// Pages gathered so far while listing tools.
    listing: Vec<Map<String, Value>>,
    pages: usize,
    started: Instant,
    init_deadline: Option<Instant>,
}

enum Pending {
    Client {
        session: SessionId,
        id: Id,
        backend: usize,
    },
    Initialize {
        backend: usize,
    },
    ListTools {
        backend: usize,
    },
}

impl Pending {
    fn backend(&self) -> usize {
        match self {
            Pending::Client { backend, .. }
            | Pending::Initialize { backend }
            | Pending::ListTools { backend } => *backend,
        }
    }
}

struct Session {
    tx: Sender<Message>,
    initialized: bool,
    client: String,
}

pub struct Hub {
    opts: HubOptions,
    slots: Vec<Slot>,
    registry: Registry,
    sessions: HashMap<SessionId, Session>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    events_tx: Sender<HubEvent>,
    /// Supervisor threads of stopped backends, joined at shutdown.
    stopped: Vec<JoinHandle<()>>,
    summary_printed: bool,
}

impl Hub {
    pub fn new(specs: Vec<BackendSpec>, opts: HubOptions, events_tx: Sender<HubEvent>) -> Hub {
        let now = Instant::now();
        Hub {
            opts,
            slots: specs
                .into_iter()
                .map(|spec| Slot {
                    spec,
                    state: State::Starting,
                    conn: None,
                    tools: Vec::new(),
                    listing: Vec::new(),
                    pages: 0,
                    started: now,
                    init_deadline: None,
                })
                .collect(),
            registry: Registry::empty(),
            sessions: HashMap::new(),
            pending: HashMap::new(),
            next_id: 1,
            events_tx,
            stopped: Vec::new(),
            summary_printed: false,
        }
    }

    /// Runs until `Shutdown`, then stops every backend and returns their supervisor threads
    /// for the caller to join.
    pub fn run(mut self, events: Receiver<HubEvent>) -> Vec<JoinHandle<()>> {
        self.start_backends();
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
            HubEvent::ClientOpened { session, tx } => {
                debug!("session {session}: opened");
                self.sessions.insert(
                    session,
                    Session {
                        tx,
                        initialized: false,
                        client: String::new(),
                    },
                );
            }
            HubEvent::FromClient { session, msg } => self.on_client_message(session, msg),
            HubEvent::ClientGone { session } => {
                if let Some(s) = self.sessions.remove(&session) {
                    info!("session {session}: closed (client '{}')", s.client);
                }
            }
            HubEvent::FromBackend { backend, msg } => self.on_backend_message(backend, msg),
            HubEvent::BackendExited { backend, reason } => {
                self.fail_backend(backend, format!("exited ({reason})"));
            }
            HubEvent::Shutdown => {}
        }
    }

    fn start_backends(&mut self) {
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let name = slot.spec.name.clone();
            let Some(launch) = backend::launch_for(&slot.spec, &self.opts.self_exe) else {
                let ty = slot.spec.transport.type_name();
                self.fail_backend(
                    index,
                    format!("type '{ty}' is not supported by this version yet (configured but not started)"),
                );
                continue;
            };
            match backend::start(index, &name, &launch, self.events_tx.clone()) {
                Ok(handle) => {
                    let slot = &mut self.slots[index];
                    slot.conn = Some(handle);
                    slot.started = Instant::now();
                    slot.init_deadline = Some(slot.started + self.opts.init_timeout);
                    let params = json!({
                        "protocolVersion": PROTOCOL_VERSIONS[0],
                        "capabilities": {},
                        "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
                    });
                    self.request_backend(
                        index,
                        "initialize",
                        Some(&params),
                        Pending::Initialize { backend: index },
                    );
                }
                Err(e) => self.fail_backend(index, e),
            }
        }
        self.maybe_print_summary();
    }

    fn tick(&mut self) {
        let now = Instant::now();
        let late: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].init_deadline.is_some_and(|d| now >= d))
            .collect();
        for index in late {
            let secs = self.opts.init_timeout.as_secs_f64();
            self.fail_backend(
                index,
                format!("did not finish initializing within {secs:.0} s"),
            );
        }
    }

    /// Sends a gateway-originated request to a backend.
    fn request_backend(
        &mut self,
        backend: usize,
        method: &str,
        params: Option<&Value>,
        why: Pending,
    ) {
        let params = params.map(jsonrpc::to_raw);
        let request = Request {
            id: Id::number(0), // replaced below
            method: method.to_string(),
            params,
        };
        if let Err(e) = self.send_to_backend(backend, request, why) {
            self.fail_backend(backend, e);
        }
    }

    /// Gives `request` a gateway-unique id, remembers why it was sent, and queues it.
    fn send_to_backend(
        &mut self,
        backend: usize,
        mut request: Request,
        why: Pending,
    ) -> Result<(), String> {
        let Some(conn) = &self.slots[backend].conn else {
            return Err("is not running".into());
        };
        let id = self.next_id;
        self.next_id += 1;
        request.id = Id::number(id);
        if conn.tx.send(Message::Request(request)).is_err() {
            return Err("its stdin is closed".into());
        }
        self.pending.insert(id, why);
        Ok(())
    }

    fn on_client_message(&mut self, session: SessionId, msg: Message) {
        match msg {
            Message::Request(req) => {
                let reply = self.client_request(&session, req);
                if let Some(reply) = reply {
                    self.deliver(&session, Message::Response(reply));
                }
            }
            Message::Notification(n) => match n.method.as_str() {
                "notifications/initialized" => {
                    if let Some(s) = self.sessions.get_mut(&session) {
                        s.initialized = true;
                    }
                }
                other => debug!("session {session}: notification '{other}' not handled"),
            },
            Message::Response(r) => {
                debug!(
                    "session {session}: response to id {:?} ignored: the gateway sent it no request",
                    r.id
                );
            }
        }
    }

    /// Answers a client request, or routes it and returns `None` (the backend answers).
    fn client_request(&mut self, session: &str, req: Request) -> Option<Response> {
        let id = req.id.clone();
        let result = match req.method.as_str() {
            "initialize" => Ok(self.initialize(session, req.params.as_deref())),
            "ping" => Ok(jsonrpc::to_raw(&json!({}))),
            "tools/list" => self.tools_list(req.params.as_deref()),
            "tools/call" => return self.tools_call(session, req),
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
        }
        let p: Params = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let version = p
            .protocol_version
            .as_deref()
            .filter(|v| PROTOCOL_VERSIONS.contains(v))
            .unwrap_or(PROTOCOL_VERSIONS[0]);
        let info = p.client_info.unwrap_or_default();
        let client = format!(
            "{} {}",
            info.name.as_deref().unwrap_or("unknown"),
            info.version.as_deref().unwrap_or("")
        )
        .trim()
        .to_string();
        info!(
            "session {session}: initialize from '{client}', protocol {} (asked {})",
            version,
            p.protocol_version.as_deref().unwrap_or("none")
        );
        if let Some(s) = self.sessions.get_mut(session) {
            s.client = client;
        }
        jsonrpc::to_raw(&json!({
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        }))
    }

    fn tools_list(&self, params: Option<&RawValue>) -> Result<Box<RawValue>, ErrorObject> {
        #[derive(Deserialize, Default)]
        struct Params {
            cursor: Option<Value>,
        }
        let p: Params = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        if let Some(cursor) = p.cursor.filter(|c| !c.is_null()) {
            // The gateway sends the whole list in one page, so it never hands out a cursor.
            return Err(ErrorObject::new(
                INVALID_PARAMS,
                format!("invalid cursor {cursor}: tools/list has a single page"),
            ));
        }
        Ok(self.registry.list_result().to_owned())
    }

    fn tools_call(&mut self, session: &str, req: Request) -> Option<Response> {
        let id = req.id.clone();
        let fail = |code, message: String| Some(Response::error(Some(id.clone()), code, message));
        // Only the top level is parsed: the arguments stay raw.
        let mut params: BTreeMap<String, Box<RawValue>> =
            match req.params.as_deref().map(|p| serde_json::from_str(p.get())) {
                Some(Ok(p)) => p,
                _ => {
                    return fail(
                        INVALID_PARAMS,
                        "tools/call: 'params' must be an object with 'name'".into(),
                    );
                }
            };
        let Some(name) = params
            .get("name")
            .and_then(|n| serde_json::from_str::<String>(n.get()).ok())
        else {
            return fail(
                INVALID_PARAMS,
                "tools/call: 'params.name' must be a string".into(),
            );
        };
        let Some(entry) = self.registry.lookup(&name) else {
            return fail(INVALID_PARAMS, format!("unknown tool '{name}'"));
        };
        let backend = entry.backend;
        params.insert("name".into(), jsonrpc::to_raw(&entry.original));
        let request = Request {
            id: Id::number(0),
            method: req.method,
            params: Some(jsonrpc::to_raw(&params)),
        };
        let why = Pending::Client {
            session: session.to_string(),
            id: id.clone(),
            backend,
        };
        match self.send_to_backend(backend, request, why) {
            Ok(()) => None,
            Err(e) => fail(
                INTERNAL_ERROR,
                format!("backend '{}' {e}", self.slots[backend].spec.name),
            ),
        }
    }

    fn on_backend_message(&mut self, backend: usize, msg: Message) {
        let name = &self.slots[backend].spec.name;
        match msg {
            Message::Response(resp) => {
                let Some(gid) = resp.id.as_ref().and_then(Id::as_u64) else {
                    warn!(
                        "backend '{name}': response without a usable id ignored: {:?}",
                        resp.outcome.err()
                    );
                    return;
                };
                let Some(pending) = self.pending.remove(&gid) else {
                    debug!("backend '{name}': response to unknown id {gid} dropped");
                    return;
                };
                if pending.backend() != backend {
                    warn!(
                        "backend '{name}': answered id {gid}, which was sent to another backend; dropped"
                    );
                    self.pending.insert(gid, pending);
                    return;
                }
                match pending {
                    Pending::Client { session, id, .. } => {
                        let reply = Response {
                            id: Some(id),
                            outcome: resp.outcome,
                        };
                        self.deliver(&session, Message::Response(reply));
                    }
                    Pending::Initialize { .. } => self.initialized(backend, resp.outcome),
                    Pending::ListTools { .. } => self.listed_tools(backend, resp.outcome),
                }
            }
            Message::Request(req) => {
                let reply = if req.method == "ping" {
                    Response::ok(req.id, jsonrpc::to_raw(&json!({})))
                } else {
                    debug!(
                        "backend '{name}': request '{}' is not supported by the gateway",
                        req.method
                    );
                    Response::error(
                        Some(req.id),
                        METHOD_NOT_FOUND,
                        format!("the gateway does not support '{}' from servers", req.method),
                    )
                };
                if let Some(conn) = &self.slots[backend].conn {
                    let _ = conn.tx.send(Message::Response(reply));
                }
            }
            Message::Notification(n) => match n.method.as_str() {
                "notifications/tools/list_changed" => {
                    if self.slots[backend].state == State::Ready {
                        info!("backend '{name}': tool list changed; listing again");
                        self.list_tools(backend, None);
                    }
                }
                other => debug!("backend '{name}': notification '{other}' not forwarded"),
            },
        }
    }

    fn initialized(&mut self, backend: usize, outcome: Result<Box<RawValue>, ErrorObject>) {
        let result = match outcome {
            Ok(r) => r,
            Err(e) => {
                self.fail_backend(
                    backend,
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
        let name = &self.slots[backend].spec.name;
        info!(
            "backend '{name}': initialized: protocol {}, server {}",
            r.protocol_version.as_deref().unwrap_or("?"),
            r.server_info.map(|s| s.to_string()).unwrap_or_default()
        );
        if let Some(conn) = &self.slots[backend].conn {
            let _ = conn.tx.send(Message::Notification(Notification {
                method: "notifications/initialized".into(),
                params: None,
            }));
        }
        let has_tools = r
            .capabilities
            .as_ref()
            .is_some_and(|c| c.contains_key("tools"));
        if has_tools {
            self.list_tools(backend, None);
        } else {
            self.slots[backend].listing.clear();
            self.tools_ready(backend);
        }
    }

    fn list_tools(&mut self, backend: usize, cursor: Option<Value>) {
        let slot = &mut self.slots[backend];
        if cursor.is_none() {
            slot.listing.clear();
            slot.pages = 0;
        }
        slot.pages += 1;
        let params = cursor.map(|c| json!({ "cursor": c }));
        self.request_backend(
            backend,
            "tools/list",
            params.as_ref(),
            Pending::ListTools { backend },
        );
    }

    fn listed_tools(&mut self, backend: usize, outcome: Result<Box<RawValue>, ErrorObject>) {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            tools: Vec<Map<String, Value>>,
            next_cursor: Option<Value>,
        }
        let page = outcome
            .map_err(|e| format!("tools/list failed: {} ({})", e.message, e.code))
            .and_then(|r| {
                serde_json::from_str::<Page>(r.get())
                    .map_err(|e| format!("tools/list returned an unreadable result: {e}"))
            });
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                if self.slots[backend].state == State::Starting {
                    self.fail_backend(backend, e);
                } else {
                    warn!(
                        "backend '{}': {e}; keeping its previous tools",
                        self.slots[backend].spec.name
                    );
                }
                return;
            }
        };
        let slot = &mut self.slots[backend];
        slot.listing.extend(page.tools);
        match page.next_cursor.filter(|c| !c.is_null()) {
            Some(_) if slot.pages >= MAX_PAGES => {
                let e = format!("tools/list still had more pages after {MAX_PAGES}");
                self.fail_backend(backend, e);
            }
            Some(cursor) => self.list_tools(backend, Some(cursor)),
            None => self.tools_ready(backend),
        }
    }

    fn tools_ready(&mut self, backend: usize) {
        let slot = &mut self.slots[backend];
        slot.tools = std::mem::take(&mut slot.listing);
        slot.init_deadline = None;
        if slot.state == State::Starting {
            slot.state = State::Ready;
            let took = slot.started.elapsed().as_secs_f64() * 1000.0;
            console!(
                "  {:<16} {:<15} ready    {:>3} tools  {took:>7.0} ms",
                slot.spec.name,
                slot.spec.transport.type_name(),
                slot.tools.len()
            );
        }
        self.rebuild_registry();
        self.maybe_print_summary();
    }

    /// Marks a backend failed, stops it, and answers everything pending on it.
    fn fail_backend(&mut self, backend: usize, reason: String) {
        let slot = &mut self.slots[backend];
        if matches!(slot.state, State::Failed(_)) {
            return;
        }
        let was = std::mem::replace(&mut slot.state, State::Failed(reason.clone()));
        slot.init_deadline = None;
        let name = slot.spec.name.clone();
        if let Some(conn) = slot.conn.take() {
            self.stopped.extend(conn.stop());
        }
        if was == State::Starting {
            console!(
                "  {:<16} {:<15} FAILED   {reason}",
                name,
                self.slots[backend].spec.transport.type_name()
            );
        } else {
            warn!("backend '{name}': {reason}; its tools are withdrawn");
        }
        let orphaned: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.backend() == backend)
            .map(|(&id, _)| id)
            .collect();
        for gid in orphaned {
            if let Some(Pending::Client { session, id, .. }) = self.pending.remove(&gid) {
                let reply = Response::error(
                    Some(id),
                    INTERNAL_ERROR,
                    format!("backend '{name}' {reason} before answering this request"),
                );
                self.deliver(&session, Message::Response(reply));
            }
        }
        if !self.slots[backend].tools.is_empty() {
            self.slots[backend].tools.clear();
            self.rebuild_registry();
        }
        self.maybe_print_summary();
    }

    fn rebuild_registry(&mut self) {
        let ready: Vec<BackendTools<'_>> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == State::Ready)
            .map(|(i, s)| BackendTools {
                backend: i,
                name: &s.spec.name,
                tools: &s.tools,
            })
            .collect();
        let registry = Registry::build(&ready);
        for note in &registry.notes {
            if !self.registry.notes.contains(note) {
                warn!("{note}");
            }
        }
        let changed = registry.list_result().get() != self.registry.list_result().get();
        self.registry = registry;
        if changed && self.summary_printed {
            info!("tool list changed: {} tools", self.registry.tools().len());
            self.notify_all("notifications/tools/list_changed");
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
            let n = Notification {
                method: method.to_string(),
                params: None,
            };
            self.deliver(&session, Message::Notification(n));
        }
    }

    /// Queues a message on a session's stream. A client whose queue is full is not reading:
    /// it is dropped rather than allowed to hold anyone else up.
    fn deliver(&mut self, session: &str, msg: Message) {
        let Some(s) = self.sessions.get(session) else {
            debug!("session {session}: gone; dropped {}", brief(&msg));
            return;
        };
        match s.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                warn!(
                    "session {session}: client '{}' is not reading its stream (queue full); disconnecting it",
                    s.client
                );
                self.sessions.remove(session);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.sessions.remove(session);
            }
        }
    }

    fn maybe_print_summary(&mut self) {
        if self.summary_printed || self.slots.iter().any(|s| s.state == State::Starting) {
            return;
        }
        self.summary_printed = true;
        let ready = self
            .slots
            .iter()
            .filter(|s| s.state == State::Ready)
            .count();
        let tools = self.registry.tools();
        console!(
            "{ready} of {} backend(s) ready, {} tool(s) exposed:",
            self.slots.len(),
            tools.len()
        );
        for t in tools {
            let backend = &self.slots[t.backend].spec.name;
            let warning = if registry::is_client_safe(&t.exposed) {
                ""
            } else {
                "  (rejected by Claude/OpenAI clients)"
            };
            console!("  {:<40} {backend} / {}{warning}", t.exposed, t.original);
        }
        for note in &self.registry.notes {
            console!("  note: {note}");
        }
        console!("Connect MCP clients to {}", self.opts.client_url);
    }

    fn shutdown(mut self) -> Vec<JoinHandle<()>> {
        info!(
            "hub: shutting down: {} session(s), {} pending request(s)",
            self.sessions.len(),
            self.pending.len()
        );
        self.sessions.clear(); // ends every stream
        let mut threads = std::mem::take(&mut self.stopped);
        for slot in &mut self.slots {
            if let Some(conn) = slot.conn.take() {
                threads.extend(conn.stop());
            }
        }
        threads
    }
}

fn brief(msg: &Message) -> String {
    match msg {
        Message::Request(r) => format!("request '{}'", r.method),
        Message::Notification(n) => format!("notification '{}'", n.method),
        Message::Response(r) => format!("response to {:?}", r.id),
    }
}
