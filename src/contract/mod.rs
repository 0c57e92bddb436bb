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

pub use events::{
    Access, BackendStatus, Gauges, HubEvent, InstanceId, SESSION_ROWS, STATELESS, SessionId,
    SessionStatus, Status,
};
pub use order::Order;
pub use sink::{Outbound, Queue, Queued, Refused, Sink};

use crate::config::BackendSpec;
use crate::jsonrpc::Message;
use crossbeam_channel::Sender;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A transport that can take a message on the sender's own thread when nothing is in its
/// way (a stdio pipe no other thread is writing), saving the hand-off to its writer.
pub trait WriteNow: Send + Sync {
    /// Writes `msg` at once, unless the transport is busy or `queued` shows messages sent
    /// before still on their way through the writer's channel (checked while holding what
    /// the writer holds to write, so nothing sent before is overtaken): then gives it back.
    fn write_now(&self, msg: Message, queued: &AtomicUsize) -> Result<(), Message>;
}

/// Where an instance's messages go: its writer's channel, and, for a transport that can
/// take a message at once, that too. Every message through the channel is counted in
/// `queued` until its writer has written it (`WriteNow`'s rule).
#[derive(Clone)]
pub struct Outlet {
    tx: Sender<Message>,
    now: Option<Arc<dyn WriteNow>>,
    queued: Arc<AtomicUsize>,
}

impl Outlet {
    /// Sends `msg` to the instance, written on this thread when the transport can take it
    /// at once; Err when its writer is gone. The write may wait for the backend to read
    /// (a full pipe): only a thread that may wait for this backend sends so (a router, for
    /// the call it waits the answer of), never the hub.
    pub fn send(&self, msg: Message) -> Result<(), Message> {
        let msg = match &self.now {
            Some(now) => match now.write_now(msg, &self.queued) {
                Ok(()) => return Ok(()),
                Err(msg) => msg,
            },
            None => msg,
        };
        self.queue(msg)
    }

    /// Sends `msg` through the writer's channel, never waiting; Err when the writer is
    /// gone.
    pub fn queue(&self, msg: Message) -> Result<(), Message> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.tx.send(msg).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            e.0
        })
    }
}

/// What the hub holds of a running instance.
pub struct BackendHandle {
    /// Messages for the instance. Dropping every clone closes the child's stdin (or the
    /// connection).
    outlet: Outlet,
    stop: Sender<()>,
    supervisor: Option<JoinHandle<()>>,
    /// The process it runs, when it runs one (the leader of its process tree).
    pub pid: Option<u32>,
}

impl BackendHandle {
    pub fn new(tx: Sender<Message>, stop: Sender<()>, supervisor: JoinHandle<()>) -> BackendHandle {
        BackendHandle {
            outlet: Outlet {
                tx,
                now: None,
                queued: Arc::default(),
            },
            stop,
            supervisor: Some(supervisor),
            pid: None,
        }
    }

    /// `new`, for a transport that can also take messages at once (`WriteNow`); its
    /// writer subtracts each message it takes from the channel from `queued` once written.
    pub fn writing_now(
        tx: Sender<Message>,
        now: Arc<dyn WriteNow>,
        queued: Arc<AtomicUsize>,
        stop: Sender<()>,
        supervisor: JoinHandle<()>,
    ) -> BackendHandle {
        BackendHandle {
            outlet: Outlet {
                tx,
                now: Some(now),
                queued,
            },
            stop,
            supervisor: Some(supervisor),
            pid: None,
        }
    }

    /// Sends `msg` to the instance through its writer (the hub never waits on a
    /// backend); false when its writer is gone.
    pub fn send(&self, msg: Message) -> bool {
        self.outlet.queue(msg).is_ok()
    }

    /// The handle of an instance that runs process `pid`.
    pub fn with_pid(mut self, pid: u32) -> BackendHandle {
        self.pid = Some(pid);
        self
    }

    /// A clone of where its messages go, for the routers.
    pub fn outlet(&self) -> Outlet {
        self.outlet.clone()
    }

    /// Asks the supervisor to stop the instance (close stdin, wait, kill the group) and
    /// gives back its thread, to be joined once every backend has been asked.
    pub fn stop(self) -> Option<JoinHandle<()>> {
        let BackendHandle {
            outlet,
            stop,
            supervisor,
            ..
        } = self;
        drop(outlet); // the writer ends and closes the child's stdin
        let _ = stop.send(());
        supervisor
    }
}
