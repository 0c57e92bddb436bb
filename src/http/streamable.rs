//! The Streamable HTTP transport on `/mcp` (protocol 2025-03-26, 2025-06-18, 2025-11-25).
//!
//! Owns the Streamable HTTP sessions: which POST response streams are open for which
//! client request, the standalone GET stream, and a bounded buffer of GET-stream events
//! for `Last-Event-ID` resumption. The hub sees each session as a `Sink`: it hands over a
//! message with the request it relates to, and this module puts it on that request's POST
//! stream, or else on the GET stream (or in the buffer until one opens).

use crate::contract::sink::{Budget, Charge};
use crate::contract::{
    Access, HubEvent, Outbound, PROTOCOL_VERSIONS, Queue, Queued, Refused, SessionId, Sink,
};
use crate::http::server::{Request as HttpRequest, Response};
use crate::http::{self, Shared, WRITER_STACK};
use crate::jsonrpc::{self, Message, Request};
use crate::sse;
use crossbeam_channel::{Sender, TrySendError, select};
use log::{debug, info, warn};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Instant;

/// GET-stream events kept for `Last-Event-ID` replay: at most this many, and at most
/// `REPLAY_BYTES` besides the newest.
const REPLAY: usize = 1000;
const REPLAY_BYTES: usize = 4 * 1024 * 1024;
/// Bytes queued for a GET stream before its client counts as not reading.
const GET_BYTES: usize = crate::config::DEFAULT_MAX_MESSAGE + crate::contract::sink::QUEUE_BYTES;
/// Messages queued for one POST response stream.
const STREAM_QUEUE: usize = 256;
/// Methods answered at once, with nothing sent before the result: JSON responses.
const QUICK: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
];

/// The live Streamable HTTP sessions.
#[derive(Default)]
pub struct Streams {
    sessions: Mutex<HashMap<SessionId, Arc<StreamSession>>>,
}

impl Streams {
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Arc<StreamSession>>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct StreamSession {
    id: SessionId,
    /// The profile and client token it was opened with.
    access: Access,
    state: Mutex<State>,
}

#[derive(Clone)]
struct Event {
    id: u64,
    json: Arc<str>,
}

/// The session's open GET stream: its writer's channel and that channel's byte budget.
struct GetStream {
    generation: u64,
    tx: Sender<(Event, Charge)>,
    budget: Budget,
}

struct State {
    /// Open POST response streams, by the client request id (raw JSON text).
    requests: HashMap<String, Queue>,
    /// The standalone GET stream, with a generation so a replaced one can tell.
    get: Option<GetStream>,
    get_generation: u64,
    /// GET-stream events, newest last, for replay, and their bytes.
    events: VecDeque<Event>,
    events_bytes: usize,
    /// Highest event id handed to a GET stream.
    delivered: u64,
    next_event: u64,
    last_seen: Instant,
    opened: Instant,
    /// It sent a request other than `initialize`.
    used: bool,
    version: Option<String>,
    gone: bool,
}

impl StreamSession {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.next_event += 1;
        self.next_event
    }

    /// Queues a message for the GET stream (or for whoever opens one next).
    fn queue_for_get(&mut self, msg: &Message) -> Result<(), Refused> {
        let event = Event {
            id: self.next_id(),
            json: msg.to_json().into(),
        };
        let size = event.json.len();
        while self.events.len() >= REPLAY || (self.events_bytes + size > REPLAY_BYTES) {
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.events_bytes -= old.json.len();
        }
        self.events.push_back(event.clone());
        self.events_bytes += size;
        if let Some(GetStream { tx, budget, .. }) = &self.get {
            if tx.len() >= http::SESSION_QUEUE {
                return Err(Refused::Full);
            }
            let Some(charge) = budget.charge(size) else {
                return Err(Refused::Full);
            };
            match tx.try_send((event.clone(), charge)) {
                Ok(()) => self.delivered = event.id,
                Err(TrySendError::Full(_)) => return Err(Refused::Full),
                Err(TrySendError::Disconnected(_)) => self.get = None,
            }
        }
        Ok(())
    }
}

/// The hub's handle on a session. Dropped by the hub, it ends the session here too.
struct SessionSink(Arc<StreamSession>);

