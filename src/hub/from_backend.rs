//! What backends send besides answers: their requests to clients (sampling,
//! elicitation, roots) and their notifications (progress, list_changed, logging, updates).

use super::pending::{GatewayId, Pending};
use super::route::Whose;
use super::{Hub, empty};
use crate::contract::log_rank as level_rank;
use crate::contract::{InstanceId, SessionId};
use crate::jsonrpc::{
    self, INTERNAL_ERROR, Id, METHOD_NOT_FOUND, Message, Notification, Request, Response,
};
use crate::registry::Kind;
use log::{debug, info, warn};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::time::Instant;

/// The URL elicitations sent to clients, so each one's completion goes to the session that
/// was asked and no other: the newest `MAX_URL_ELICITATIONS`.
#[derive(Default)]
pub(super) struct UrlElicitations(std::collections::VecDeque<(InstanceId, String, SessionId)>);

const MAX_URL_ELICITATIONS: usize = 1000;

impl UrlElicitations {
    fn remember(&mut self, instance: InstanceId, id: String, session: SessionId) {
        if self.0.len() >= MAX_URL_ELICITATIONS {
            self.0.pop_front();
        }
        self.0.push_back((instance, id, session));
    }

    fn take(&mut self, instance: InstanceId, id: &str) -> Option<SessionId> {
        let at = self
            .0
            .iter()
            .position(|(i, e, _)| *i == instance && e == id)?;
        self.0.remove(at).map(|(_, _, s)| s)
    }

    /// Forgets what was sent to a session that ended.
    pub(super) fn forget(&mut self, session: &str) {
        self.0.retain(|(_, _, s)| s != session);
    }
}

/// The `elicitationId` of a URL-mode elicitation request's params.
fn elicitation_id(params: Option<&RawValue>) -> Option<String> {
    let v: Value = serde_json::from_str(params?.get()).ok()?;
    v.get("elicitationId")?.as_str().map(str::to_string)
}

impl Hub {
    pub(super) fn on_backend_message(
        &mut self,
        instance: InstanceId,
        msg: Message,
        during: Option<Id>,
    ) {
        if let Some(inst) = self.instances.get_mut(&instance) {
            inst.last_heard = Instant::now();
        }
        match msg {
            Message::Response(resp) => self.backend_response(instance, resp),
            Message::Request(req) => self.backend_request(instance, req, during),
            Message::Notification(n) => self.backend_notification(instance, n),
        }
    }

