//! Requests routed where they arrive. The thread that read a client's `tools/call` (an
//! HTTP connection's, or the stdio reader) routes it itself when it is the common case,
//! from snapshots the hub publishes: the exposed tools with the instance that serves each,
//! and each initialized session's sink and protocol version. It takes a gateway id,
//! registers the pending entry and hands the request to the backend's writer: no hop
//! through the hub. Everything else (other methods, a backend still starting, per-session
//! or concurrency-limited backends, the first start not settled, a session not yet
//! initialized) goes to the hub as before.
//!
//! An instance's `alive` flag is set false by the hub under the pending table's lock
//! before it answers what waits on that instance, and a router registers only under the
//! same lock after checking the flag: so an entry is either swept with the others or never
//! made, and every request still gets exactly one answer.

use super::call_params::CallParams;
use super::pending::{After, AuditCall, ClientCall, GatewayId, Pending};
use super::replies::Replies;
use super::{Hub, HubEvent, InstanceId, SessionId, Sink, State};
use crate::config::Scope;
use crate::contract::Order;
use crate::jsonrpc::{Message, Request};
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Where each exposed tool goes, while its backend can take calls without the hub.
#[derive(Default)]
pub(super) struct Routes {
    tools: HashMap<String, Target>,
    /// Every exposed tool's arguments mirrored into `Mcp-Param-*` headers (2026-07-28).
    mirrored: HashMap<String, crate::modern::Mirrored>,
    /// The exposed tools a backend takes as tasks (2025-11-25 `execution.taskSupport`):
    /// true where it takes them only so.
    tasks: HashMap<String, bool>,
    /// The tools each profile's sessions may call (by the profile's place).
    profiles: Vec<Arc<std::collections::HashSet<String>>>,
}

struct Target {
    instance: InstanceId,
    alive: Arc<AtomicBool>,
    writer: crate::contract::Outlet,
    original: Arc<str>,
    /// `tools/call 'original'`, for a timeout's message.
    what: Arc<str>,
    timeout: Duration,
    max_timeout: Duration,
}

/// What a router needs of an initialized session.
pub(super) struct SessionView {
    pub(super) sink: Arc<dyn Sink>,
    pub(super) version: &'static str,
    pub(super) client: Arc<str>,
    /// Cleared by the hub under the pending table's lock when the session ends, as an
    /// instance's is.
    pub(super) alive: Arc<AtomicBool>,
    /// What the session sent the hub, and what the hub has handled of it.
    pub(super) order: Arc<Order>,
    /// The profile it sees the catalogue through (its calls are checked against it), with
    /// its name and the client token's label, for the audit.
    pub(super) profile: Option<(usize, Arc<str>)>,
    pub(super) token: Option<Arc<str>>,
}

/// The snapshots, kept in `Replies`.
#[derive(Default)]
pub(super) struct Published {
    routes: RwLock<Arc<Routes>>,
    sessions: RwLock<HashMap<SessionId, Arc<SessionView>>>,
}

/// A front end's way to the hub and to the backends: every client message goes through it.
#[derive(Clone)]
pub struct Router {
    replies: Arc<Replies>,
    hub: Sender<HubEvent>,
}

impl Router {
    /// The request counters and latencies, for `/metrics` and the status page.
    pub fn metrics(&self) -> Arc<std::sync::Mutex<crate::metrics::Metrics>> {
        self.replies.metrics.clone()
    }

    /// Routes `msg` here when it is a `tools/call` the snapshots cover and the hub has
    /// handled everything the session sent before; otherwise hands it to the hub. Err when
    /// the hub is gone (the gateway is stopping).
    pub fn dispatch(&self, session: &str, msg: Message) -> Result<(), ()> {
        let view = {
            let sessions = self
                .replies
                .published
                .sessions
                .read()
                .unwrap_or_else(|p| p.into_inner());
            sessions.get(session).cloned()
        };
        let msg = match (&view, msg) {
            (Some(v), Message::Request(req))
                if req.method == "tools/call" && v.order.caught_up() =>
            {
                match self.call(v, session, req) {
                    Ok(()) => return Ok(()),
                    Err(req) => Message::Request(req),
                }
            }
            (_, msg) => msg,
        };
        let order = view.map(|v| {
            v.order.sending();
            v.order.clone()
        });
        let event = HubEvent::FromClient {
            session: session.to_string(),
            msg,
            order,
        };
        self.hub.send(event).map_err(|_| ())
    }