impl Sink for SessionSink {
    fn offer(&self, out: Outbound) -> Result<(), Refused> {
        let mut st = self.0.lock();
        if st.gone {
            return Err(Refused::Closed);
        }
        if let Some(related) = &out.related {
            let key = related.raw().get();
            if let Some(tx) = st.requests.get(key).cloned() {
                let last =
                    matches!(&out.msg, Message::Response(r) if r.id.as_ref() == Some(related));
                if last {
                    st.requests.remove(key);
                }
                match tx.push(out) {
                    Ok(()) => return Ok(()),
                    Err(TrySendError::Full(_)) => return Err(Refused::Full),
                    // The client left that stream: the message goes to the GET stream.
                    Err(TrySendError::Disconnected(out)) => return st.queue_for_get(&out.msg),
                }
            }
        }
        st.queue_for_get(&out.msg)
    }
}

impl Drop for SessionSink {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.gone = true;
        st.requests.clear();
        st.get = None;
    }
}

pub fn handle(shared: &Arc<Shared>, rq: HttpRequest<'_>, access: Access) {
    // Without a session, a POST may be a 2026-07-28 request, which `post` tells apart.
    let sessionless_post = rq.method() == "POST" && rq.header("Mcp-Session-Id").is_none();
    if let Some(v) = rq.header("MCP-Protocol-Version")
        && !PROTOCOL_VERSIONS.contains(&v)
        && !sessionless_post
    {
        let msg = format!(
            "unsupported MCP-Protocol-Version '{v}' (this gateway speaks {})",
            PROTOCOL_VERSIONS.join(", ")
        );
        return rq.respond(Response::text(400, &msg));
    }
    let session = match rq.header("Mcp-Session-Id") {
        None => None,
        Some(id) => {
            let found = shared.streams.lock().get(id).cloned();
            match found {
                // A session is served only at the endpoint, and to the token, it was
                // opened with.
                Some(s) if !s.lock().gone && s.access == access => Some(s),
                Some(s) if s.access != access => {
                    let msg = format!("unknown session '{id}' at this endpoint");
                    return rq.respond(Response::text(404, &msg));
                }
                _ => {
                    shared.streams.lock().remove(id);
                    let msg = format!(
                        "unknown or ended session '{id}': send initialize to start a new one"
                    );
                    return rq.respond(Response::text(404, &msg));
                }
            }
        }
    };
    if let Some(s) = &session {
        s.lock().last_seen = Instant::now();
    }
    match rq.method() {
        "POST" => post(shared, rq, session, access),
        "GET" => match session {
            Some(s) => open_get_stream(shared, rq, s),
            None => rq.respond(Response::text(400, "missing Mcp-Session-Id header")),
        },
        "DELETE" => match session {
            Some(s) => {
                end_session(shared, &s, "the client ended it");
                rq.respond(Response::text(200, "session ended"));
            }
            None => rq.respond(Response::text(400, "missing Mcp-Session-Id header")),
        },
        _ => rq.respond(
            Response::text(405, "use POST, GET or DELETE on /mcp")
                .with_header("Allow", "GET, POST, DELETE"),
        ),
    }
}

fn accepts(rq: &HttpRequest<'_>, kind: &str) -> bool {
    rq.header("Accept")
        .is_none_or(|a| a.contains(kind) || a.contains("*/*"))
}

