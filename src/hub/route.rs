//! Routing a client's request to its backend and its answer back: gateway ids, progress
//! tokens, concurrency slots, timeouts, cancellation, the audit record.

use super::pending::{After, AuditCall, ClientCall, GatewayId, Pending};
use super::unavailable::Unavailable;
use super::{Hub, Owner, Params, REQUEST_TIMEOUT, RESOURCE_NOT_FOUND, catalogue, empty, replies};
use crate::contract::{InstanceId, PROTOCOL_VERSIONS, SessionId};
use crate::jsonrpc::{self, ErrorObject, INVALID_PARAMS, Id, Message, Request, Response};
use crate::registry::{BackendIx, Kind};
use log::{debug, warn};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// A routed request on its way to its backend: its name or URI already the backend's own.
pub(super) struct Call {
    pub(super) id: Id,
    pub(super) method: String,
    pub(super) params: Params,
    pub(super) after: After,
    /// A tool's name as the client called it (the audit line records both).
    pub(super) exposed: Option<String>,
}

impl Hub {
    /// Routes a request that names a tool, prompt or resource to its backend.
    pub(super) fn route(&mut self, session: &str, req: Request) -> Result<(), ErrorObject> {
        self.pending().check_new(session, &req.id)?;
        let invalid = |m: String| ErrorObject::new(INVALID_PARAMS, m);
        let mut params: Params = match req.params.as_deref().map(|p| serde_json::from_str(p.get()))
        {
            Some(Ok(p)) => p,
            _ => {
                return Err(invalid(format!(
                    "{}: 'params' must be an object",
                    req.method
                )));
            }
        };
        let string = |params: &Params, key: &str| {
            params
                .get(key)
                .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
        };
        let mut after = After::Nothing;
        // The tool's name as the client knows it, for the audit line.
        let mut exposed = None;
        let backend = match req.method.as_str() {
            "tools/call" | "prompts/get" => {
                let kind = if req.method == "tools/call" {
                    Kind::Tools
                } else {
                    Kind::Prompts
                };
                let what = if kind == Kind::Tools {
                    "tool"
                } else {
                    "prompt"
                };
                let mut name = string(&params, "name").ok_or_else(|| {
                    invalid(format!("{}: 'params.name' must be a string", req.method))
                })?;
                // A catalogue profile's three tools: search and describe are answered
                // here; a call becomes the call of the tool it names.
                if let (Kind::Tools, Some(p)) = (kind, self.catalogue_of(session)) {
                    match name.as_str() {
                        catalogue::SEARCH | catalogue::DESCRIBE => {
                            let answer = self.catalogue_answer(p, &name, &params);
                            let ok = Response::ok(req.id, answer);
                            self.deliver(session, Message::Response(ok));
                            return Ok(());
                        }
                        catalogue::CALL => name = Self::catalogue_call(&mut params)?,
                        _ => {}
                    }
                }
                // What the session's profile does not show is as unknown as what is not.
                let entry = self
                    .registry
                    .catalog(kind)
                    .lookup(&name)
                    .filter(|_| self.shows(session, kind, &name))
                    .ok_or_else(|| invalid(format!("unknown {what} '{name}'")))?;
                let b = entry.backend;
                params.insert("name".into(), jsonrpc::to_raw(&entry.original));
                exposed = Some(name);
                if params.contains_key("task") {
                    after = After::TaskCreated;
                }
                b
            }
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let uri = string(&params, "uri").ok_or_else(|| {
                    invalid(format!("{}: 'params.uri' must be a string", req.method))
                })?;
                let routed = self
                    .registry
                    .route_uri(&uri)
                    .filter(|(b, _)| self.shows_uri(session, *b, &uri));
                let (b, original) = routed.ok_or_else(|| {
                    let mut e = ErrorObject::new(
                        RESOURCE_NOT_FOUND,
                        format!("resource not found: no backend serves '{uri}'"),
                    );
                    e.data = Some(jsonrpc::to_raw(&json!({"uri": uri})));
                    e
                })?;
                if original != uri {
                    params.insert("uri".into(), jsonrpc::to_raw(&original));
                }
                match req.method.as_str() {
                    "resources/read" if original != uri => {
                        after = After::MapUri {
                            original,
                            exposed: uri,
                        };
                    }
                    "resources/subscribe" => {
                        let instance = self.instance_for(b, session)?;
                        let subscribers = self
                            .subscriptions
                            .entry((instance, original.clone()))
                            .or_default();
                        let first = subscribers.is_empty();
                        subscribers.insert(session.to_string());
                        if !first {
                            // The backend already sends this URI's updates; nothing to ask it.
                            self.deliver(session, Message::Response(Response::ok(req.id, empty())));
                            return Ok(());
                        }
                        after = After::Subscribed { uri: original };
                    }
                    "resources/unsubscribe" => {
                        let instance = self.instance_for(b, session)?;
                        let key = (instance, original);
                        let last = self
                            .subscriptions
                            .get_mut(&key)
                            .is_some_and(|subs| subs.remove(session) && subs.is_empty());
                        if !last {
                            // Others still need it (or this session never subscribed).
                            self.deliver(session, Message::Response(Response::ok(req.id, empty())));
                            return Ok(());
                        }
                        self.subscriptions.remove(&key);
                    }
                    _ => {}
                }
                b
            }
            "completion/complete" => self.route_completion(session, &mut params)?,
            "tasks/get" | "tasks/result" | "tasks/cancel" => {
                let (b, task) = self.route_task(session, &mut params)?;
                after = task;
                b
            }
            other => unreachable!("route() is only called for routed methods, not '{other}'"),
        };
        let call = Call {
            id: req.id,
            method: req.method,
            params,
            after,
            exposed,
        };
        Ok(self.forward(session, backend, call)?)
    }

    /// `completion/complete` goes where its `ref` points: a prompt or a resource template.
    pub(super) fn route_completion(
        &self,
        session: &str,
        params: &mut Params,
    ) -> Result<BackendIx, ErrorObject> {
        let invalid = |m: String| ErrorObject::new(INVALID_PARAMS, m);
        let mut reference: Map<String, Value> = params
            .get("ref")
            .and_then(|r| serde_json::from_str(r.get()).ok())
            .ok_or_else(|| invalid("completion/complete: 'params.ref' must be an object".into()))?;
        let field =
            |r: &Map<String, Value>, k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
        let (b, key, original) = match field(&reference, "type").as_deref() {
            Some("ref/prompt") => {
                let name = field(&reference, "name").ok_or_else(|| {
                    invalid("completion/complete: 'ref.name' must be a string".into())
                })?;
                let e = self
                    .registry
                    .catalog(Kind::Prompts)
                    .lookup(&name)
                    .filter(|_| self.shows(session, Kind::Prompts, &name))
                    .ok_or_else(|| invalid(format!("unknown prompt '{name}'")))?;
                (e.backend, "name", e.original.clone())
            }
            Some("ref/resource") => {
                let uri = field(&reference, "uri").ok_or_else(|| {
                    invalid("completion/complete: 'ref.uri' must be a string".into())
                })?;
                let (b, original) = self
                    .registry
                    .route_template(&uri)
                    .or_else(|| self.registry.route_uri(&uri))
                    .filter(|(b, _)| self.shows_uri(session, *b, &uri))
                    .ok_or_else(|| invalid(format!("unknown resource template '{uri}'")))?;
                (b, "uri", original)
            }
            other => {
                return Err(invalid(format!(
                    "completion/complete: 'ref.type' must be \"ref/prompt\" or \"ref/resource\", got {other:?}"
                )));
            }
        };
        reference.insert(key.into(), Value::String(original));
        params.insert("ref".into(), jsonrpc::to_raw(&reference));
        Ok(b)
    }

    /// Sends a client's request on to backend `b` with a gateway id (and progress token).
    pub(super) fn forward(
        &mut self,
        session: &str,
        b: BackendIx,
        call: Call,
    ) -> Result<(), Unavailable> {
        let Call {
            id,
            method,
            mut params,
            after,
            exposed,
        } = call;
        let instance = self.instance_for(b, session)?;
        let gid = self.alloc_id();
        let progress = swap_progress_token(&mut params, gid);
        // The tool's own timeout, when this is a call of a tool that has one.
        let tool = (method == "tools/call")
            .then(|| {
                params
                    .get("name")
                    .and_then(|n| serde_json::from_str::<String>(n.get()).ok())
            })
            .flatten();
        let policy = &self.backends[b].spec.policy;
        let timeout = policy.timeout_for(tool.as_deref());
        let max_timeout = policy.max_timeout;
        let what = match &tool {
            Some(t) => format!("{method} '{t}'"),
            None => method.clone(),
        };
        let (sink, version, client) = match self.sessions.get(session) {
            Some(s) => (Some(s.sink.clone()), s.version, s.client.as_str()),
            None => (None, PROTOCOL_VERSIONS[0], ""),
        };
        let audit = match (self.replies.audit(), &tool) {
            (Some(a), Some(t)) => {
                let mut call = AuditCall::new(
                    a,
                    client.into(),
                    exposed.unwrap_or_else(|| t.clone()),
                    t.as_str().into(),
                    params.get("arguments").map(|a| &**a),
                );
                // Whose call it was: the client token's label (never the token) and the
                // profile it came through.
                if let Some(s) = self.sessions.get(session) {
                    call.token = s.token.clone();
                    call.profile = s.profile.map(|p| self.opts.profiles[p].name.clone());
                }
                Some(call)
            }
            _ => None,
        };
        let request = Request {
            id: gid.to_id(),
            method: method.clone(),
            params: Some(jsonrpc::to_raw(&params)),
        };
        let entry = Pending::client(ClientCall {
            session: session.to_string(),
            id,
            instance,
            method,
            progress,
            after,
            timeout,
            max_timeout,
            what: what.into(),
            audit,
            sink,
            version,
        });
        self.pending().insert(gid, entry);
        let inst = self
            .instances
            .get_mut(&instance)
            .expect("instance_for returns a live instance");
        inst.last_used = Instant::now();
        inst.queued.push_back(request);
        self.pump(instance);
        Ok(())
    }

    /// Sends queued requests to a ready instance, as many as its `maxConcurrent` allows.
    pub(super) fn pump(&mut self, instance: InstanceId) {
        let Some(inst) = self.instances.get(&instance) else {
            return;
        };
        if !inst.ready || inst.queued.is_empty() {
            return;
        }
        let limit = self.backends[inst.backend].spec.policy.max_concurrent;
        let mut free = match limit {
            None => usize::MAX,
            Some(limit) => {
                let pending = self.pending().clients_on(instance);
                limit.saturating_sub(pending - inst.queued.len())
            }
        };
        while free > 0 {
            let Some(request) = self
                .instances
                .get_mut(&instance)
                .and_then(|i| i.queued.pop_front())
            else {
                break;
            };
            free -= 1;
            if !self.send_instance(instance, Message::Request(request)) {
                self.instance_failed(instance, "has closed its input".into());
                return;
            }
        }
    }

    /// Withdraws request `gid` from an instance: still queued, it is simply dropped;
    /// already sent, the backend gets `notifications/cancelled`.
    pub(super) fn cancel_at_instance(
        &mut self,
        instance: InstanceId,
        gid: GatewayId,
        reason: Option<Value>,
    ) {
        let Some(inst) = self.instances.get_mut(&instance) else {
            return;
        };
        let queued = inst.queued.len();
        inst.queued
            .retain(|r| GatewayId::of(Some(&r.id)) != Some(gid));
        if inst.queued.len() == queued {
            let mut params = json!({"requestId": gid});
            if let Some(reason) = reason {
                params["reason"] = reason;
            }
            self.notify_instance(instance, "notifications/cancelled", Some(params));
            // Its place is free for the next one in line.
            self.pump(instance);
        }
    }

    pub(super) fn backend_response(&mut self, instance: InstanceId, resp: Response) {
        let gid = GatewayId::of(resp.id.as_ref());
        let Some(gid) = gid.or_else(|| self.sole_request_for(instance, &resp)) else {
            warn!(
                "backend '{}': response without a usable id ignored: {:?}",
                self.name_of(instance),
                resp.outcome.err()
            );
            return;
        };
        let Some(pending) = self.pending().remove(gid) else {
            debug!(
                "backend '{}': response to unknown or cancelled id {gid} dropped",
                self.name_of(instance)
            );
            return;
        };
        if pending.instance() != instance || matches!(pending, Pending::ServerRequest { .. }) {
            warn!(
                "backend '{}': answered id {gid}, which is not its request; dropped",
                self.name_of(instance)
            );
            self.pending().insert(gid, pending);
            return;
        }
        let pending = match replies::Finished::take(pending) {
            Ok((call, after)) => {
                let mut outcome = resp.outcome;
                match (after, &mut outcome) {
                    (After::MapUri { original, exposed }, Ok(result)) => {
                        *result = map_contents_uri(result, &original, &exposed);
                    }
                    (After::TaskCreated, Ok(result)) => {
                        *result = self.task_created(&call.session, instance, result);
                    }
                    (After::Task { exposed, original }, Ok(result)) => {
                        *result = self.task_answered(result, &exposed, &original);
                    }
                    (After::Subscribed { uri }, Err(_)) => {
                        if let Some(subs) = self.subscriptions.get_mut(&(instance, uri)) {
                            subs.remove(&call.session);
                        }
                    }
                    _ => {}
                }
                let backend_name = self.name_of(instance).to_string();
                if let Err((session, why)) =
                    self.replies.finish(&backend_name, call, outcome, false)
                {
                    self.refused(&session, why);
                }
                self.pump(instance);
                return;
            }
            Err(other) => other,
        };
        match pending {
            Pending::Initialize { .. } => self.instance_initialized(instance, resp.outcome),
            Pending::List { kind, .. } => self.listed(instance, kind, resp.outcome),
            Pending::Ping { .. } => {
                if let Some(inst) = self.instances.get_mut(&instance) {
                    inst.ping_deadline = None;
                }
            }
            Pending::Ignore { .. } => {
                if let Err(e) = resp.outcome {
                    debug!(
                        "backend '{}': declined a gateway request: {} ({})",
                        self.name_of(instance),
                        e.message,
                        e.code
                    );
                }
            }
            Pending::Client { .. } | Pending::ServerRequest { .. } => {
                unreachable!("taken or checked above")
            }
        }
    }

    /// Answers requests whose time is up with an error, and cancels them at the backend.
    pub(super) fn expire_requests(&mut self, now: Instant) {
        let due = self.pending().due(now);
        for gid in due {
            let Some(Pending::Client {
                session,
                id,
                instance,
                timeout,
                what,
                method,
                started,
                audit,
                ..
            }) = self.pending().remove(gid)
            else {
                continue;
            };
            let name = self.name_of(instance).to_string();
            {
                let mut metrics = self.replies.metrics();
                metrics.record(&name, &method, "timeout", started.elapsed());
                metrics.error(&name, &method, "timed out");
            }
            if let Some(call) = &audit {
                self.audit(&session, call, &name, started, Err("timed out"));
            }
            warn!(
                "backend '{name}': {what} timed out after {} s; cancelled",
                timeout.as_secs()
            );
            let reply = Response::error(
                Some(id),
                REQUEST_TIMEOUT,
                format!(
                    "backend '{name}' did not answer {what} within {} s; the request was cancelled",
                    timeout.as_secs()
                ),
            );
            // The backend hears of it first: the client's next call may reach it on the
            // router's path, and must not overtake the cancellation.
            let reason = Value::from(format!("timed out after {} s", timeout.as_secs()));
            self.cancel_at_instance(instance, gid, Some(reason));
            self.deliver(&session, Message::Response(reply));
        }
    }

    /// Writes a finished tool call to the audit log: `result` is the raw result, or the
    /// error message.
    pub(super) fn audit(
        &self,
        session: &str,
        call: &AuditCall,
        backend: &str,
        started: Instant,
        result: Result<&RawValue, &str>,
    ) {
        let Some(audit) = self.replies.audit() else {
            return;
        };
        audit.record(replies::audit_record(
            session, call, backend, started, result,
        ));
    }

    /// Whose a backend's request to a client is (sampling, elicitation, roots), by what says
    /// so and never by a guess between sessions: a per-session instance's own session;
    /// else the call it names (the Streamable HTTP response stream it came on, `during`, or
    /// a gateway progress token in its `_meta`); else the one session with calls in flight
    /// on the instance. Calls of several sessions in flight and nothing to tell them apart:
    /// `Whose::Ambiguous`, and the backend is refused rather than the wrong client asked.
    pub(super) fn whose(
        &self,
        instance: InstanceId,
        params: Option<&RawValue>,
        during: Option<&Id>,
    ) -> Whose {
        match self.instances.get(&instance).and_then(|i| i.owner.clone()) {
            Some(Owner::Session(owner)) => {
                let related = self.newest_in_flight(&owner, instance);
                return Whose::Session(owner, related);
            }
            // A 2026-07-28 client's own instance: every request on it is that client's, so
            // its newest call asks (unless the question names another).
            Some(Owner::Client(_)) => {
                let named = during
                    .and_then(|id| GatewayId::of(Some(id)))
                    .or_else(|| progress_token_of(params));
                let newest = self
                    .pending()
                    .on_instance(instance)
                    .filter_map(|(gid, p)| match p {
                        Pending::Client { session, id, .. } => {
                            Some((gid, session.clone(), id.clone()))
                        }
                        _ => None,
                    })
                    .filter(|(gid, _, _)| named.is_none_or(|n| n == *gid))
                    .max_by_key(|(gid, _, _)| gid.0);
                return match newest {
                    Some((_, session, id)) => Whose::Session(session, Some(id)),
                    None => Whose::Nobody,
                };
            }
            None => {}
        }
        let named = during
            .and_then(|id| GatewayId::of(Some(id)))
            .or_else(|| progress_token_of(params));
        if let Some(gid) = named
            && let Some(Pending::Client {
                session,
                id,
                instance: on,
                ..
            }) = self.pending().get(gid)
            && *on == instance
        {
            return Whose::Session(session.clone(), Some(id.clone()));
        }
        // The sessions with calls in flight there; those whose call is already blocked on
        // a question to its client asked a while ago (a client slow to answer, a
        // 2026-07-28 call parked for its retry) are not taken for the asker while others
        // are: a tool asks its questions together or one after another, not a new one
        // while the last is unanswered.
        let (mut sessions, mut waiting) = (HashSet::new(), HashSet::new());
        for (_, p) in self.pending().on_instance(instance) {
            match p {
                Pending::Client { session, .. } => {
                    sessions.insert(session.clone());
                }
                Pending::ServerRequest { session, asked, .. }
                    if asked.elapsed() >= ASKED_A_WHILE_AGO =>
                {
                    waiting.insert(session.clone());
                }
                _ => {}
            }
        }
        if sessions.len() > 1 {
            let free: HashSet<SessionId> = sessions.difference(&waiting).cloned().collect();
            if !free.is_empty() {
                sessions = free;
            }
        }
        let mut sessions = sessions.into_iter();
        match (sessions.next(), sessions.len()) {
            (None, _) => Whose::Nobody,
            (Some(only), 0) => {
                let related = self.newest_in_flight(&only, instance);
                Whose::Session(only, related)
            }
            (Some(_), more) => Whose::Ambiguous(more + 1),
        }
    }

    /// The client id of the newest request `session` has in flight on `instance`.
    pub(super) fn newest_in_flight(&self, session: &str, instance: InstanceId) -> Option<Id> {
        self.pending()
            .on_instance(instance)
            .filter_map(|(_, p)| match p {
                Pending::Client { session: s, id, .. } if s == session => Some(id.clone()),
                _ => None,
            })
            .last()
    }
}

