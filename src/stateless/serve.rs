//! Serving one 2026-07-28 request, whatever transport brought it (`/mcp`, `--stdio`): its
//! hub session of its own, opened with an `initialize` made from its `_meta` and ended with
//! its answer, so routing, timeouts, progress and cancellation are the legacy ones.
//!
//! The bridge to legacy backends: a backend's sampling, elicitation or roots request made
//! while it serves the call becomes an `input_required` result (requests that come close
//! together share one), and the call's session waits, parked under a random
//! `requestState`, for the client's retry; the retry's `inputResponses` answer the
//! backend's requests and the call goes on, answered under the retry's id. A state is
//! good for one retry of the same method and name, on the instance that issued it.
//! `subscriptions/listen` is a session that stays open for the list changes and resource
//! updates the client asked for.

use super::tasks;
use crate::contract::{HubEvent, Outbound, Queue, Queued, Refused, STATELESS, Sink};
use crate::hub::Router;
use crate::jsonrpc::{self, ErrorObject, INVALID_PARAMS, Id, Message, Request};
use crate::modern::{self, Meta};
use crossbeam_channel::{Receiver, Sender};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What serving a modern request needs of the gateway.
#[derive(Clone)]
pub struct Ends {
    pub hub: Sender<HubEvent>,
    pub router: Router,
    /// This instance's tag, the start of every `requestState` it issues.
    pub instance: String,
    /// How long a stream may be quiet before a keep-alive (or a check for cancellation).
    pub keepalive: Duration,
    pub parked: Arc<Parked>,
    pub tasks: Arc<super::tasks::Tasks>,
    /// The profile the request came in through (`/p/NAME/mcp`, `--stdio --profile`), and
    /// the client token it carried.
    pub access: crate::contract::Access,
}

/// Where one request's answer goes, as its transport carries it.
pub trait Reply {
    /// Sends `msg` (a keep-alive when `None`) ahead of the answer; false once the client
    /// is gone or has cancelled the request.
    fn event(&mut self, msg: Option<&Message>) -> bool;
    /// Sends the answer (with `status`, over HTTP, when nothing went ahead of it).
    fn finish(self: Box<Self>, status: u16, answer: Message);
    /// Says the gateway is stopping.
    fn stopping(self: Box<Self>);
    /// Gets a message when the client hangs up, where the transport can tell at once
    /// (closing the stream cancels the request, as the revision has it).
    fn hangup(&self) -> Receiver<()> {
        crossbeam_channel::never()
    }
}

/// A transport's `Reply`, boxed: one copy of the serving code for every transport.
pub type Out<'a> = Box<dyn Reply + 'a>;

/// Whatever a transport holds until a request is with the hub (the drain's admission).
pub trait Held {}
impl<T> Held for T {}