fn post(
    shared: &Arc<Shared>,
    mut rq: HttpRequest<'_>,
    session: Option<Arc<StreamSession>>,
    access: Access,
) {
    if !accepts(&rq, "application/json") && !accepts(&rq, "text/event-stream") {
        return rq.respond(Response::text(
            406,
            "Accept must include application/json and text/event-stream",
        ));
    }
    let body = match rq.read_body() {
        Ok(b) => b,
        Err(response) => return rq.respond(response),
    };
    shared
        .bytes_in
        .fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let is_batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if is_batch {
        parse_batch(&body, session.as_deref())
    } else {
        http::parse_body(&body).map(|m| vec![m])
    };
    let msgs = match parsed {
        Ok(m) => m,
        Err(e) => return rq.respond(http::parse_error_response(e)),
    };
    if session.is_none()
        && let [msg] = msgs.as_slice()
        && crate::modern::is_modern(rq.header("MCP-Protocol-Version"), params_of(msg).as_ref())
    {
        let msg = msgs.into_iter().next().expect("one message");
        return super::modern::post(shared, rq, msg, access);
    }
    if let Some(v) = rq.header("MCP-Protocol-Version")
        && !PROTOCOL_VERSIONS.contains(&v)
    {
        let msg = format!(
            "unsupported MCP-Protocol-Version '{v}' (this gateway speaks {})",
            PROTOCOL_VERSIONS.join(", ")
        );
        return rq.respond(Response::text(400, &msg));
    }
    if session.is_none()
        && !matches!(msgs.as_slice(), [Message::Request(r)] if r.method == "initialize")
    {
        // Also what a client probing for protocol 2026-07-28 gets: a plain 400, so it
        // falls back to initialize.
        return rq.respond(Response::text(
            400,
            "missing Mcp-Session-Id header: start a session with initialize",
        ));
    }
    // Held until the requests are with the hub, so a drain can count them.
    let admitted = if msgs.iter().any(|m| matches!(m, Message::Request(_))) {
        match shared.admit() {
            Some(guard) => Some(guard),
            None => {
                return rq.respond(match &session {
                    Some(s) => {
                        http::draining_session(shared, &s.id, "send initialize to start a new one")
                    }
                    None => http::draining_refusal(shared),
                });
            }
        }
    } else {
        None
    };
    let session = match session {
        Some(s) => s,
        None => {
            if let Some(refusal) = http::no_room(shared) {
                return rq.respond(refusal);
            }
            match open_session(shared, &http::client_of(&rq, &shared.opts), access) {
                Some(s) => s,
                None => return rq.respond(Response::text(503, "the gateway is shutting down")),
            }
        }
    };
    let requests: Vec<&Request> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r),
            _ => None,
        })
        .collect();
    let ids: HashSet<String> = requests
        .iter()
        .map(|r| r.id.raw().get().to_string())
        .collect();
    let quick = !is_batch
        && requests.iter().all(|r| {
            QUICK.contains(&r.method.as_str())
                && !r
                    .params
                    .as_deref()
                    .is_some_and(|p| p.get().contains("progressToken"))
        });
    // Only an initialize result says which version the session speaks.
    let initializing = requests.iter().any(|r| r.method == "initialize");
    let (tx, rx) = Queue::new(STREAM_QUEUE);
    {
        let mut st = session.lock();
        if let Some(dup) = ids.iter().find(|id| st.requests.contains_key(*id)) {
            drop(st);
            let error = jsonrpc::id_in_flight(dup);
            let e = jsonrpc::ParseError {
                code: error.code,
                message: error.message,
                id: None,
            };
            return rq.respond(http::parse_error_response(e));
        }
        for id in &ids {
            st.requests.insert(id.clone(), tx.clone());
        }
        if requests.iter().any(|r| r.method != "initialize") {
            st.used = true;
        }
    }
    drop(tx);
    let had_requests = !ids.is_empty();
    for msg in msgs {
        if shared.router.dispatch(&session.id, msg).is_err() {
            return rq.respond(Response::text(503, "the gateway is shutting down"));
        }
    }
    drop(admitted);
    if !had_requests {
        return rq.respond(Response::text(202, "Accepted"));
    }
    // The connection's own thread waits for the answer and writes it.
    let _writing = shared.writers.enter();
    if quick {
        answer_json(rq, &session, &rx, &ids, initializing, shared);
    } else {
        answer_stream(rq, &session, &rx, ids, shared);
    }
}

/// A message's params as JSON, for telling a 2026-07-28 request by its `_meta`.
fn params_of(msg: &Message) -> Option<serde_json::Value> {
    let params = match msg {
        Message::Request(r) => r.params.as_deref(),
        Message::Notification(n) => n.params.as_deref(),
        Message::Response(_) => None,
    }?;
    if !crate::modern::may_name_revision(Some(params)) {
        return None;
    }
    serde_json::from_str(params.get()).ok()
}

