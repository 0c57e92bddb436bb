//! The contract between the hub and the front ends: a session's `Sink`, which the hub
//! offers each message for the client and which never blocks, and `Queue`, the sink most
//! front ends use (a channel to the session's writer, limited by count).

use crate::jsonrpc::{Id, Message};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A message for a client, with the client request it belongs to (its reply, or a
/// progress notification or server request sent while it was in flight), so a transport
/// with a stream per request can put it on the right one.
pub struct Outbound {
    pub related: Option<Id>,
    pub msg: Message,
}

/// Why a session's sink did not take a message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refused {
    /// The client is not reading: its queue is full.
    Full,
    /// The client is gone.
    Closed,
}

/// Where a session's messages go: implemented by each front end. `offer` runs on the hub
/// thread, so it must never block.
pub trait Sink: Send + Sync {
    fn offer(&self, out: Outbound) -> Result<(), Refused>;
}

/// Bytes a client's queue may hold besides one message of the largest size
/// (`maxMessageSize`'s default) before the client counts as not reading and is dropped.
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;

impl Outbound {
    /// About how many bytes the message holds: its payload and the envelope around it.
    pub fn weight(&self) -> usize {
        self.msg.payload_len() + 128
    }
}

/// A byte budget shared by what one queue holds: a message is charged when queued and
/// given back when the writer drops it, written or not.
#[derive(Clone)]
pub struct Budget {
    queued: Arc<AtomicUsize>,
    max: usize,
}

/// Bytes charged to a budget, given back on drop.
pub struct Charge {
    queued: Arc<AtomicUsize>,
    bytes: usize,
}

impl Budget {
    pub fn new(max: usize) -> Budget {
        Budget {
            queued: Arc::default(),
            max,
        }
    }

    /// Charges `bytes`, unless that would take the budget past its limit with something
    /// already queued (a single message of any allowed size always fits an empty queue).
    pub fn charge(&self, bytes: usize) -> Option<Charge> {
        let before = self.queued.fetch_add(bytes, Ordering::SeqCst);
        if before > 0 && before + bytes > self.max {
            self.queued.fetch_sub(bytes, Ordering::SeqCst);
            return None;
        }
        Some(Charge {
            queued: self.queued.clone(),
            bytes,
        })
    }

    /// Charges `bytes` whatever the limit (a small error that replaces what did not fit).
    pub fn charge_anyway(&self, bytes: usize) -> Charge {
        self.queued.fetch_add(bytes, Ordering::SeqCst);
        Charge {
            queued: self.queued.clone(),
            bytes,
        }
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// A message in a queue, with its charge: read it like an `Outbound`; dropping it gives
/// its bytes back.
pub struct Queued {
    out: Outbound,
    _charge: Charge,
}

impl Queued {
    pub fn into_inner(self) -> Outbound {
        self.out
    }
}

impl std::ops::Deref for Queued {
    type Target = Outbound;

    fn deref(&self) -> &Outbound {
        &self.out
    }
}

/// A client's queue of outgoing messages, limited by count and by bytes. Unbounded
/// underneath: crossbeam's bounded channels allocate every slot up front (about 100 KiB
/// for 1024 messages), which every idle client would pay for; a list channel grows with
/// what is actually queued.
#[derive(Clone)]
pub struct Queue {
    tx: Sender<Queued>,
    limit: usize,
    budget: Budget,
}

impl Queue {
    /// A queue of at most `limit` messages and `DEFAULT_MAX_MESSAGE + QUEUE_BYTES` bytes.
    pub fn new(limit: usize) -> (Queue, Receiver<Queued>) {
        Queue::with_limits(limit, crate::config::DEFAULT_MAX_MESSAGE + QUEUE_BYTES)
    }

    /// A queue of at most `limit` messages and `bytes` bytes (one message of any size
    /// always fits an empty queue).
    pub fn with_limits(limit: usize, bytes: usize) -> (Queue, Receiver<Queued>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let budget = Budget::new(bytes);
        (Queue { tx, limit, budget }, rx)
    }

    /// What it holds now: messages and bytes.
    pub fn backlog(&self) -> (usize, usize) {
        (self.tx.len(), self.budget.queued.load(Ordering::SeqCst))
    }

    /// Queues `out` unless `limit` messages or the byte budget are taken already (the
    /// client is not reading); gives it back when refused.
    pub fn push(&self, out: Outbound) -> Result<(), TrySendError<Outbound>> {
        if self.tx.len() >= self.limit {
            return Err(TrySendError::Full(out));
        }
        let Some(charge) = self.budget.charge(out.weight()) else {
            return Err(TrySendError::Full(out));
        };
        self.tx
            .send(Queued {
                out,
                _charge: charge,
            })
            .map_err(|e| TrySendError::Disconnected(e.0.into_inner()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn result(bytes: usize) -> Outbound {
        let text = format!("\"{}\"", "x".repeat(bytes));
        Outbound {
            related: None,
            msg: Message::Response(crate::jsonrpc::Response {
                id: Some(Id::number(1)),
                outcome: Ok(RawValue::from_string(text).unwrap()),
            }),
        }
    }

    #[test]
    fn a_queue_is_limited_by_bytes_and_gives_them_back_as_messages_are_taken() {
        let (q, rx) = Queue::new(1024);
        let max = crate::config::DEFAULT_MAX_MESSAGE;
        // One message of the largest size always fits an empty queue.
        assert!(q.push(result(max)).is_ok());
        assert!(q.push(result(QUEUE_BYTES - 1000)).is_ok());
        assert!(matches!(q.push(result(2000)), Err(TrySendError::Full(_))));
        assert_eq!(q.budget.queued(), max + QUEUE_BYTES - 1000 + 4 + 2 * 128);
        let first = rx.recv().unwrap();
        assert_eq!(first.weight(), max + 2 + 128);
        drop(first);
        assert!(q.push(result(2000)).is_ok());
        drop(rx);
        assert!(matches!(
            q.push(result(1)),
            Err(TrySendError::Disconnected(_))
        ));
        assert_eq!(q.budget.queued(), 0, "what the channel held was given back");
    }

    #[test]
    fn a_queue_is_limited_by_count() {
        let (q, _rx) = Queue::new(2);
        assert!(q.push(result(1)).is_ok() && q.push(result(1)).is_ok());
        assert!(matches!(q.push(result(1)), Err(TrySendError::Full(_))));
    }
}
