//! How many sessions the front end holds, for both transports: the session cap, and the
//! rule for unused sessions (opened, then no request but `initialize`). An unused session is
//! ended after `--session-unused`, and at the cap the longest-open one unused for at least
//! a quarter of that makes room for a new client rather than everyone getting 503 (younger
//! ones are left their time to send a first request, so a flood of new connections cannot
//! push out clients in the middle of their handshake). Failing that, the Streamable HTTP
//! session idle longest with no stream open and nothing in flight makes room, once idle
//! for `--session-unused`: a session that sent one `ping` is no longer a seat held for
//! half an hour. A legacy session's stream is open for as long as it lives, so legacy
//! sessions in use are not evicted.

use super::server::Response;
use super::streamable::{self, StreamSession};
use super::{Shared, draining_refusal};
use crate::contract::{HubEvent, SessionId};
use log::{info, warn};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A legacy session whose stream is open.
pub struct Live {
    opened: Instant,
    /// It sent a request other than `initialize`.
    used: bool,
    /// The label of the client token that opened it: only that token may post to it.
    pub token: Option<std::sync::Arc<str>>,
}

impl Live {
    pub fn new(token: Option<std::sync::Arc<str>>) -> Live {
        Live {
            opened: Instant::now(),
            used: false,
            token,
        }
    }
}

/// The legacy sessions whose stream is open, so a POST for any other gets 404 at once.
pub type LiveSessions = Arc<Mutex<HashMap<SessionId, Live>>>;

pub fn mark_used(live: &LiveSessions, session: &str) {
    if let Some(s) = live.lock().expect("session set lock").get_mut(session) {
        s.used = true;
    }
}

/// An unused session of either transport.
enum Unused {
    Legacy(SessionId),
    Streamable(Arc<StreamSession>),
}

/// The unused sessions, longest open first.
fn unused(shared: &Shared) -> Vec<(Instant, Unused)> {
    let mut found: Vec<(Instant, Unused)> = shared
        .live
        .lock()
        .expect("session set lock")
        .iter()
        .filter(|(_, s)| !s.used)
        .map(|(id, s)| (s.opened, Unused::Legacy(id.clone())))
        .collect();
    found.extend(
        streamable::unused(shared)
            .into_iter()
            .map(|(opened, s)| (opened, Unused::Streamable(s))),
    );
    found.sort_by_key(|(opened, _)| *opened);
    found
}

fn end(shared: &Shared, session: Unused, why: &str) {
    match session {
        Unused::Streamable(s) => streamable::end_session(shared, &s, why),
        Unused::Legacy(id) => {
            // The hub lets go of the session's queue, and its writer ends the stream
            // (with a retry hint).
            shared.live.lock().expect("session set lock").remove(&id);
            info!("session {id}: ended: {why}");
            let _ = shared.hub.send(HubEvent::ClientGone { session: id });
        }
    }
}

/// Ends the sessions unused for `--session-unused`.
pub fn reap_unused(shared: &Shared) {
    let limit = shared.opts.session_unused;
    for (opened, session) in unused(shared) {
        if opened.elapsed() < limit {
            break;
        }
        let why = format!("no request but initialize in {} s", limit.as_secs());
        end(shared, session, &why);
    }
}

/// The 503 for a session that may not start: the gateway is draining, or at its session
/// limit (which counts both transports) with no unused session to end; None if it may.
pub fn no_room(shared: &Shared) -> Option<Response> {
    if shared.draining.load(Ordering::SeqCst) {
        return Some(draining_refusal(shared));
    }
    let live = shared.live.lock().map(|l| l.len()).unwrap_or(0);
    let max = shared.opts.max_sessions;
    if live + shared.streams.count() < max {
        return None;
    }
    let grace = shared.opts.session_unused / 4;
    if let Some((_, oldest)) = unused(shared)
        .into_iter()
        .next()
        .filter(|(opened, _)| opened.elapsed() >= grace)
    {
        end(
            shared,
            oldest,
            &format!(
                "made room for a new client at the {max}-session limit (it had sent no request but initialize)"
            ),
        );
        return None;
    }
    let idle = shared.opts.session_unused;
    if let Some(s) = streamable::longest_idle(shared, idle) {
        streamable::end_session(
            shared,
            &s,
            &format!(
                "made room for a new client at the {max}-session limit (idle for over {} s with no stream open and nothing in flight)",
                idle.as_secs()
            ),
        );
        return None;
    }
    warn!(
        "http: refused a new session: {max} sessions is the limit, none has been unused for {} s, and none has been idle for {} s without a stream",
        grace.as_secs(),
        idle.as_secs()
    );
    Some(Response::text(503, "too many sessions; try again later").with_header("Retry-After", "5"))
}
