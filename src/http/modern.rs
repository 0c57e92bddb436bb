//! `/mcp` for protocol 2026-07-28 clients: one POST, one request, no session. The request
//! is checked with its headers (`crate::modern::check`) and served by
//! `crate::stateless::serve`; its answer goes back as JSON when it comes first and alone,
//! else as an SSE stream. Closing the stream ends the request's hub session, which
//! cancels it at its backend, as the revision requires.

use super::server::{Request as HttpRequest, Response, Stream, Watch};
use super::{Shared, sse_head};
use crate::jsonrpc::{self, Message};
use crate::modern;
use crate::sse;
use crate::stateless::{self, Reply};
use log::debug;
use serde_json::Value;
use std::sync::Arc;

/// Serves one modern message (`streamable::post` found no session and a modern request).
pub(super) fn post(
    shared: &Arc<Shared>,
    rq: HttpRequest<'_>,
    msg: Message,
    access: crate::contract::Access,
) {
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
    let meta = match modern::check(&req.method, params.as_ref(), Some(&|h: &str| rq.header(h))) {
        Ok(meta) => meta,
        Err(refusal) => return refuse(rq, shared, req, refusal),
    };
    // Arguments the tool mirrors into Mcp-Param-* headers must be there, and equal.
    let mirrored = modern::name_of(&req.method, params.as_ref())
        .filter(|_| req.method == "tools/call")
        .and_then(|tool| shared.router.mirrored(&tool));
    if let Some(mirrored) = mirrored {
        let arguments = params.as_ref().and_then(|p| p.get("arguments"));
        if let Err(refusal) = modern::check_params(arguments, &mirrored, &|h: &str| rq.header(h)) {
            return refuse(rq, shared, req, refusal);
        }
    }
    // Held until the request is with the hub, so a drain counts it.
    let Some(admitted) = shared.admit() else {
        return rq.respond(super::draining_refusal(shared));
    };
    let _writing = shared.writers.enter();
    let out = Box::new(Out::new(rq, shared));
    let ends = stateless::Ends {
        access,
        ..shared.modern.clone()
    };
    stateless::serve(&ends, out, req, params, meta, Box::new(admitted));
}

/// Answers a request the checks refused, with the status and error they name.
fn refuse(rq: HttpRequest<'_>, shared: &Shared, req: jsonrpc::Request, refusal: modern::Refusal) {
    debug!(
        "http: refused a 2026-07-28 {}: {}",
        req.method, refusal.error.message
    );
    let answer = jsonrpc::Response {
        id: Some(req.id),
        outcome: Err(refusal.error),
    };
    Box::new(Out::new(rq, shared)).finish(refusal.status, Message::Response(answer));
}

/// Where a POST's answer goes: nothing sent yet (a JSON answer is still possible), or an
/// SSE stream under way.
struct Out<'a> {
    state: State<'a>,
    shared: &'a Shared,
}

enum State<'a> {
    /// Nothing sent yet; the connection is watched for the client hanging up.
    Waiting(HttpRequest<'a>, Watch),
    Streaming(Stream),
    Gone,
}

impl<'a> Out<'a> {
    fn new(rq: HttpRequest<'a>, shared: &'a Shared) -> Out<'a> {
        let watch = rq.watch_hangup();
        Out {
            state: State::Waiting(rq, watch),
            shared,
        }
    }
}

impl Reply for Out<'_> {
    fn event(&mut self, msg: Option<&Message>) -> bool {
        let mut bytes = Vec::new();
        if let State::Waiting(..) = self.state {
            let State::Waiting(rq, watch) = std::mem::replace(&mut self.state, State::Gone) else {
                unreachable!("just matched")
            };
            // The stream watches the connection from here on.
            drop(watch);
            bytes.extend(sse_head("").into_bytes());
            self.state = State::Streaming(rq.into_writer());
        }
        match msg {
            Some(m) => bytes.extend(sse::chunked_event(None, "message", &m.to_json())),
            None => bytes.extend(sse::chunk(sse::KEEPALIVE.as_bytes())),
        }
        let State::Streaming(w) = &mut self.state else {
            return false;
        };
        if let Err(e) = super::send(w, &bytes) {
            debug!("http: a 2026-07-28 client closed its stream: {e}");
            self.state = State::Gone;
            return false;
        }
        true
    }

    fn finish(self: Box<Self>, status: u16, answer: Message) {
        // Charged to the answers' budget until written.
        let Some((json, _charge)) = super::charged(self.shared, answer) else {
            return;
        };
        match self.state {
            State::Waiting(rq, watch) => {
                drop(watch);
                rq.respond(Response::json(status, json))
            }
            State::Streaming(mut w) => {
                let mut bytes = sse::chunked_event(None, "message", &json);
                bytes.extend_from_slice(sse::LAST_CHUNK);
                let _ = super::send(&mut w, &bytes);
            }
            State::Gone => {}
        }
    }

    fn stopping(self: Box<Self>) {
        if let State::Waiting(rq, watch) = self.state {
            drop(watch);
            rq.respond(Response::text(503, "the gateway is shutting down"));
        }
    }

    fn hangup(&self) -> crossbeam_channel::Receiver<()> {
        match &self.state {
            State::Waiting(_, watch) => watch.rx.clone(),
            State::Streaming(stream) => stream.hangup(),
            State::Gone => crossbeam_channel::never(),
        }
    }
}