/// A session whose question from a backend has waited this long for its client's answer
/// is not taken for the asker of a new one while other sessions' calls are in flight: a
/// tool that asks several things at once sends them together, well within this.
const ASKED_A_WHILE_AGO: Duration = Duration::from_millis(50);

/// Whose a backend's request to a client is (`Hub::whose`).
pub(super) enum Whose {
    /// This session's, and the client request it belongs to, when known.
    Session(SessionId, Option<Id>),
    /// Calls of this many sessions are in flight on the instance, and nothing says which.
    Ambiguous(usize),
    /// No client call is in flight on the instance.
    Nobody,
}

/// The gateway id a backend's message names as its progress token (`_meta.progressToken`,
/// which the gateway set to the id of the call it forwarded).
fn progress_token_of(params: Option<&RawValue>) -> Option<GatewayId> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "progressToken")]
        progress_token: Option<u64>,
    }
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "_meta")]
        meta: Option<Meta>,
    }
    let raw = params.filter(|p| p.get().contains("progressToken"))?;
    let p: Params = serde_json::from_str(raw.get()).ok()?;
    p.meta?.progress_token.map(GatewayId)
}

/// Replaces `params._meta.progressToken` with the gateway's own token (`gid`) and returns
/// the client's.
fn swap_progress_token(params: &mut Params, gid: GatewayId) -> Option<Value> {
    let meta = params.get("_meta")?;
    let mut meta: Map<String, Value> = serde_json::from_str(meta.get()).ok()?;
    let token = meta.insert("progressToken".into(), Value::from(gid.0))?;
    params.insert("_meta".into(), jsonrpc::to_raw(&meta));
    Some(token)
}