/// Serves `req` (checked already) to `out`; `admitted` is held until it is with the hub.
pub fn serve(
    ends: &Ends,
    out: Out<'_>,
    req: Request,
    params: Option<Value>,
    meta: Meta,
    admitted: Box<dyn Held + '_>,
) {
    let state = params
        .as_ref()
        .and_then(|p| p.get("requestState"))
        .and_then(Value::as_str);
    if let Some(state) = state {
        drop(admitted);
        return resume(ends, out, &req, params.as_ref(), state.to_string());
    }
    let refused = |out: Out<'_>, status: u16, error: ErrorObject| {
        let answer = jsonrpc::Response {
            id: Some(req.id.clone()),
            outcome: Err(error),
        };
        out.finish(status, Message::Response(answer))
    };
    if tasks::METHODS.contains(&req.method.as_str()) {
        drop(admitted);
        if !tasks::declared(&meta) {
            return refused(out, 400, tasks::missing());
        }
        let answer = ends.tasks.answer(ends, &req.method, params.as_ref());
        return match answer {
            Ok(done) => {
                let answer = jsonrpc::Response::ok(req.id, jsonrpc::to_raw(&done));
                out.finish(200, Message::Response(answer))
            }
            Err(error) => refused(out, 200, error),
        };
    }
    // A tool its backend may run as a task is run so for a client that takes tasks; one
    // it runs only so needs a client that does.
    let name = modern::name_of(&req.method, params.as_ref());
    let task_support = (req.method == "tools/call")
        .then(|| ends.router.task_support(name.as_deref()?))
        .flatten();
    let as_task = task_support.is_some() && tasks::declared(&meta);
    if task_support == Some(true) && !as_task {
        drop(admitted);
        return refused(out, 400, tasks::missing());
    }
    let Some(session) = Private::open(ends) else {
        return out.stopping();
    };
    let init = Request {
        id: Id::number(0),
        method: "initialize".into(),
        params: Some(jsonrpc::to_raw(&modern::initialize_params(&meta))),
    };
    if !session.send(Message::Request(init)) {
        return out.stopping();
    }
    let initialized = loop {
        match session.next(Duration::from_secs(60)) {
            Next::Message(Message::Response(r)) => break r.outcome,
            Next::Message(_) => continue,
            Next::HungUp => return,
            Next::Quiet | Next::Ended => return out.stopping(),
        }
    };
    if req.method == "server/discover" {
        drop(admitted);
        let outcome = initialized
            .map(|r| {
                let v: Value = serde_json::from_str(r.get()).unwrap_or_default();
                jsonrpc::to_raw(&modern::discover(&v))
            })
            .map_err(modern::error);
        let answer = jsonrpc::Response {
            id: Some(req.id),
            outcome,
        };
        return out.finish(200, Message::Response(answer));
    }
    let note = jsonrpc::Notification {
        method: "notifications/initialized".into(),
        params: None,
    };
    if !session.send(Message::Notification(note)) {
        return out.stopping();
    }
    if req.method == "subscriptions/listen" {
        drop(admitted);
        return listen(out, session, &req, params.as_ref(), ends);
    }
    let mut legacy = modern::legacy_params(params.as_ref());
    if as_task && let Some(Value::Object(p)) = &mut legacy {
        p.insert("task".into(), json!({"ttl": tasks::MAX_TTL_MS}));
    }
    let forwarded = Request {
        id: req.id.clone(),
        method: req.method.clone(),
        params: legacy.map(|p| jsonrpc::to_raw(&p)),
    };
    if !session.send(Message::Request(forwarded)) {
        return out.stopping();
    }
    drop(admitted);
    let call = Call {
        method: req.method.clone(),
        name,
        id: req.id.clone(),
        reply: req.id,
        meta,
        as_task,
    };
    answer(out, session, call, ends);
}

/// Messages one request's session may have queued (progress and log lines, its answer).
const QUEUE: usize = 256;
/// How long a call waits for its client's retry with the input it asked for.
const PARKED_FOR: Duration = Duration::from_secs(600);
/// Calls waiting for input at once; beyond them the oldest is given up.
const MAX_PARKED: usize = 1000;
/// A backend's requests this close together go to the client in one `input_required`.
const GATHER: Duration = Duration::from_millis(100);
/// How long a listen stream waits for its resource subscriptions to be answered before it
/// acknowledges those that were.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(10);

/// Where the hub's messages for a modern request's session go: its answer's thread.
struct OneRequest(Queue);

impl Sink for OneRequest {
    fn offer(&self, out: Outbound) -> Result<(), Refused> {
        self.0.offer(out)
    }
}

/// The hub's session for one modern request; ends it (and so the call) when dropped.
pub(super) struct Private {
    id: String,
    hub: Sender<HubEvent>,
    router: Router,
    rx: Receiver<Queued>,
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.hub.send(HubEvent::ClientGone {
            session: self.id.clone(),
        });
    }
}

/// What a modern request's session has for it next.
pub(super) enum Next {
    Message(Message),
    /// Nothing within the wait.
    Quiet,
    /// The session ended (the gateway is stopping).
    Ended,
    /// The client hung up.
    HungUp,
}

