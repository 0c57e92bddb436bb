//! The contracts between the hub and the ends around it, kept apart from all three so
//! each depends on them and none on another's insides: the events the hub hears and the
//! status it reports (`events`), a session's sink (`sink`), the order of one producer's
//! messages (`order`), and here what a backend's threads and the hub hold of each other
//! (`Inbox`, `BackendHandle`) and how the hub starts a backend (`Spawner`).
//!
//! Dependencies point one way: `http`, `stdio` and `backend` → `contract` ← `hub`;
//! the front ends also use the hub's `Router`; the hub uses no transport.

pub mod events;
pub mod order;
pub mod sink;

pub use events::{Access, HubEvent, InstanceId, STATELESS, SessionId, Status};
pub use order::Order;
pub use sink::{Outbound, Queue, Queued, Refused, Sink};

use crate::config::BackendSpec;
use crate::jsonrpc::Message;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;

/// MCP's log levels from least to most severe (`logging/setLevel`, `notifications/message`,
/// and in 2026-07-28 `_meta`'s `logLevel`).
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Where a log level stands in `LOG_LEVELS` (0 for debug), if it is one.
pub fn log_rank(level: &str) -> Option<usize> {
    LOG_LEVELS.iter().position(|l| *l == level)
}

/// Protocol versions the gateway speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// Where one backend instance's threads hand what they read and how it ended. The hub's
/// implementation completes plain answers on the calling thread and queues the rest.
pub trait Inbox: Send + Sync {
    /// A message the instance sent; false when the hub is gone (the reader may stop).
    fn message(&self, msg: Message) -> bool;
    /// A message the instance sent on the stream of its answer to `request` (a Streamable
    /// HTTP backend's POST response): a request to a client there is that call's.
    fn message_during(&self, msg: Message, request: &crate::jsonrpc::Id) -> bool {
        let _ = request;
        self.message(msg)
    }
    /// The instance's process or connection ended by itself; `reason` says how.
    fn exited(&self, reason: String);
}

/// Starts an instance of a backend: the real one (`backend::start_for`) or a test's.
pub type Spawner = dyn Fn(&BackendSpec, Arc<dyn Inbox>) -> Result<BackendHandle, String> + Send;

/// What the hub holds of a running instance.
pub struct BackendHandle {
    /// Messages for the instance. Dropping it closes the child's stdin (or the connection).
    pub tx: Sender<Message>,
    stop: Sender<()>,
    supervisor: Option<JoinHandle<()>>,
}

impl BackendHandle {
    pub fn new(tx: Sender<Message>, stop: Sender<()>, supervisor: JoinHandle<()>) -> BackendHandle {
        BackendHandle {
            tx,
            stop,
            supervisor: Some(supervisor),
        }
    }

    /// Asks the supervisor to stop the instance (close stdin, wait, kill the group) and
    /// gives back its thread, to be joined once every backend has been asked.
    pub fn stop(self) -> Option<JoinHandle<()>> {
        let BackendHandle {
            tx,
            stop,
            supervisor,
        } = self;
        drop(tx); // the writer ends and closes the child's stdin
        let _ = stop.send(());
        supervisor
    }
}