/// A `resources/read` result with `contents[].uri` put back to the URI the client used.
pub(super) fn map_contents_uri(result: &RawValue, original: &str, exposed: &str) -> Box<RawValue> {
    let Ok(mut v) = serde_json::from_str::<Value>(result.get()) else {
        return result.to_owned();
    };
    if let Some(Value::Array(contents)) = v.get_mut("contents") {
        for c in contents {
            if c.get("uri").and_then(Value::as_str) == Some(original) {
                c["uri"] = Value::String(exposed.to_string());
            }
        }
    }
    jsonrpc::to_raw(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_tokens_are_swapped_only_when_present() {
        let mut p: Params =
            serde_json::from_str(r#"{"name":"x","_meta":{"progressToken":"abc","other":1}}"#)
                .unwrap();
        assert_eq!(
            swap_progress_token(&mut p, GatewayId(42)),
            Some(json!("abc"))
        );
        assert_eq!(p["_meta"].get(), r#"{"other":1,"progressToken":42}"#);
        let mut p: Params = serde_json::from_str(r#"{"name":"x","_meta":{"other":1}}"#).unwrap();
        assert_eq!(swap_progress_token(&mut p, GatewayId(42)), None);
        let mut p: Params = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(swap_progress_token(&mut p, GatewayId(42)), None);
    }

    #[test]
    fn read_results_get_the_clients_uri_back() {
        let r = jsonrpc::to_raw(
            &json!({"contents": [{"uri": "file:///a", "text": "x"}, {"uri": "file:///b"}]}),
        );
        let out = map_contents_uri(&r, "file:///a", "mcp-gateway://b/file:///a");
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v["contents"][0]["uri"], "mcp-gateway://b/file:///a");
        assert_eq!(v["contents"][1]["uri"], "file:///b");
    }
}