impl Private {
    fn open(ends: &Ends) -> Option<Private> {
        let id = crate::ids::new_session_id(&ends.instance);
        let (queue, rx) = Queue::new(QUEUE);
        let opened = HubEvent::ClientOpened {
            session: id.clone(),
            sink: Box::new(OneRequest(queue)),
            transport: STATELESS,
            access: ends.access.clone(),
        };
        ends.hub.send(opened).ok()?;
        Some(Private {
            id,
            hub: ends.hub.clone(),
            router: ends.router.clone(),
            rx,
        })
    }

    pub(super) fn id(&self) -> &str {
        &self.id
    }

    pub(super) fn router(&self) -> Router {
        self.router.clone()
    }

    pub(super) fn send(&self, msg: Message) -> bool {
        self.router.dispatch(&self.id, msg).is_ok()
    }

    pub(super) fn next(&self, wait: Duration) -> Next {
        self.next_unless(wait, &crossbeam_channel::never())
    }

    /// `next`, or `Next::HungUp` as soon as `hangup` says the client is gone.
    pub(super) fn next_unless(&self, wait: Duration, hangup: &Receiver<()>) -> Next {
        crossbeam_channel::select! {
            recv(self.rx) -> out => match out {
                Ok(out) => Next::Message(out.into_inner().msg),
                Err(_) => Next::Ended,
            },
            recv(hangup) -> _ => Next::HungUp,
            default(wait) => Next::Quiet,
        }
    }

    /// Answers a backend's request to the client with an error.
    /// Answers a backend's `roots/list` for a client that declared no roots: none.
    pub(super) fn no_roots(&self, req: Request) {
        let none = jsonrpc::to_raw(&json!({"roots": []}));
        self.send(Message::Response(jsonrpc::Response::ok(req.id, none)));
    }

    pub(super) fn refuse(&self, req: Request, message: String) {
        let error = jsonrpc::Response::error(Some(req.id), jsonrpc::METHOD_NOT_FOUND, message);
        self.send(Message::Response(error));
    }
}

/// A call waiting for its client's input.
struct Waiting {
    session: Private,
    /// The call the state belongs to: its method and name (or URI).
    method: String,
    name: Option<String>,
    /// The id the call runs under in its session (its first POST's).
    call: Id,
    /// The keys the client must answer, with the backend requests they answer.
    asked: Vec<(String, Id)>,
    meta: Meta,
    as_task: bool,
    /// The endpoint (profile) and client token the call came through: only they resume it.
    access: crate::contract::Access,
    until: Instant,
}

/// The calls waiting for their clients' input, by `requestState`.
#[derive(Default)]
pub struct Parked(Mutex<HashMap<String, Waiting>>);

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiting>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks `waiting` under `state`; the expired go (their calls end with their sessions).
    /// A client (token and endpoint) holds at most `PER_CLIENT` parked calls, and past
    /// `MAX_PARKED` in all the biggest holder gives up its oldest: one client's flood never
    /// pushes out another's call.
    fn park(&self, state: String, waiting: Waiting) {
        let mut parked = self.lock();
        let now = Instant::now();
        parked.retain(|_, w| w.until > now);
        let held: Vec<(String, &crate::contract::Access, Instant)> = parked
            .iter()
            .map(|(k, w)| (k.clone(), &w.access, w.until))
            .collect();
        let forget = modern::to_forget(&held, &waiting.access, modern::PER_CLIENT, MAX_PARKED);
        if let Some(oldest) = forget {
            log::warn!(
                "a call parked for its client's input was given up: {} calls wait for input, at most {} of one client's",
                parked.len(),
                modern::PER_CLIENT
            );
            parked.remove(&oldest);
        }
        parked.insert(state, waiting);
    }

    fn take(&self, state: &str) -> Option<Waiting> {
        self.lock()
            .remove(state)
            .filter(|w| w.until > Instant::now())
    }

    fn put_back(&self, state: String, waiting: Waiting) {
        self.lock().insert(state, waiting);
    }
}