    /// A request from a backend: `ping` is answered here; sampling, elicitation and roots go
    /// to the session whose task they are about, else to the session `whose` finds; with
    /// calls of several sessions in flight and nothing naming one, the backend is refused
    /// (asking the wrong client would show it another's question and take its answer).
    pub(super) fn backend_request(
        &mut self,
        instance: InstanceId,
        mut req: Request,
        during: Option<Id>,
    ) {
        let name = self.name_of(instance).to_string();
        let refuse = |hub: &Self, code, message: String| {
            debug!("backend '{name}': {message}");
            hub.send_instance(
                instance,
                Message::Response(Response::error(Some(req.id.clone()), code, message)),
            );
        };
        if req.method == "ping" {
            self.send_instance(instance, Message::Response(Response::ok(req.id, empty())));
            return;
        }
        if !matches!(
            req.method.as_str(),
            "sampling/createMessage" | "elicitation/create" | "roots/list"
        ) {
            return refuse(
                self,
                METHOD_NOT_FOUND,
                format!("the gateway does not forward '{}' to clients", req.method),
            );
        }
        let target = match self.task_request(instance, &mut req.params) {
            Some(session) => {
                let related = self.newest_in_flight(&session, instance);
                Whose::Session(session, related)
            }
            None => self.whose(instance, req.params.as_deref(), during.as_ref()),
        };
        let (session, related) = match target {
            Whose::Session(s, related) if self.sessions.contains_key(&s) => (s, related),
            Whose::Ambiguous(n) => {
                let why = format!(
                    "'{}' from backend '{name}' was not passed on: calls of {n} client sessions are in flight on it and the request does not say whose it is (the gateway does not guess; see docs/security.md)",
                    req.method
                );
                warn!("{why}");
                return refuse(self, INTERNAL_ERROR, why);
            }
            // Roots asked with no client to ask (a shared server does so when it starts):
            // no roots, said quietly, so the server carries on as without a client.
            _ if req.method == "roots/list" => {
                debug!("backend '{name}': roots/list with no client to ask: no roots");
                let none = jsonrpc::to_raw(&serde_json::json!({"roots": []}));
                self.send_instance(instance, Message::Response(Response::ok(req.id, none)));
                return;
            }
            _ => {
                return refuse(
                    self,
                    INTERNAL_ERROR,
                    format!(
                        "no client request is in flight on backend '{name}', so '{}' has no client to go to",
                        req.method
                    ),
                );
            }
        };
        let caps = &self.sessions[&session].caps;
        let mode_url = req.method == "elicitation/create"
            && req.params.as_deref().is_some_and(|p| {
                serde_json::from_str::<Value>(p.get())
                    .is_ok_and(|v| v.get("mode").and_then(Value::as_str) == Some("url"))
            });
        let (allowed, cap) = match req.method.as_str() {
            "sampling/createMessage" => (caps.sampling, "sampling"),
            "roots/list" => (caps.roots, "roots"),
            _ if mode_url => (caps.elicitation_url, "elicitation.url"),
            _ => (caps.elicitation_form, "elicitation"),
        };
        if !allowed {
            return refuse(
                self,
                METHOD_NOT_FOUND,
                format!(
                    "the client of this session did not declare the '{cap}' capability, so it cannot answer '{}'",
                    req.method
                ),
            );
        }
        let gid = self.alloc_id();
        self.pending().insert(
            gid,
            Pending::ServerRequest {
                session: session.clone(),
                instance,
                backend_id: req.id,
                asked: Instant::now(),
            },
        );
        let forwarded = Request {
            id: gid.to_id(),
            method: req.method,
            params: req.params,
        };
        if mode_url && let Some(e) = elicitation_id(forwarded.params.as_deref()) {
            self.url_elicitations.remember(instance, e, session.clone());
        }
        self.deliver_related(&session, related, Message::Request(forwarded));
    }