/// A batch (protocol 2025-03-26 only) as messages; `initialize` may not be in one.
fn parse_batch(
    body: &[u8],
    session: Option<&StreamSession>,
) -> Result<Vec<Message>, jsonrpc::ParseError> {
    let invalid = |message: String| jsonrpc::ParseError {
        code: jsonrpc::INVALID_REQUEST,
        message,
        id: None,
    };
    let version = session.and_then(|s| s.lock().version.clone());
    if version.as_deref() != Some("2025-03-26") {
        return Err(invalid(format!(
            "JSON-RPC batches are only part of protocol 2025-03-26; this session uses {}",
            version.as_deref().unwrap_or("none yet")
        )));
    }
    let text = std::str::from_utf8(body).map_err(|e| invalid(format!("body is not UTF-8: {e}")))?;
    jsonrpc::check_payload(text).map_err(|(code, message)| jsonrpc::ParseError {
        code,
        message,
        id: None,
    })?;
    let items: Vec<Box<serde_json::value::RawValue>> =
        serde_json::from_str(text).map_err(|e| jsonrpc::ParseError {
            code: jsonrpc::PARSE_ERROR,
            message: format!("parse error: {e}"),
            id: None,
        })?;
    if items.is_empty() {
        return Err(invalid("an empty batch".into()));
    }
    let msgs = items
        .iter()
        .map(|i| Message::parse(i.get()))
        .collect::<Result<Vec<_>, _>>()?;
    if msgs
        .iter()
        .any(|m| matches!(m, Message::Request(r) if r.method == "initialize"))
    {
        return Err(invalid("initialize must not be part of a batch".into()));
    }
    Ok(msgs)
}

fn open_session(shared: &Arc<Shared>, client: &str, access: Access) -> Option<Arc<StreamSession>> {
    let id = http::new_session_id(&shared.opts.instance);
    let session = Arc::new(StreamSession {
        id: id.clone(),
        access: access.clone(),
        state: Mutex::new(State {
            requests: HashMap::new(),
            get: None,
            get_generation: 0,
            events: VecDeque::new(),
            events_bytes: 0,
            delivered: 0,
            next_event: 0,
            last_seen: Instant::now(),
            opened: Instant::now(),
            used: false,
            version: None,
            gone: false,
        }),
    });
    let opened = HubEvent::ClientOpened {
        session: id.clone(),
        sink: Box::new(SessionSink(session.clone())),
        transport: "streamable-http",
        access,
    };
    shared.hub.send(opened).ok()?;
    shared.streams.lock().insert(id.clone(), session.clone());
    info!("session {id}: Streamable HTTP session started by {client}");
    Some(session)
}

pub(super) fn end_session(shared: &Shared, session: &StreamSession, why: &str) {
    shared.streams.lock().remove(&session.id);
    {
        let mut st = session.lock();
        st.gone = true;
        st.requests.clear();
        st.get = None;
    }
    info!("session {}: ended: {why}", session.id);
    let _ = shared.hub.send(HubEvent::ClientGone {
        session: session.id.clone(),
    });
}

/// The sessions `pick` gives a time for, with that time.
fn sessions_where(
    shared: &Shared,
    pick: impl Fn(&State) -> Option<Instant>,
) -> Vec<(Instant, Arc<StreamSession>)> {
    shared
        .streams
        .lock()
        .values()
        .filter_map(|s| pick(&s.lock()).map(|t| (t, s.clone())))
        .collect()
}

/// The sessions that sent no request but `initialize`, with when they opened.
pub(super) fn unused(shared: &Shared) -> Vec<(Instant, Arc<StreamSession>)> {
    sessions_where(shared, |st| (!st.used).then_some(st.opened))
}

/// The session idle longest with no stream open and nothing in flight, if it has been
/// idle for `at_least`: at the session limit it makes room for a new client.
pub(super) fn longest_idle(
    shared: &Shared,
    at_least: std::time::Duration,
) -> Option<Arc<StreamSession>> {
    sessions_where(shared, |st| {
        let quiet = st.get.is_none() && st.requests.is_empty() && !st.gone;
        (quiet && st.last_seen.elapsed() >= at_least).then_some(st.last_seen)
    })
    .into_iter()
    .min_by_key(|(seen, _)| *seen)
    .map(|(_, s)| s)
}

/// Ends sessions that have been idle longer than `--session-idle` with no stream open.
pub fn reap_idle(shared: &Arc<Shared>) {
    let idle = shared.opts.session_idle;
    let stale: Vec<Arc<StreamSession>> = shared
        .streams
        .lock()
        .values()
        .filter(|s| {
            let st = s.lock();
            st.last_seen.elapsed() >= idle && st.get.is_none() && st.requests.is_empty()
        })
        .cloned()
        .collect();
    for s in stale {
        end_session(shared, &s, &format!("idle for {} s", idle.as_secs()));
    }
}