/// A retry with `requestState`: the waiting call gets its input and goes on.
fn resume(ends: &Ends, out: Out<'_>, req: &Request, params: Option<&Value>, state: String) {
    let refuse = |out: Out<'_>, message: String| {
        let error = ErrorObject {
            code: INVALID_PARAMS,
            message,
            data: None,
        };
        let answer = jsonrpc::Response {
            id: Some(req.id.clone()),
            outcome: Err(error),
        };
        out.finish(200, Message::Response(answer))
    };
    let Some(waiting) = ends.parked.take(&state) else {
        let issuer = state.split('.').next().unwrap_or_default();
        let why = if issuer != ends.instance && !issuer.is_empty() {
            format!(
                "invalid params: this requestState was issued by gateway instance '{issuer}', and this is '{}'; a retry must reach the instance that asked (see docs/operations.md, several instances)",
                ends.instance
            )
        } else {
            "invalid params: requestState is not one this gateway issued, or it was used or expired: call again without it".into()
        };
        return refuse(out, why);
    };
    if waiting.access != ends.access {
        ends.parked.put_back(state, waiting);
        return refuse(
            out,
            "invalid params: this requestState was issued at another endpoint or to another token; retry where the call was made".into(),
        );
    }
    let name = modern::name_of(&req.method, params);
    if waiting.method != req.method || waiting.name != name {
        let why = format!(
            "invalid params: this requestState belongs to {} '{}', not {} '{}'",
            waiting.method,
            waiting.name.as_deref().unwrap_or(""),
            req.method,
            name.as_deref().unwrap_or("")
        );
        ends.parked.put_back(state, waiting);
        return refuse(out, why);
    }
    let responses = params.and_then(|p| p.get("inputResponses"));
    if let Some((key, _)) = waiting
        .asked
        .iter()
        .find(|(key, _)| responses.and_then(|r| r.get(key)).is_none())
    {
        let why = format!("invalid params: inputResponses lacks '{key}', which the call asked for");
        ends.parked.put_back(state, waiting);
        return refuse(out, why);
    }
    let Waiting {
        session,
        method,
        name,
        call,
        asked,
        meta,
        as_task,
        ..
    } = waiting;
    for (key, id) in asked {
        let answer = responses
            .and_then(|r| r.get(&key))
            .cloned()
            .unwrap_or_default();
        let reply = jsonrpc::Response::ok(id, jsonrpc::to_raw(&answer));
        if !session.send(Message::Response(reply)) {
            return out.stopping();
        }
    }
    let call = Call {
        method,
        name,
        id: call,
        reply: req.id.clone(),
        meta,
        as_task,
    };
    answer(out, session, call, ends);
}

/// The call a POST answers: the id it runs under in its session, and the id the client
/// awaits its answer under (a retry's own).
struct Call {
    method: String,
    name: Option<String>,
    id: Id,
    reply: Id,
    meta: Meta,
    /// Asked of its backend as a task.
    as_task: bool,
}

impl Call {
    /// Whether `r` is the backend's answer to this call.
    fn answered_by(&self, r: &jsonrpc::Response) -> bool {
        r.id.as_ref().map(|i| i.raw().get()) == Some(self.id.raw().get())
    }
}

/// The client's answer to `call` from its backend's answer `r`: a task it made, named for
/// the client, or the result as a modern client gets it.
fn finish(
    out: Out<'_>,
    session: Private,
    call: Call,
    r: jsonrpc::Response,
    ends: &Ends,
    early: Vec<Request>,
) {
    let created = match &r.outcome {
        Ok(o) if call.as_task => serde_json::from_str::<Value>(o.get())
            .ok()
            .filter(|v| v.get("task").is_some_and(Value::is_object)),
        _ => None,
    };
    if let Some(created) = created {
        let task = ends.tasks.adopt(ends, session, &created, call.meta, early);
        let answer = jsonrpc::Response::ok(call.reply, jsonrpc::to_raw(&task));
        return out.finish(200, Message::Response(answer));
    }
    let outcome = r
        .outcome
        .map(|o| decorate(&call.method, &o))
        .map_err(modern::error);
    let answer = jsonrpc::Response {
        id: Some(call.reply),
        outcome,
    };
    out.finish(200, Message::Response(answer))
}