    pub(super) fn backend_notification(&mut self, instance: InstanceId, n: Notification) {
        let params: Map<String, Value> = n
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let Some(inst) = self.instances.get(&instance) else {
            return;
        };
        let (b, owner, ready) = (inst.backend, inst.owner.clone(), inst.ready);
        let name = self.backends[b].spec.name.clone();
        match n.method.as_str() {
            "notifications/tools/list_changed"
            | "notifications/prompts/list_changed"
            | "notifications/resources/list_changed" => {
                if let Some(owner) = owner {
                    // A per-session instance's own view: its session hears of it directly.
                    for s in self.owner_sessions(&owner) {
                        self.notify_session(&s, &n.method, None);
                    }
                } else if ready && self.backends[b].source == Some(instance) {
                    info!("backend '{name}': {} ; listing again", n.method);
                    let kinds: &[Kind] = match n.method.as_str() {
                        "notifications/tools/list_changed" => &[Kind::Tools],
                        "notifications/prompts/list_changed" => &[Kind::Prompts],
                        _ => &[Kind::Resources, Kind::Templates],
                    };
                    for &kind in kinds {
                        self.list(instance, kind, None);
                    }
                }
            }
            "notifications/progress" => {
                let Some(gid) = params
                    .get("progressToken")
                    .and_then(Value::as_u64)
                    .map(GatewayId)
                else {
                    return;
                };
                let found = {
                    let mut table = self.pending();
                    match table.get(gid) {
                        Some(Pending::Client {
                            session,
                            instance: i,
                            progress: Some(token),
                            id,
                            limit,
                            timeout,
                            ..
                        }) if *i == instance => {
                            // Progress shows the work goes on: its time is extended, up to
                            // the limit.
                            let deadline = (Instant::now() + *timeout).min(*limit);
                            let found = (session.clone(), token.clone(), id.clone());
                            table.set_deadline(gid, deadline);
                            Some(found)
                        }
                        _ => None,
                    }
                };
                let Some((session, token, related)) = found else {
                    debug!("backend '{name}': progress for unknown or finished token dropped");
                    return;
                };
                let mut params = params;
                params.insert("progressToken".into(), token);
                let n = Notification {
                    method: n.method,
                    params: Some(jsonrpc::to_raw(&params)),
                };
                self.deliver_related(&session, Some(related), Message::Notification(n));
            }
            "notifications/message" => {
                let rank = params
                    .get("level")
                    .and_then(Value::as_str)
                    .and_then(level_rank)
                    .unwrap_or(0);
                let backend = self.instances.get(&instance).map(|i| i.backend);
                let targets: Vec<SessionId> = self
                    .sessions
                    .iter()
                    .filter(|(id, s)| {
                        owner.as_ref().is_none_or(|o| self.owned_by(o, id)) && s.initialized
                    })
                    .filter(|(_, s)| s.log_level.is_none_or(|min| rank >= min))
                    .filter(|(id, _)| backend.is_none_or(|b| self.shows_backend(id, b)))
                    .map(|(id, _)| id.clone())
                    .collect();
                let params = jsonrpc::to_raw(&params);
                for s in targets {
                    // A log line written during a request travels with that request.
                    let related = self.newest_in_flight(&s, instance);
                    let n = Notification {
                        method: n.method.clone(),
                        params: Some(params.clone()),
                    };
                    self.deliver_related(&s, related, Message::Notification(n));
                }
            }
            "notifications/tasks/status" => {
                let mut params = params;
                if let Some(session) = self.task_status(instance, &mut params) {
                    let n = Notification {
                        method: n.method.clone(),
                        params: Some(jsonrpc::to_raw(&params)),
                    };
                    self.deliver(&session, Message::Notification(n));
                }
            }
            "notifications/resources/updated" => {
                let Some(uri) = params.get("uri").and_then(Value::as_str) else {
                    return;
                };
                let Some(subs) = self.subscriptions.get(&(instance, uri.to_string())) else {
                    debug!("backend '{name}': update for '{uri}', which no session subscribed to");
                    return;
                };
                let targets: Vec<SessionId> = subs.iter().cloned().collect();
                let mut params = params.clone();
                params.insert(
                    "uri".into(),
                    Value::String(self.registry.exposed_uri(b, uri)),
                );
                let params = Value::Object(params);
                for s in targets {
                    self.notify_session(
                        &s,
                        "notifications/resources/updated",
                        Some(params.clone()),
                    );
                }
            }
            "notifications/cancelled" => {
                // The backend gave up on a request it sent a client.
                let Some(target) = params.get("requestId") else {
                    return;
                };
                let found = self
                    .pending()
                    .on_instance(instance)
                    .find_map(|(gid, p)| match p {
                        Pending::ServerRequest { backend_id, .. } if backend_id.matches(target) => {
                            Some(gid)
                        }
                        _ => None,
                    });
                let entry = found.and_then(|gid| Some((gid, self.pending().remove(gid)?)));
                if let Some((gid, Pending::ServerRequest { session, .. })) = entry {
                    let mut p = json!({"requestId": gid});
                    if let Some(r) = params.get("reason") {
                        p["reason"] = r.clone();
                    }
                    self.notify_session(&session, "notifications/cancelled", Some(p));
                }
            }
            "notifications/elicitation/complete" => {
                // Only to the session that was sent the URL elicitation it completes.
                let id = params.get("elicitationId").and_then(Value::as_str);
                let target = id.and_then(|e| self.url_elicitations.take(instance, e));
                match target {
                    Some(s) => self.notify_session(&s, &n.method, Some(Value::Object(params))),
                    None => debug!(
                        "backend '{name}': elicitation/complete for an elicitation no session was sent; dropped"
                    ),
                }
            }
            other => debug!("backend '{name}': notification '{other}' not forwarded"),
        }
    }
}
