//! The order of one producer's messages (a backend instance's reader, or a session's
//! router) as the hub has handled them: a reply completed outside the hub must never
//! overtake a message of the same producer still on its way through the hub.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// One instance's reader and the hub agree on the order of its messages: the reader counts
/// what it sent the hub, the hub what it has handled.
pub struct Order {
    sent: AtomicU64,
    handled: AtomicU64,
    /// Answers may be completed by the reader (no concurrency limit on the backend).
    direct: AtomicBool,
    /// When the reader last completed a reply itself (milliseconds after `born`), for the
    /// hub's health pings, which go only to backends that have been quiet.
    born: Instant,
    heard: AtomicU64,
}

impl Order {
    pub fn new(direct: bool) -> Arc<Order> {
        Arc::new(Order {
            sent: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            direct: AtomicBool::new(direct),
            born: Instant::now(),
            heard: AtomicU64::new(0),
        })
    }

    /// When the reader last completed a reply itself, if ever.
    pub fn heard(&self) -> Option<Instant> {
        match self.heard.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.born + std::time::Duration::from_millis(ms)),
        }
    }

    /// The reader is about to send the hub a message of this instance.
    pub fn sending(&self) {
        self.sent.fetch_add(1, Ordering::AcqRel);
    }

    /// The hub has handled one.
    pub fn handled(&self) {
        self.handled.fetch_add(1, Ordering::AcqRel);
    }

    pub fn set_direct(&self, direct: bool) {
        self.direct.store(direct, Ordering::Relaxed);
    }

    /// Whether the hub has handled everything the reader (or session) sent it.
    pub fn caught_up(&self) -> bool {
        self.handled.load(Ordering::Acquire) == self.sent.load(Ordering::Acquire)
    }

    /// Whether the reader may complete an answer itself now: answers may go direct, and
    /// the hub has handled everything the reader sent it before.
    pub fn may_complete(&self) -> bool {
        self.direct.load(Ordering::Relaxed) && self.caught_up()
    }

    /// The reader has just completed a reply itself.
    pub fn heard_now(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard.store(ms.max(1), Ordering::Relaxed);
    }
}
