//! The contract between the hub and the front ends: a session's `Sink`, which the hub
//! offers each message for the client and which never blocks, and `Queue`, the sink most
//! front ends use (a channel to the session's writer, limited by count).

use crate::jsonrpc::{Id, Message};
use crossbeam_channel::{Receiver, Sender, TrySendError};

/// A message for a client, with the client request it belongs to (its reply, or a
/// progress notification or server request sent while it was in flight), so a transport
/// with a stream per request can put it on the right one.
pub struct Outbound {
    pub related: Option<Id>,
    pub msg: Message,
}

/// Why a session's sink did not take a message.
pub enum Refused {
    /// The client is not reading: its queue is full.
    Full,
    /// The client is gone.
    Closed,
}

/// Where a session's messages go: implemented by each front end. `offer` runs on the hub
/// thread, so it must never block.
pub trait Sink: Send {
    fn offer(&self, out: Outbound) -> Result<(), Refused>;
}

/// A client's queue of outgoing messages, limited by count. Unbounded underneath:
/// crossbeam's bounded channels allocate every slot up front (about 100 KiB for 1024
/// messages), which every idle client would pay for; a list channel grows with what is
/// actually queued.
#[derive(Clone)]
pub struct Queue {
    tx: Sender<Outbound>,
    limit: usize,
}

impl Queue {
    pub fn new(limit: usize) -> (Queue, Receiver<Outbound>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Queue { tx, limit }, rx)
    }

    /// Queues `out` unless `limit` messages are waiting already (the client is not
    /// reading); gives it back when refused.
    pub fn push(&self, out: Outbound) -> Result<(), TrySendError<Outbound>> {
        if self.tx.len() >= self.limit {
            return Err(TrySendError::Full(out));
        }
        self.tx
            .send(out)
            .map_err(|e| TrySendError::Disconnected(e.0))
    }
}

impl Sink for Queue {
    fn offer(&self, out: Outbound) -> Result<(), Refused> {
        self.push(out).map_err(|e| match e {
            TrySendError::Full(_) => Refused::Full,
            TrySendError::Disconnected(_) => Refused::Closed,
        })
    }
}