/// Answers `call` from its session: progress and the log lines the client asked for as
/// events, then the answer (as JSON when it comes first and alone); a backend's requests
/// to the client as `input_required`, the session parked for the retry.
fn answer(mut out: Out<'_>, session: Private, call: Call, ends: &Ends) {
    let keepalive = ends.keepalive;
    // A task's requests for input that come before the task itself: the task's.
    let mut early = Vec::new();
    loop {
        // Asked anew each time: the transport's watch changes when a stream starts.
        let msg = match session.next_unless(keepalive, &out.hangup()) {
            Next::Message(msg) => msg,
            Next::Quiet => {
                if !out.event(None) {
                    return;
                }
                continue;
            }
            // The session ends with this thread, which cancels the call at its backend.
            Next::HungUp => return,
            Next::Ended => return out.stopping(),
        };
        match msg {
            Message::Response(r) if call.answered_by(&r) => {
                return finish(out, session, call, r, ends, early);
            }
            Message::Request(r) if call.as_task && tasks::names_task(&r) => early.push(r),
            Message::Request(first) => {
                return ask_for_input(out, session, call, first, ends);
            }
            Message::Notification(n) if !wanted(&call.meta, &n) => {}
            other => {
                if !out.event(Some(&other)) {
                    return;
                }
            }
        }
    }
}

/// Whether the client gets this notification: log lines only at the level it asked for.
fn wanted(meta: &Meta, n: &jsonrpc::Notification) -> bool {
    if n.method != "notifications/message" {
        return true;
    }
    let level = n
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|p| p.get("level").and_then(Value::as_str).map(str::to_string));
    modern::wants_log(meta.log_level.as_deref(), level.as_deref())
}

