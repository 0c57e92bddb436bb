//! `/mcp` for protocol 2026-07-28 clients: one POST, one request, no session. The request is
//! checked (`crate::modern`), then runs in a session of its own in the hub, opened with an
//! `initialize` made from its `_meta` and ended with its answer, so routing, timeouts,
//! progress and cancellation are the legacy ones. Closing the response stream ends that
//! session, which cancels the request at its backend, as the revision requires.

use super::server::{Request as HttpRequest, Response};
use super::{Shared, sse_head};
use crate::contract::{HubEvent, Outbound, Queue, Queued, Refused, Sink};
use crate::jsonrpc::{self, ErrorObject, Id, Message, Request};
use crate::modern::{self, Meta};
use crate::sse;
use crossbeam_channel::Receiver;
use log::debug;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Messages one request's session may have queued (progress and log lines, its answer).
const QUEUE: usize = 256;

/// Where the hub's messages for a modern request's session go: the one waiting POST.
struct OneRequest(Queue);

impl Sink for OneRequest {
    fn offer(&self, out: Outbound) -> Result<(), Refused> {
        self.0.offer(out)
    }
}

/// The hub's session for one modern request; ends it when dropped.
struct Private {
    id: String,
    shared: Arc<Shared>,
    rx: Receiver<Queued>,
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.shared.hub.send(HubEvent::ClientGone {
            session: self.id.clone(),
        });
    }
}

impl Private {
    fn open(shared: &Arc<Shared>) -> Option<Private> {
        let id = super::new_session_id(&shared.opts.instance);
        let (queue, rx) = Queue::new(QUEUE);
        let opened = HubEvent::ClientOpened {
            session: id.clone(),
            sink: Box::new(OneRequest(queue)),
            transport: "streamable-http",
        };
        shared.hub.send(opened).ok()?;
        Some(Private {
            id,
            shared: shared.clone(),
            rx,
        })
    }

    fn send(&self, msg: Message) -> bool {
        self.shared.router.dispatch(&self.id, msg).is_ok()
    }

    /// The next message for this session. A backend's request to the client is refused
    /// at once (a modern client takes none; `input_required` stands in for them in a later
    /// step), and when the client did not declare the capability it needs, that is what
    /// the client hears (-32021).
    fn next(&self, wait: std::time::Duration, capabilities: &Value) -> Next {
        loop {
            let out = match self.rx.recv_timeout(wait) {
                Ok(out) => out.into_inner(),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => return Next::Quiet,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Next::Ended,
            };
            let Message::Request(r) = out.msg else {
                return Next::Message(out.msg);
            };
            let needs = modern::capability_for(&r.method);
            let refusal = jsonrpc::Response::error(
                Some(r.id),
                jsonrpc::METHOD_NOT_FOUND,
                format!(
                    "'{}' cannot reach a 2026-07-28 client through the gateway yet",
                    r.method
                ),
            );
            self.send(Message::Response(refusal));
            if let Some(cap) = needs
                && capabilities.get(cap).is_none()
            {
                return Next::Missing(cap);
            }
        }
    }
}

