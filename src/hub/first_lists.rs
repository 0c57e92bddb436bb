//! Complete first lists: right after the gateway starts, a client that lists once and never
//! looks again (many do, ignoring `list_changed`) would see only the backends that happened
//! to be up. So until every backend has finished its first start (ready or failed), or
//! `startupWait` has passed, list requests wait here and are answered when that happens.
//! So do calls of a tool or prompt no ready backend has yet (a client that knows the name
//! from an earlier session need not list first). `initialize`, `ping` and everything else,
//! calls to backends already up included, are answered at once; backends that come later
//! (restarts, reloads) still announce themselves with `list_changed`.

use super::{Hub, SHUTTING_DOWN, SessionId};
use crate::jsonrpc::{INTERNAL_ERROR, Message, Request, Response};
use crate::registry::Kind;
use log::info;
use std::time::{Duration, Instant};

/// The list requests waiting for the first start to settle.
pub(super) struct FirstLists {
    /// Until when lists wait; `None` once they no longer do.
    until: Option<Instant>,
    held: Vec<(SessionId, Request)>,
}

impl FirstLists {
    /// How many requests wait here.
    pub(super) fn held(&self) -> usize {
        self.held.len()
    }

    pub(super) fn new(wait: Duration) -> FirstLists {
        FirstLists {
            until: (!wait.is_zero()).then(|| Instant::now() + wait),
            held: Vec::new(),
        }
    }
}

/// The methods whose answers are the aggregated lists.
fn is_list(method: &str) -> bool {
    matches!(
        method,
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list"
    )
}

impl Hub {
    /// Keeps a list request, or a call of a name nobody serves yet, until the first start
    /// settles; gives it back when it is answered at once.
    pub(super) fn hold_list(&mut self, session: &str, req: Request) -> Option<Request> {
        if self.first_lists.until.is_none() || !(is_list(&req.method) || self.unknown_yet(&req)) {
            return Some(req);
        }
        self.first_lists.held.push((session.to_string(), req));
        None
    }

    /// Whether the first start has settled (or the wait is over).
    pub(super) fn first_lists_done(&self) -> bool {
        self.first_lists.until.is_none()
    }

    /// A `tools/call` or `prompts/get` of a name that no ready backend serves (yet).
    fn unknown_yet(&self, req: &Request) -> bool {
        #[derive(serde::Deserialize)]
        struct Named {
            name: String,
        }
        let kind = match req.method.as_str() {
            "tools/call" => Kind::Tools,
            "prompts/get" => Kind::Prompts,
            _ => return false,
        };
        req.params
            .as_deref()
            .and_then(|p| serde_json::from_str::<Named>(p.get()).ok())
            .is_some_and(|n| self.registry.catalog(kind).lookup(&n.name).is_none())
    }

    /// Answers the held list requests once every backend has settled (`settled`) or the
    /// wait is over; from then on lists are answered at once.
    pub(super) fn release_lists(&mut self, settled: bool) {
        let Some(until) = self.first_lists.until else {
            return;
        };
        if !settled && Instant::now() < until {
            return;
        }
        self.first_lists.until = None;
        // From now on calls may be routed where they arrive.
        self.publish_routes();
        let held = std::mem::take(&mut self.first_lists.held);
        if !settled && !held.is_empty() {
            info!(
                "startupWait is over with backends still starting: {} held request(s) answered with what is ready",
                held.len()
            );
        }
        for (session, req) in held {
            if !self.sessions.contains_key(&session) {
                continue;
            }
            if let Some(reply) = self.client_request(&session, req) {
                self.deliver(&session, Message::Response(reply));
            }
        }
    }

    /// At shutdown: held lists get what there is; a held call, which would now reach no
    /// backend, is told the gateway is stopping (not that its tool is unknown).
    pub(super) fn release_at_shutdown(&mut self) {
        let held = std::mem::take(&mut self.first_lists.held);
        let (lists, calls) = held.into_iter().partition(|(_, r)| is_list(&r.method));
        self.first_lists.held = lists;
        for (session, req) in calls {
            let reply = Response::error(Some(req.id), INTERNAL_ERROR, SHUTTING_DOWN);
            self.deliver(&session, Message::Response(reply));
        }
        self.release_lists(true);
    }
}