/// A backend asked the client for input: the requests that come with `first` become one
/// `input_required` result (or -32021 when the client declared none of what they need).
fn ask_for_input(mut out: Out<'_>, session: Private, call: Call, first: Request, ends: &Ends) {
    let mut requests = vec![first];
    // A backend may ask and answer the call without waiting for the input (the official
    // filesystem server asks for roots so): then the answer is the client's.
    let mut answered = None;
    loop {
        match session.next(GATHER) {
            Next::Message(Message::Request(r)) => requests.push(r),
            Next::Message(Message::Response(r)) if call.answered_by(&r) => {
                answered = Some(r);
                break;
            }
            Next::Message(Message::Notification(n)) if !wanted(&call.meta, &n) => {}
            Next::Message(other) => {
                // Progress and log lines keep their order.
                if !out.event(Some(&other)) {
                    return;
                }
            }
            Next::Quiet | Next::Ended | Next::HungUp => break,
        }
    }
    let declared = |r: &Request| {
        modern::capability_for(&r.method)
            .is_some_and(|cap| call.meta.capabilities.get(cap).is_some())
    };
    if let Some(r) = answered {
        // The call is over: nothing it asked can reach its client any more (and a client
        // that declared no roots has none).
        for q in requests {
            let known = declared(&q);
            decline(&session, q, known, |m| {
                format!("the call was answered before its client could be asked for '{m}'")
            });
        }
        return finish(out, session, call, r, ends, Vec::new());
    }
    // Requests for what the client declared go to it; the others are refused to the
    // backend (which may carry on without); with none left, the client hears -32021.
    let (requests, undeclared): (Vec<Request>, Vec<Request>) =
        requests.into_iter().partition(declared);
    // A server asks for roots on its own account (Playwright's does on its first call, the
    // filesystem server when it starts), and gets on without them: a client that declared
    // none has none. What else was asked, the call cannot do without.
    let missing = undeclared
        .iter()
        .filter(|r| r.method != "roots/list")
        .find_map(|r| modern::capability_for(&r.method));
    for r in undeclared {
        decline(&session, r, false, |m| {
            format!("the client did not declare the capability '{m}' needs")
        });
    }
    if requests.is_empty() && missing.is_none() {
        return answer(out, session, call, ends);
    }
    if requests.is_empty() {
        let answer = jsonrpc::Response {
            id: Some(call.reply.clone()),
            outcome: Err(modern::missing(missing.unwrap_or("sampling"))),
        };
        return out.finish(400, Message::Response(answer));
    }
    let mut inputs = Map::new();
    let mut asked = Vec::new();
    for (n, r) in requests.into_iter().enumerate() {
        let kind = modern::capability_for(&r.method).unwrap_or("input");
        let key = format!("{kind}-{}", n + 1);
        let params = r
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
            .unwrap_or_else(|| json!({}));
        inputs.insert(key.clone(), json!({"method": r.method, "params": params}));
        asked.push((key, r.id));
    }
    let state = format!("{}.{}", ends.instance, crate::ids::new_secret());
    let mut result = Map::new();
    result.insert("resultType".into(), Value::from("input_required"));
    result.insert("inputRequests".into(), Value::Object(inputs));
    result.insert("requestState".into(), Value::from(state.clone()));
    let result = modern::result(&call.method, result);
    let answer = jsonrpc::Response {
        id: Some(call.reply.clone()),
        outcome: Ok(jsonrpc::to_raw(&result)),
    };
    ends.parked.park(
        state,
        Waiting {
            session,
            method: call.method,
            name: call.name,
            call: call.id,
            asked,
            meta: call.meta,
            as_task: call.as_task,
            access: ends.access.clone(),
            until: Instant::now() + PARKED_FOR,
        },
    );
    out.finish(200, Message::Response(answer));
}

/// Declines a backend's request its client will not see: a `roots/list` the client has no
/// roots for (it declared none) gets an empty list, anything else the error `why` says.
fn decline(session: &Private, req: Request, declared: bool, why: impl FnOnce(&str) -> String) {
    if req.method == "roots/list" && !declared {
        return session.no_roots(req);
    }
    let why = why(&req.method);
    session.refuse(req, why);
}