/// What a POST gets when its session ends before its request is answered.
const ENDED: &str = "the session ended before the request was answered";

/// Sends `out` as the POST's JSON body (the connection stays open for the next request),
/// charged to the answers' budget while it is written.
fn reply_json(rq: HttpRequest<'_>, session: &StreamSession, out: Queued, shared: &Shared) {
    let Some((body, _charge)) = http::charged(shared, out.into_inner().msg) else {
        return rq.respond(Response::text(404, ENDED));
    };
    debug!("> {}: {body}", session.id);
    rq.respond(Response::json(200, body).with_header("Mcp-Session-Id", &session.id));
}

/// Answers one quick request with a JSON body.
fn answer_json(
    rq: HttpRequest<'_>,
    session: &StreamSession,
    rx: &crossbeam_channel::Receiver<Queued>,
    ids: &HashSet<String>,
    initializing: bool,
    shared: &Shared,
) {
    for out in rx {
        let Message::Response(r) = &out.msg else {
            // Nothing but the reply is expected here; anything else takes the GET stream.
            let _ = session.lock().queue_for_get(&out.msg);
            continue;
        };
        if !r.id.as_ref().is_some_and(|id| ids.contains(id.raw().get())) {
            let _ = session.lock().queue_for_get(&out.msg);
            continue;
        }
        if initializing
            && let Ok(result) = &r.outcome
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(result.get())
            && let Some(version) = v.get("protocolVersion").and_then(|v| v.as_str())
        {
            session.lock().version = Some(version.to_string());
        }
        return reply_json(rq, session, out, shared);
    }
    rq.respond(Response::text(404, ENDED));
}

/// Answers requests that may take a while or say things before their reply. A reply that
/// comes first and alone goes back as plain JSON, and the connection stays open for the
/// client's next request; anything else first (progress, a server request), or a quiet
/// `keepalive` period, makes the answer an SSE stream: everything related to the
/// requests, then their replies.
fn answer_stream(
    rq: HttpRequest<'_>,
    session: &StreamSession,
    rx: &crossbeam_channel::Receiver<Queued>,
    mut open: HashSet<String>,
    shared: &Shared,
) {
    let keepalive = shared.opts.keepalive;
    let first = match rx.recv_timeout(keepalive) {
        Ok(out) => Some(out),
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
            return rq.respond(Response::text(404, ENDED));
        }
    };
    if let Some(out) = &first
        && let Message::Response(r) = &out.msg
        && open.len() == 1
        && r.id
            .as_ref()
            .is_some_and(|id| open.contains(id.raw().get()))
    {
        let out = first.expect("just matched");
        return reply_json(rq, session, out, shared);
    }
    // An event's bytes, charged to the answers' budget until written (nothing, for a
    // notification that did not fit).
    let event = |out: Queued, open: &mut HashSet<String>| {
        if let Message::Response(r) = &out.msg
            && let Some(id) = &r.id
        {
            open.remove(id.raw().get());
        }
        let (json, charge) = http::charged(shared, out.into_inner().msg)?;
        debug!("> {}: {json}", session.id);
        let id = session.lock().next_id();
        Some((sse::chunked_event(Some(id), "message", &json), charge))
    };
    let priming = session
        .lock()
        .version
        .as_deref()
        .is_some_and(|v| v >= "2025-11-25");
    let mut w = rq.into_writer();
    let mut head = http::sse_head(&format!("Mcp-Session-Id: {}\r\n", session.id)).into_bytes();
    if priming {
        // SEP-1699: an event id with no data, so the client can resume with Last-Event-ID.
        let id = session.lock().next_id();
        head.extend(sse::chunk(
            format!("id: {id}\nretry: 1000\ndata: \n\n").as_bytes(),
        ));
    }
    // Charged until the head and the first event have gone out.
    let first_charge = match first.and_then(|out| event(out, &mut open)) {
        Some((bytes, charge)) => {
            head.extend(bytes);
            Some(charge)
        }
        None => {
            head.extend(sse::chunk(sse::KEEPALIVE.as_bytes()));
            None
        }
    };
    let mut result = http::send(&mut w, &head);
    drop((head, first_charge));
    while result.is_ok() && !open.is_empty() {
        let (bytes, _charge) = select! {
            recv(rx) -> out => match out {
                Ok(out) => match event(out, &mut open) {
                    Some((bytes, charge)) => (bytes, Some(charge)),
                    None => continue,
                },
                Err(_) => break, // the session ended
            },
            default(keepalive) => (sse::chunk(sse::KEEPALIVE.as_bytes()), None),
        };
        result = http::send(&mut w, &bytes);
    }
    match result {
        Ok(()) => {
            let _ = http::send(&mut w, sse::LAST_CHUNK);
        }
        Err(e) => {
            // The client left: what is still coming for these requests takes the GET stream.
            debug!("session {}: a POST stream closed early: {e}", session.id);
            let mut st = session.lock();
            for id in &open {
                st.requests.remove(id);
            }
            for out in rx.try_iter() {
                let _ = st.queue_for_get(&out.msg);
            }
        }
    }
}

