//! Client sessions: what the hub answers itself (initialize, ping, logging/setLevel),
//! client notifications and responses, a session's end, and delivery to a session's sink.

use super::pending::{GatewayId, Pending};
use super::{ClientCaps, Hub, State, brief, empty, router};
use crate::config::Scope;
use crate::contract::LOG_LEVELS as LEVELS;
use crate::contract::log_rank as level_rank;
use crate::contract::{InstanceId, Order, Outbound, PROTOCOL_VERSIONS, Refused, SessionId};
use crate::jsonrpc::{
    self, ErrorObject, INTERNAL_ERROR, INVALID_PARAMS, Id, METHOD_NOT_FOUND, Message, Notification,
    Request, Response,
};
use crate::registry::{BackendIx, Kind};
use log::{debug, warn};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

impl Hub {
    pub(super) fn on_client_message(&mut self, session: SessionId, msg: Message) {
        match msg {
            Message::Request(req) => {
                if let Some(reply) = self.client_request(&session, req) {
                    self.deliver(&session, Message::Response(reply));
                }
            }
            Message::Notification(n) => self.client_notification(&session, n),
            Message::Response(r) => self.client_response(&session, r),
        }
    }

    /// Answers a client request, or routes it and returns `None` (the backend answers).
    pub(super) fn client_request(&mut self, session: &str, req: Request) -> Option<Response> {
        let req = self.hold_list(session, req)?;
        let id = req.id.clone();
        let result = match req.method.as_str() {
            "initialize" => Ok(self.initialize(session, req.params.as_deref())),
            "ping" => Ok(empty()),
            "tools/list" => self.list_page(session, Kind::Tools, req.params.as_deref()),
            "prompts/list" => self.list_page(session, Kind::Prompts, req.params.as_deref()),
            "resources/list" => self.list_page(session, Kind::Resources, req.params.as_deref()),
            "resources/templates/list" => {
                self.list_page(session, Kind::Templates, req.params.as_deref())
            }
            "logging/setLevel" => self.set_level(session, req.params.as_deref()),
            "tasks/list" => Ok(self.tasks_list(session)),
            "tools/call"
            | "prompts/get"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "completion/complete"
            | "tasks/get"
            | "tasks/result"
            | "tasks/cancel" => {
                let method = req.method.clone();
                return match self.route(session, req) {
                    Ok(()) => None,
                    Err(e) => {
                        self.replies.metrics().refused(&method, &e.message);
                        Some(Response {
                            id: Some(id),
                            outcome: Err(e),
                        })
                    }
                };
            }
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

    pub(super) fn initialize(&mut self, session: &str, params: Option<&RawValue>) -> Box<RawValue> {
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
            capabilities: Option<Map<String, Value>>,
        }
        let p: Params = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let version = PROTOCOL_VERSIONS
            .iter()
            .find(|v| p.protocol_version.as_deref() == Some(**v))
            .copied()
            .unwrap_or(PROTOCOL_VERSIONS[0]);
        let info = p.client_info.unwrap_or_default();
        let client = format!(
            "{} {}",
            info.name.as_deref().unwrap_or("unknown"),
            info.version.as_deref().unwrap_or("")
        )
        .trim()
        .to_string();
        let caps = p.capabilities.unwrap_or_default();
        let elicitation = caps.get("elicitation").and_then(Value::as_object);
        let caps = ClientCaps {
            sampling: caps.contains_key("sampling"),
            // An empty elicitation object means form mode only.
            elicitation_form: elicitation.is_some_and(|e| e.is_empty() || e.contains_key("form")),
            elicitation_url: elicitation.is_some_and(|e| e.contains_key("url")),
            roots: caps.contains_key("roots"),
        };
        log::log!(
            self.sessions
                .get(session)
                .map_or(log::Level::Info, |s| loudness(s.transport)),
            "session {session}: initialize from '{client}', protocol {version} (asked {}), capabilities {caps:?}",
            p.protocol_version.as_deref().unwrap_or("none")
        );
        if let Some(s) = self.sessions.get_mut(session) {
            s.client = client;
            s.version = version;
            s.caps = caps;
            // Its calls may be routed where they arrive from now on (a profile's checked
            // against what the profile reaches).
            let profile = s
                .profile
                .map(|p| (p, std::sync::Arc::from(self.opts.profiles[p].name.as_str())));
            let view = router::SessionView {
                sink: s.sink.clone(),
                version,
                client: std::sync::Arc::from(s.client.as_str()),
                alive: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
                order: Order::new(true),
                profile,
                token: s.token.clone(),
            };
            self.replies.published.open(session, view);
        }
        // A legacy session's per-session backends start now, so the first call does not
        // wait and a server can ask its client for roots at once, as many do. A
        // 2026-07-28 request's session starts none: its client's instance starts with the
        // first request that must reach it (`instance_for`), so a list, or a call of
        // another backend, costs no process.
        let legacy = self
            .sessions
            .get(session)
            .is_some_and(|s| s.transport != crate::contract::STATELESS);
        let per_session: Vec<BackendIx> = ((0..self.backends.len()).map(BackendIx))
            .filter(|&b| {
                legacy
                    && matches!(self.backends[b].spec.scope, Scope::Session { .. })
                    && self.backends[b].state == State::Ready
                    && !self.on_demand(b)
                    && self.shows_backend(session, b)
            })
            .collect();
        for b in per_session {
            if let Err(e) = self.instance_for(b, session) {
                warn!("session {session}: {e}");
            }
        }
        let mut capabilities = json!({
            "tools": {"listChanged": true},
            "prompts": {"listChanged": true},
            "resources": {"subscribe": true, "listChanged": true},
            "logging": {},
            "completions": {},
        });
        // Tasks are 2025-11-25's, and only worth saying when a backend takes them.
        if version >= "2025-11-25" && self.tasks_offered() {
            capabilities["tasks"] =
                json!({"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}});
        }
        jsonrpc::to_raw(&json!({
            "protocolVersion": version,
            "capabilities": capabilities,
            "serverInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        }))
    }

    pub(super) fn set_level(
        &mut self,
        session: &str,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, ErrorObject> {
        let level = params
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
            .and_then(|p| p.get("level")?.as_str().map(str::to_string));
        let rank = level.as_deref().and_then(level_rank).ok_or_else(|| {
            ErrorObject::new(
                INVALID_PARAMS,
                format!(
                    "logging/setLevel: 'level' must be one of {}",
                    LEVELS.join(", ")
                ),
            )
        })?;
        if let Some(s) = self.sessions.get_mut(session) {
            s.log_level = Some(rank);
        }
        self.apply_log_levels();
        Ok(empty())
    }

    /// Sets each logging backend to the most verbose level any of its sessions asked for;
    /// the gateway filters per session.
    pub(super) fn apply_log_levels(&mut self) {
        let shared_min = self.sessions.values().filter_map(|s| s.log_level).min();
        let mut changes = Vec::new();
        for (&id, inst) in &self.instances {
            if !inst.ready || !inst.caps.logging {
                continue;
            }
            let want = match &inst.owner {
                Some(owner) => self
                    .owner_sessions(owner)
                    .iter()
                    .filter_map(|s| self.sessions.get(s).and_then(|s| s.log_level))
                    .min(),
                None => shared_min,
            };
            if let Some(want) = want.filter(|w| inst.log_level != Some(*w)) {
                changes.push((id, want));
            }
        }
        for (id, level) in changes {
            if let Some(inst) = self.instances.get_mut(&id) {
                inst.log_level = Some(level);
            }
            self.request_instance(
                id,
                "logging/setLevel",
                Some(json!({"level": LEVELS[level]})),
                Pending::Ignore { instance: id },
            );
        }
    }

    pub(super) fn client_notification(&mut self, session: &str, n: Notification) {
        match n.method.as_str() {
            "notifications/initialized" => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.initialized = true;
                }
            }
            "notifications/cancelled" => {
                let p: Value = n
                    .params
                    .as_deref()
                    .and_then(|p| serde_json::from_str(p.get()).ok())
                    .unwrap_or_default();
                let Some(target) = p.get("requestId") else {
                    return;
                };
                let Some(gid) = self.pending().client_matching(session, target) else {
                    debug!("session {session}: cancellation of unknown request {target} ignored");
                    return;
                };
                let entry = self.pending().remove(gid);
                if let Some(Pending::Client { instance, .. }) = entry {
                    self.cancel_at_instance(instance, gid, p.get("reason").cloned());
                }
            }
            "notifications/roots/list_changed" => {
                let targets: Vec<InstanceId> = self
                    .instances
                    .iter()
                    .filter(|(_, i)| {
                        i.ready && i.owner.as_ref().is_none_or(|o| self.owned_by(o, session))
                    })
                    .filter(|(id, i)| {
                        i.owner.is_some() || self.backends[i.backend].source == Some(**id)
                    })
                    .map(|(&id, _)| id)
                    .collect();
                for id in targets {
                    self.notify_instance(id, "notifications/roots/list_changed", None);
                }
            }
            other => debug!("session {session}: notification '{other}' not handled"),
        }
    }

    /// A client's answer to a request a backend sent it.
    pub(super) fn client_response(&mut self, session: &str, r: Response) {
        let Some(gid) = GatewayId::of(r.id.as_ref()) else {
            debug!("session {session}: response without a gateway id ignored");
            return;
        };
        let entry = self.pending().remove(gid);
        match entry {
            Some(Pending::ServerRequest {
                session: s,
                instance,
                backend_id,
                ..
            }) if s == session => {
                let reply = Response {
                    id: Some(backend_id),
                    outcome: r.outcome,
                };
                self.send_instance(instance, Message::Response(reply));
            }
            Some(other) => {
                debug!(
                    "session {session}: response to id {gid}, which is not its request; ignored"
                );
                self.pending().insert(gid, other);
            }
            None => debug!("session {session}: response to unknown id {gid} ignored"),
        }
    }

    pub(super) fn session_gone(&mut self, session: &str) {
        let Some(s) = self.sessions.remove(session) else {
            return;
        };
        if let Some(alive) = self.replies.published.close(session) {
            // Under the table's lock: a router either registered before this (and its
            // request is cancelled below) or sees the session gone.
            let _table = self.pending();
            alive.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        log::log!(
            loudness(s.transport),
            "session {session}: closed (client '{}')",
            s.client
        );
        self.forget_tasks(session);
        self.url_elicitations.forget(session);
        // Requests it had in flight are cancelled at their backends.
        let mine = self.pending().of_session(session);
        for gid in mine {
            let entry = self.pending().remove(gid);
            match entry {
                Some(Pending::Client { instance, .. }) => {
                    let reason = Value::from("the client disconnected");
                    self.cancel_at_instance(instance, gid, Some(reason));
                }
                Some(Pending::ServerRequest {
                    instance,
                    backend_id,
                    ..
                }) => {
                    let reply = Response::error(
                        Some(backend_id),
                        INTERNAL_ERROR,
                        "the client disconnected before answering",
                    );
                    self.send_instance(instance, Message::Response(reply));
                }
                _ => {}
            }
        }
        for (_, id) in s.instances {
            self.stop_instance(id);
        }
        let mut emptied = Vec::new();
        for (key, subs) in self.subscriptions.iter_mut() {
            if subs.remove(session) && subs.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.subscriptions.remove(&key);
            let (instance, uri) = key;
            if self.instances.contains_key(&instance) {
                self.request_instance(
                    instance,
                    "resources/unsubscribe",
                    Some(json!({"uri": uri})),
                    Pending::Ignore { instance },
                );
            }
        }
        self.apply_log_levels();
    }

    pub(super) fn notify_session(&mut self, session: &str, method: &str, params: Option<Value>) {
        let n = Notification {
            method: method.to_string(),
            params: params.map(|p| jsonrpc::to_raw(&p)),
        };
        self.deliver(session, Message::Notification(n));
    }

    /// Queues a message for a session; a response relates to its own request.
    pub(super) fn deliver(&mut self, session: &str, msg: Message) {
        let related = match &msg {
            Message::Response(r) => r.id.clone(),
            _ => None,
        };
        self.deliver_related(session, related, msg);
    }

    /// Queues a message on a session's stream. A client whose queue is full is not reading:
    /// it is dropped rather than allowed to hold anyone else up.
    pub(super) fn deliver_related(&mut self, session: &str, related: Option<Id>, msg: Message) {
        let Some(s) = self.sessions.get(session) else {
            debug!("session {session}: gone; dropped {}", brief(&msg));
            return;
        };
        match s.sink.offer(Outbound { related, msg }) {
            Ok(()) => {}
            Err(why) => self.refused(session, why),
        }
    }

    /// A session's sink refused a message: its client is not reading (its queue is full,
    /// by count or by bytes), or it has gone. It is ended rather than allowed to hold
    /// anyone else up.
    pub(super) fn refused(&mut self, session: &str, why: Refused) {
        if let (Refused::Full, Some(s)) = (why, self.sessions.get(session)) {
            warn!(
                "session {session}: client '{}' is not reading its stream (its queue is full, by count or by bytes); disconnecting it",
                s.client
            );
        }
        self.session_gone(session);
    }
}

/// How loud a session's opening and closing are in the log: a 2026-07-28 request's session
/// lives as long as the request, so its lines are debug ones.
fn loudness(transport: &str) -> log::Level {
    if transport == crate::contract::STATELESS {
        log::Level::Debug
    } else {
        log::Level::Info
    }
}