/// `subscriptions/listen`: the acknowledgement, then the list changes and resource updates
/// the client asked for, each tagged with the listen request's id, until the client
/// closes the stream (which ends the session and its resource subscriptions) or the
/// gateway stops (which ends it with a result, as the revision asks).
fn listen(mut out: Out<'_>, session: Private, req: &Request, params: Option<&Value>, ends: &Ends) {
    let wanted = params
        .and_then(|p| p.get("notifications"))
        .cloned()
        .unwrap_or_default();
    let flag = |name: &str| wanted.get(name).and_then(Value::as_bool) == Some(true);
    let kinds: Vec<(&str, &str)> = [
        ("toolsListChanged", "notifications/tools/list_changed"),
        ("promptsListChanged", "notifications/prompts/list_changed"),
        (
            "resourcesListChanged",
            "notifications/resources/list_changed",
        ),
    ]
    .into_iter()
    .filter(|(name, _)| flag(name))
    .collect();
    let uris: Vec<String> = wanted
        .get("resourceSubscriptions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    for (n, uri) in uris.iter().enumerate() {
        let subscribe = Request {
            id: Id::number(1 + n as u64),
            method: "resources/subscribe".into(),
            params: Some(jsonrpc::to_raw(&json!({ "uri": uri }))),
        };
        session.send(Message::Request(subscribe));
    }
    // Only what was agreed is acknowledged: each subscription's answer is waited for (what
    // else comes meanwhile waits behind the acknowledgement, which must come first).
    let mut agreed_uris = Vec::new();
    let mut early = Vec::new();
    let mut left: Vec<usize> = (0..uris.len()).collect();
    let until = Instant::now() + SUBSCRIBE_WAIT;
    while !left.is_empty() {
        let wait = until.saturating_duration_since(Instant::now());
        match session.next_unless(wait, &out.hangup()) {
            Next::Message(Message::Response(r)) => {
                let n =
                    r.id.as_ref()
                        .and_then(Id::as_u64)
                        .and_then(|i| usize::try_from(i).ok()?.checked_sub(1));
                if let Some(n) = n.filter(|n| left.contains(n)) {
                    left.retain(|l| *l != n);
                    match r.outcome {
                        Ok(_) => agreed_uris.push(n),
                        Err(e) => log::debug!(
                            "subscriptions/listen: '{}' not subscribed: {}",
                            uris[n],
                            e.message
                        ),
                    }
                }
            }
            Next::Message(other) => early.push(other),
            Next::HungUp => return,
            Next::Quiet | Next::Ended => break,
        }
    }
    agreed_uris.sort_unstable();
    let uris: Vec<String> = agreed_uris.into_iter().map(|n| uris[n].clone()).collect();
    let id: Value = serde_json::from_str(req.id.raw().get()).unwrap_or_default();
    let tag = |mut params: Map<String, Value>| {
        let meta = params.entry("_meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("io.modelcontextprotocol/subscriptionId".into(), id.clone());
        }
        params
    };
    let mut agreed = Map::new();
    for (name, _) in &kinds {
        agreed.insert((*name).into(), Value::Bool(true));
    }
    if !uris.is_empty() {
        agreed.insert("resourceSubscriptions".into(), json!(uris));
    }
    let ack = tag(Map::from_iter([(
        "notifications".to_string(),
        Value::Object(agreed),
    )]));
    let ack = jsonrpc::Notification {
        method: "notifications/subscriptions/acknowledged".into(),
        params: Some(jsonrpc::to_raw(&ack)),
    };
    if !out.event(Some(&Message::Notification(ack))) {
        return;
    }
    let keepalive = ends.keepalive;
    let mut early = early.into_iter();
    loop {
        let next = match early.next() {
            Some(msg) => Next::Message(msg),
            None => session.next_unless(keepalive, &out.hangup()),
        };
        let msg = match next {
            Next::Message(Message::Notification(n)) => n,
            Next::Message(_) => continue, // the subscriptions' answers
            Next::Quiet => {
                if !out.event(None) {
                    return;
                }
                continue;
            }
            Next::HungUp => return,
            Next::Ended => break,
        };
        let params: Map<String, Value> = msg
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let asked = kinds.iter().any(|(_, method)| *method == msg.method)
            || (msg.method == "notifications/resources/updated"
                && params
                    .get("uri")
                    .and_then(Value::as_str)
                    .is_some_and(|u| uris.iter().any(|w| w == u)));
        if !asked {
            continue;
        }
        let tagged = jsonrpc::Notification {
            method: msg.method,
            params: Some(jsonrpc::to_raw(&tag(params))),
        };
        if !out.event(Some(&Message::Notification(tagged))) {
            return;
        }
    }
    // The gateway is stopping: the subscription ends gracefully.
    let done = modern::result("subscriptions/listen", tag(Map::new()));
    let answer = jsonrpc::Response {
        id: Some(req.id.clone()),
        outcome: Ok(jsonrpc::to_raw(&done)),
    };
    out.finish(200, Message::Response(answer));
}

/// A legacy result as a modern client gets it.
fn decorate(method: &str, result: &RawValue) -> Box<RawValue> {
    match serde_json::from_str::<Map<String, Value>>(result.get()) {
        Ok(map) => jsonrpc::to_raw(&modern::result(method, map)),
        Err(_) => result.to_owned(),
    }
}