fn open_get_stream(shared: &Arc<Shared>, rq: HttpRequest<'_>, session: Arc<StreamSession>) {
    if !accepts(&rq, "text/event-stream") {
        return rq.respond(Response::text(
            406,
            "GET /mcp needs Accept: text/event-stream",
        ));
    }
    let last_event: Option<u64> = rq
        .header("Last-Event-ID")
        .and_then(|v| v.trim().parse().ok());
    // Limited by count in `queue_for_get`; unbounded so an idle stream costs no slots.
    let (tx, rx) = crossbeam_channel::unbounded::<(Event, Charge)>();
    let (generation, backlog) = {
        let mut st = session.lock();
        st.get_generation += 1;
        let generation = st.get_generation;
        // A new GET stream replaces an older one; each message goes to one stream only.
        st.get = Some(GetStream {
            generation,
            tx,
            budget: Budget::new(GET_BYTES),
        });
        let after = last_event.unwrap_or(st.delivered);
        let backlog: Vec<Event> = st.events.iter().filter(|e| e.id > after).cloned().collect();
        if let Some(last) = backlog.last() {
            st.delivered = st.delivered.max(last.id);
        }
        (generation, backlog)
    };
    info!(
        "session {}: GET stream opened{}",
        session.id,
        last_event
            .map(|e| format!(", resuming after event {e}"))
            .unwrap_or_default()
    );
    let keepalive = shared.opts.keepalive;
    let writing = shared.writers.enter();
    let shared = shared.clone();
    let mut w = rq.into_writer();
    let spawned = thread::Builder::new()
        .name(format!("get-{}", http::short(&session.id)))
        .stack_size(WRITER_STACK)
        .spawn(move || {
            let _writing = writing;
            let mut bytes = http::sse_head(&format!("Mcp-Session-Id: {}\r\n", session.id)).into_bytes();
            for e in &backlog {
                bytes.extend(sse::chunked_event(Some(e.id), "message", &e.json));
            }
            let mut result = http::send(&mut w, &bytes);
            let hangup = w.hangup();
            while result.is_ok() {
                let bytes = select! {
                    recv(hangup) -> _ => break,
                    recv(rx) -> e => match e {
                        Ok((e, _charge)) => {
                            shared.bytes_out.fetch_add(e.json.len() as u64, std::sync::atomic::Ordering::Relaxed);
                            sse::chunked_event(Some(e.id), "message", &e.json)
                        }
                        Err(_) => {
                            // The session ended (or the gateway is stopping): a client
                            // that reconnects should wait a second.
                            let _ = http::send(&mut w, &sse::chunk(sse::RETRY.as_bytes()));
                            let _ = http::send(&mut w, sse::LAST_CHUNK);
                            break;
                        }
                    },
                    default(keepalive) => sse::chunk(sse::KEEPALIVE.as_bytes()),
                };
                result = http::send(&mut w, &bytes);
            }
            let mut st = session.lock();
            if st.get.as_ref().is_some_and(|g| g.generation == generation) {
                st.get = None;
            }
            debug!("session {}: GET stream ended", session.id);
        });
    if let Err(e) = spawned {
        warn!("http: cannot start a GET stream thread: {e}");
    }
}