    fn call(&self, view: &SessionView, session: &str, req: Request) -> Result<(), Request> {
        let published = &self.replies.published;
        let routes = published.routes();
        // Read from the params' text, and the backend's params written in one buffer: no
        // map of them is built (`call_params`).
        let routed = req.params.as_deref().and_then(|raw| {
            let params = CallParams::parse(raw.get())?;
            let name = params.name()?;
            // A call made as a task gets its task named for the client: the hub's work. So
            // does a call its profile does not reach (the hub answers it as unknown) and
            // the tools of a catalogue (which no profile's names hold).
            if params.get("task").is_some() {
                return None;
            }
            let reaches = |(p, _): &(usize, Arc<str>)| {
                routes
                    .profiles
                    .get(*p)
                    .is_some_and(|names| names.contains(name.as_ref()))
            };
            if !view.profile.as_ref().is_none_or(reaches) {
                return None;
            }
            let target = routes.tools.get(name.as_ref())?;
            let gid = GatewayId(self.replies.alloc_id());
            let (forwarded, progress) = params.rewritten(&target.original, gid.0);
            let audit = self.replies.audit().map(|a| {
                let mut call = AuditCall::new(
                    a,
                    view.client.clone(),
                    name.into_owned(),
                    target.original.clone(),
                    params.get("arguments"),
                );
                call.token = view.token.clone();
                call.profile = view.profile.as_ref().map(|(_, n)| n.to_string());
                call
            });
            Some((target, gid, forwarded, progress, audit))
        });
        let Some((target, gid, forwarded, progress, audit)) = routed else {
            return Err(req);
        };
        let request = Request {
            id: gid.to_id(),
            method: req.method.clone(),
            params: Some(forwarded),
        };
        let params = {
            let mut table = self.replies.pending();
            // A duplicate id, or an instance being ended: the hub says what happens.
            if table.check_new(session, &req.id).is_err()
                || !target.alive.load(Ordering::SeqCst)
                || !view.alive.load(Ordering::SeqCst)
            {
                return Err(req);
            }
            // The client's id and method move into the entry, which gives them back if
            // the request cannot be sent.
            let Request { id, method, params } = req;
            let entry = Pending::client(ClientCall {
                session: session.to_string(),
                id,
                instance: target.instance,
                method,
                progress,
                after: After::Nothing,
                timeout: target.timeout,
                max_timeout: target.max_timeout,
                what: target.what.clone(),
                audit,
                sink: Some(view.sink.clone()),
                version: view.version,
            });
            table.insert(gid, entry);
            params
        };
        if target.writer.send(Message::Request(request)).is_err() {
            // Its writer is gone; the entry goes too, and the hub routes the request (unless
            // the instance's end has answered it already).
            let entry = self.replies.pending().remove(gid);
            let Some(Pending::Client { id, method, .. }) = entry else {
                return Ok(());
            };
            return Err(Request { id, method, params });
        }
        self.replies.metrics().routed += 1;
        Ok(())
    }
}

impl Published {
    fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_routes(&self, routes: Routes) {
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(routes);
    }

    pub(super) fn open(&self, session: &str, view: SessionView) {
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        sessions.insert(session.to_string(), Arc::new(view));
    }

    /// Forgets every route and session (at shutdown): the sinks and the backends' writers
    /// they hold must go, so streams end and backends see their stdin close.
    pub(super) fn clear(&self) {
        self.set_routes(Routes::default());
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Forgets a session; returns its flag, for the hub to clear under the table's lock.
    pub(super) fn close(&self, session: &str) -> Option<Arc<AtomicBool>> {
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        sessions.remove(session).map(|v| v.alive.clone())
    }
}

impl Router {
    /// The arguments of `tool` that 2026-07-28 clients mirror into `Mcp-Param-*` headers.
    pub fn mirrored(&self, tool: &str) -> Option<crate::modern::Mirrored> {
        let routes = self.replies.published.routes();
        routes.mirrored.get(tool).cloned()
    }

    /// Whether `tool` may run as a task: `Some(true)` when only so, `None` when never.
    pub fn task_support(&self, tool: &str) -> Option<bool> {
        self.replies.published.routes().tasks.get(tool).copied()
    }
}

impl Hub {
    /// The handle front ends route requests with.
    pub fn router(&self) -> Router {
        Router {
            replies: self.replies.clone(),
            hub: self.events_tx.clone(),
        }
    }

    /// Publishes where each tool can be routed without the hub: tools of shared backends
    /// that are ready, have no concurrency limit and whose instance is up, once the first
    /// start has settled (until then calls wait in the hub).
    pub(super) fn publish_routes(&self) {
        let mut routes = Routes {
            profiles: self.reachable_tools(),
            ..Routes::default()
        };
        let tools = self.registry.catalog(crate::registry::Kind::Tools);
        for (entry, item) in tools.entries().iter().zip(tools.items()) {
            let tool = serde_json::from_str::<serde_json::Value>(item.get()).unwrap_or_default();
            let schema = crate::modern::mirrored_params(&tool["inputSchema"]);
            if !schema.is_empty() {
                routes.mirrored.insert(entry.exposed.clone(), schema.into());
            }
            match tool["execution"]["taskSupport"].as_str() {
                Some("optional") => routes.tasks.insert(entry.exposed.clone(), false),
                Some("required") => routes.tasks.insert(entry.exposed.clone(), true),
                _ => None,
            };
        }
        if self.first_lists_done() {
            for entry in self.registry.tools() {
                let backend = &self.backends[entry.backend];
                if backend.state != State::Ready
                    || backend.spec.scope != Scope::Shared
                    || backend.spec.policy.max_concurrent.is_some()
                {
                    continue;
                }
                let Some(inst) = backend.source.and_then(|id| self.instances.get(&id)) else {
                    continue;
                };
                let (Some(conn), true) = (&inst.conn, inst.ready) else {
                    continue;
                };
                let policy = &backend.spec.policy;
                routes.tools.insert(
                    entry.exposed.clone(),
                    Target {
                        instance: backend.source.unwrap_or_default(),
                        alive: inst.alive.clone(),
                        writer: conn.outlet(),
                        original: Arc::from(entry.original.as_str()),
                        what: Arc::from(format!("tools/call '{}'", entry.original)),
                        timeout: policy.timeout_for(Some(&entry.original)),
                        max_timeout: policy.max_timeout,
                    },
                );
            }
        }
        self.replies.published.set_routes(routes);
    }
}