/// What a modern request's session has for it next.
enum Next {
    Message(Message),
    /// Nothing within the wait.
    Quiet,
    /// The session ended (the gateway is stopping).
    Ended,
    /// A backend needs a client capability the request did not declare.
    Missing(&'static str),
}

/// Serves one modern message (`streamable::post` found no session and a modern request).
pub(super) fn post(shared: &Arc<Shared>, rq: HttpRequest<'_>, msg: Message) {
    let req = match msg {
        Message::Request(r) => r,
        // Nothing a modern client notifies needs the gateway (cancellation is the stream's
        // close over HTTP).
        Message::Notification(_) => return rq.respond(Response::text(202, "Accepted")),
        Message::Response(_) => {
            return rq.respond(Response::text(
                400,
                "a 2026-07-28 client sends no responses (input_required replaces server requests)",
            ));
        }
    };
    let params: Option<Value> = req
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str(p.get()).ok());
    let meta = match modern::check(&req.method, params.as_ref(), |h| rq.header(h)) {
        Ok(meta) => meta,
        Err(refusal) => {
            debug!(
                "http: refused a 2026-07-28 {}: {}",
                req.method, refusal.error.message
            );
            return respond(rq, refusal.status, Some(req.id), Err(refusal.error), shared);
        }
    };
    // Held until the request is with the hub, so a drain counts it.
    let Some(admitted) = shared.admit() else {
        return rq.respond(super::draining_refusal(shared));
    };
    let Some(session) = Private::open(shared) else {
        return rq.respond(Response::text(503, "the gateway is shutting down"));
    };
    let stopping = || Response::text(503, "the gateway is shutting down");
    let init = Request {
        id: Id::number(0),
        method: "initialize".into(),
        params: Some(jsonrpc::to_raw(&modern::initialize_params(&meta))),
    };
    if !session.send(Message::Request(init)) {
        return rq.respond(stopping());
    }
    let initialized = loop {
        match session.next(std::time::Duration::from_secs(60), &meta.capabilities) {
            Next::Message(Message::Response(r)) => break r.outcome,
            Next::Message(_) | Next::Missing(_) => continue,
            Next::Quiet | Next::Ended => return rq.respond(stopping()),
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
        return respond(rq, 200, Some(req.id), outcome, shared);
    }
    let note = jsonrpc::Notification {
        method: "notifications/initialized".into(),
        params: None,
    };
    let forwarded = Request {
        id: req.id.clone(),
        method: req.method.clone(),
        params: modern::legacy_params(params.as_ref()).map(|p| jsonrpc::to_raw(&p)),
    };
    if !session.send(Message::Notification(note)) || !session.send(Message::Request(forwarded)) {
        return rq.respond(stopping());
    }
    drop(admitted);
    let _writing = shared.writers.enter();
    answer(rq, &session, &req, &meta, shared);
}

/// The request's answer as JSON when it comes first and alone, else as an SSE stream of
/// its progress and log lines (those the client asked for), then the answer.
fn answer(rq: HttpRequest<'_>, session: &Private, req: &Request, meta: &Meta, shared: &Shared) {
    let keepalive = shared.opts.keepalive;
    let wanted = |msg: &Message| match msg {
        Message::Notification(n) if n.method == "notifications/message" => {
            let level = n
                .params
                .as_deref()
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .and_then(|p| p.get("level").and_then(Value::as_str).map(str::to_string));
            modern::wants_log(meta.log_level.as_deref(), level.as_deref())
        }
        _ => true,
    };
    let first = loop {
        match session.next(keepalive, &meta.capabilities) {
            Next::Message(msg) if !wanted(&msg) => continue,
            Next::Message(msg) => break Some(msg),
            Next::Quiet => break None,
            Next::Ended => return rq.respond(Response::text(503, "the gateway is shutting down")),
            Next::Missing(cap) => {
                return respond(
                    rq,
                    400,
                    Some(req.id.clone()),
                    Err(modern::missing(cap)),
                    shared,
                );
            }
        }
    };
    if let Some(Message::Response(r)) = first {
        return respond(
            rq,
            200,
            r.id,
            r.outcome
                .map(|o| decorate(&req.method, &o))
                .map_err(modern::error),
            shared,
        );
    }
    let mut w = rq.into_writer();
    let mut bytes = sse_head("").into_bytes();
    let mut pending = first;
    loop {
        let done = match pending.take() {
            Some(Message::Response(r)) => {
                let outcome = r
                    .outcome
                    .map(|o| decorate(&req.method, &o))
                    .map_err(modern::error);
                let json = Message::Response(jsonrpc::Response { id: r.id, outcome }).to_json();
                shared
                    .bytes_out
                    .fetch_add(json.len() as u64, Ordering::Relaxed);
                bytes.extend(sse::chunked_event(None, "message", &json));
                true
            }
            Some(msg) => {
                bytes.extend(sse::chunked_event(None, "message", &msg.to_json()));
                false
            }
            None => {
                bytes.extend(sse::chunk(sse::KEEPALIVE.as_bytes()));
                false
            }
        };
        if let Err(e) = super::send(&mut w, &bytes) {
            // Closing the stream cancels the request: its session ends when `session` drops.
            debug!(
                "session {}: the client closed its 2026-07-28 stream: {e}",
                session.id
            );
            return;
        }
        bytes.clear();
        if done {
            let _ = super::send(&mut w, sse::LAST_CHUNK);
            return;
        }
        pending = loop {
            match session.next(keepalive, &meta.capabilities) {
                Next::Message(msg) if !wanted(&msg) => continue,
                Next::Message(msg) => break Some(msg),
                Next::Quiet => break None,
                Next::Ended => return,
                Next::Missing(cap) => {
                    // The stream has begun: the refusal is its last event.
                    let msg = Message::Response(jsonrpc::Response {
                        id: Some(req.id.clone()),
                        outcome: Err(modern::missing(cap)),
                    });
                    let _ =
                        super::send(&mut w, &sse::chunked_event(None, "message", &msg.to_json()));
                    let _ = super::send(&mut w, sse::LAST_CHUNK);
                    return;
                }
            }
        };
    }
}

/// A legacy result as a modern client gets it.
fn decorate(
    method: &str,
    result: &serde_json::value::RawValue,
) -> Box<serde_json::value::RawValue> {
    match serde_json::from_str::<Map<String, Value>>(result.get()) {
        Ok(map) => jsonrpc::to_raw(&modern::result(method, map)),
        Err(_) => result.to_owned(),
    }
}

fn respond(
    rq: HttpRequest<'_>,
    status: u16,
    id: Option<Id>,
    outcome: Result<Box<serde_json::value::RawValue>, ErrorObject>,
    shared: &Shared,
) {
    let body = Message::Response(jsonrpc::Response { id, outcome }).to_json();
    shared
        .bytes_out
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    rq.respond(Response::json(status, body));
}
