//! What the hub hears and what it answers: the events front and back ends send it, and
//! the status it reports. The contract between the hub and everything else.

use super::{Order, Refused, Sink};
use crate::config::BackendSpec;
use crate::jsonrpc::Message;
use crossbeam_channel::Sender;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

pub type SessionId = String;
/// A running copy of a backend; never reused, so late events of a stopped one are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InstanceId(pub u64);

impl std::fmt::Display for InstanceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The transport of a session that serves one 2026-07-28 request. Such sessions come and
/// go with their requests: the hub logs their opening and closing at debug level.
pub const STATELESS: &str = "streamable-http-2026";

/// What a session may see, and on whose behalf: the profile it was opened at (its place
/// in the config's `profiles`; none: the whole catalogue) and the label of the client
/// token it was opened with (never the token).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    pub profile: Option<usize>,
    pub token: Option<Arc<str>>,
}

/// Everything that happens, as the hub hears of it.
pub enum HubEvent {
    /// A client session started; its messages go to `sink`.
    ClientOpened {
        session: SessionId,
        sink: Box<dyn Sink>,
        /// `sse`, `streamable-http` or `stdio`, for the metrics.
        transport: &'static str,
        access: Access,
    },
    FromClient {
        session: SessionId,
        msg: Message,
        /// The session's count of messages sent to the hub, which the hub advances once it
        /// has handled this one (a router routes a call itself only when the hub has handled
        /// everything the session sent before, so a call never overtakes, say, the
        /// `notifications/roots/list_changed` before it).
        order: Option<Arc<Order>>,
    },
    /// The client's stream ended (it closed or could not be written).
    ClientGone {
        session: SessionId,
    },
    /// A session's sink refused an answer a backend's reader offered it.
    Refused {
        session: SessionId,
        why: Refused,
    },
    FromBackend {
        instance: InstanceId,
        msg: Message,
        /// The backend sent it on the stream of its answer to this (gateway) request id.
        during: Option<crate::jsonrpc::Id>,
    },
    /// `/readyz`, `/metrics` and the status page ask for the state of things; `full`
    /// adds the exposed tools and the list of sessions (the page, `tools`), which
    /// the probes do not pay for.
    Status {
        reply: Sender<Status>,
        full: bool,
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
    /// The exposed tools: name, backend, original name, description (`full` only).
    pub tools: Vec<Value>,
    pub backends: Vec<BackendStatus>,
    /// Sessions by the profile they see (`""`: the whole catalogue).
    pub profiles: std::collections::BTreeMap<String, usize>,
    /// The open sessions, newest first, at most `SESSION_ROWS` (2026-07-28 requests,
    /// which are sessions of one request, are only counted; `full` only).
    pub sessions: Vec<SessionStatus>,
    /// Names and URIs that were rewritten or contested.
    pub notes: Vec<String>,
    /// The gauges for `/metrics` (the counters are the front end's to read: `Router`).
    pub gauges: Gauges,
}

/// Most sessions `Status::sessions` lists.
pub const SESSION_ROWS: usize = 200;

/// One open session, as the status page lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// The end of its id, as its thread names show it (enough to find it in the log; the
    /// whole id is a credential).
    pub id: String,
    pub transport: &'static str,
    /// The client's name and version from `initialize` (empty before it).
    pub client: String,
    pub protocol: &'static str,
    /// The profile it sees (None: the whole catalogue) and its client token's label.
    pub profile: Option<String>,
    pub token: Option<String>,
    pub age_seconds: u64,
    /// Its requests waiting for a backend's answer.
    pub in_flight: usize,
    /// Instances of per-session backends it has of its own.
    pub instances: usize,
}

/// What the hub knows now, for the gauges of `/metrics`.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Client sessions by transport.
    pub sessions: std::collections::BTreeMap<&'static str, usize>,
    /// Client requests waiting for a backend's answer.
    pub in_flight: usize,
    /// Each live backend in file order: name, restarts, ready.
    pub backends: Vec<(String, u32, bool)>,
}

/// One backend as `/readyz`, `/status.json` and `check` show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatus {
    pub name: String,
    /// Its transport: `stdio`, `sse`, `streamable-http`, `builtin`.
    #[serde(rename = "type")]
    pub transport: &'static str,
    /// `starting`, `ready`, `restarting`, `failed`, `sleeping`, `waking`, ...
    pub state: &'static str,
    pub required: bool,
    /// Why it is restarting or failed.
    pub reason: Option<String>,
    pub restarts: u32,
    pub tools: usize,
    pub on_demand: bool,
    /// Its running processes' pids (each the root of what it started).
    #[serde(skip)]
    pub pids: Vec<u32>,
    /// What they hold (`processes`, `rssKiB`, `cpuSeconds`): filled in by the status page,
    /// which reads /proc on its own thread, not the hub.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::procfs::Usage>,
    /// Calls answered, and the median of the recent ones' times.
    pub calls: u64,
    pub p50_ms: Option<f64>,
    /// Its `serverInfo`, from when it last ran.
    pub server: Option<Value>,
    /// A per-session backend's instances: whose each is, and how long idle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<Value>>,
    /// The last error of a call to it (`/status.json` adds it from the counters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Value>,
}
