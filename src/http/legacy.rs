//! The legacy HTTP+SSE transport: `GET /sse` opens a session's stream (one writer thread
//! each, chunked framing, flushed per event; the first event names the session's POST
//! endpoint) and `POST /messages?sessionId=` carries the client's messages (202 at once;
//! the answers go down the stream).

use super::server::{Request, Response};
use super::*;
use crate::contract::Access;

pub(super) fn open_stream(shared: &Arc<Shared>, rq: Request<'_>, access: Access) {
    if let Some(refusal) = no_room(shared) {
        return rq.respond(refusal);
    }
    let session = new_session_id(&shared.opts.instance);
    let (tx, rx) = Queue::new(SESSION_QUEUE);
    shared
        .live
        .lock()
        .expect("no thread panics while holding the session set")
        .insert(session.clone(), Live::new(access.token.clone()));
    let sink = LegacySink {
        tx,
        session: session.clone(),
        live: shared.live.clone(),
    };
    if shared
        .hub
        .send(HubEvent::ClientOpened {
            session: session.clone(),
            sink: Box::new(sink),
            transport: "sse",
            access,
        })
        .is_err()
    {
        shared
            .live
            .lock()
            .expect("session set lock")
            .remove(&session);
        rq.respond(Response::text(503, "the gateway is shutting down"));
        return;
    }
    info!(
        "session {session}: stream opened by {}",
        client_of(&rq, &shared.opts)
    );
    let endpoint = format!(
        "{}/messages?sessionId={session}",
        forwarded_prefix(&rq, &shared.opts)
    );
    let writer = rq.into_writer();
    let shared2 = shared.clone();
    let writing = shared.writers.enter();
    let spawned = thread::Builder::new()
        .name(format!("sse-{}", short(&session)))
        .stack_size(WRITER_STACK)
        .spawn(move || {
            let _writing = writing;
            let why = stream(
                writer,
                &rx,
                &endpoint,
                &session,
                shared2.opts.keepalive,
                &shared2.bytes_out,
            );
            debug!("session {session}: stream ended: {why}");
            shared2
                .live
                .lock()
                .expect("session set lock")
                .remove(&session);
            let _ = shared2.hub.send(HubEvent::ClientGone { session });
        });
    if let Err(e) = spawned {
        warn!("http: cannot start a stream writer thread: {e}");
    }
}

/// The hub's handle on a legacy session: its writer's queue. When the hub lets go of it
/// (the client stopped reading, or shutdown), the session stops taking POSTs at once, even
/// while its writer is still stuck on the dead socket.
struct LegacySink {
    tx: Queue,
    session: SessionId,
    live: LiveSessions,
}

impl Sink for LegacySink {
    fn offer(&self, out: Outbound) -> Result<(), Refused> {
        self.tx.offer(out)
    }
}

impl Drop for LegacySink {
    fn drop(&mut self) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&self.session);
        }
    }
}

/// Writes the stream until the hub drops the session or the client goes away; says which.
fn stream(
    mut w: server::Stream,
    rx: &Receiver<Queued>,
    endpoint: &str,
    session: &str,
    keepalive: Duration,
    bytes_out: &std::sync::atomic::AtomicU64,
) -> String {
    let endpoint = sse::event("endpoint", endpoint);
    let mut out = sse_head("").into_bytes();
    out.extend(sse::chunk(endpoint.as_bytes()));
    if let Err(e) = send(&mut w, &out) {
        return format!("client closed: {e}");
    }
    let hangup = w.hangup();
    // Buffers kept between events (a large message's are not kept for the small ones).
    let (mut json, mut bytes) = (Vec::new(), Vec::new());
    loop {
        if bytes.capacity() > 1024 * 1024 {
            (json, bytes) = (Vec::new(), Vec::new());
        }
        bytes.clear();
        select! {
            recv(hangup) -> _ => return "client hung up".into(),
            recv(rx) -> out => match out {
                Ok(out) => {
                    json.clear();
                    out.msg.write_json(&mut json);
                    drop(out);
                    let text = std::str::from_utf8(&json).expect("serde_json writes UTF-8");
                    debug!("> {session}: {text}");
                    bytes_out.fetch_add(json.len() as u64, Ordering::Relaxed);
                    sse::chunked_event_into(&mut bytes, None, "message", text);
                }
                Err(_) => {
                    // The gateway is stopping: ask the client to come back in a second.
                    let _ = send(&mut w, &sse::chunk(sse::RETRY.as_bytes()));
                    let _ = send(&mut w, sse::LAST_CHUNK);
                    return "closed by the gateway".into();
                }
            },
            default(keepalive) => bytes.extend(sse::chunk(sse::KEEPALIVE.as_bytes())),
        };
        if let Err(e) = send(&mut w, &bytes) {
            return format!("client closed: {e}");
        }
    }
}

pub(super) fn post_message(shared: &Arc<Shared>, mut rq: Request<'_>, query: &str, access: Access) {
    let Some(session) = query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "sessionId" || k == "session_id").then(|| v.to_string())
    }) else {
        return rq.respond(Response::text(
                400,
                "missing 'sessionId' query parameter: open GET /sse first and POST to the endpoint it sends",
            ),
        );
    };
    let owner = shared
        .live
        .lock()
        .expect("session set lock")
        .get(&session)
        .map(|l| l.token.clone());
    if owner.as_ref().is_some_and(|o| *o != access.token) {
        return rq.respond(Response::text(
            403,
            &format!("forbidden: session '{session}' was opened with another token"),
        ));
    }
    if owner.is_none() {
        return rq.respond(Response::text(
            404,
            &format!("unknown session '{session}': open a new stream with GET /sse"),
        ));
    }
    let body = match rq.read_body() {
        Ok(b) => b,
        Err(response) => return rq.respond(response),
    };
    shared
        .bytes_in
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    let msg = match parse_body(&body) {
        Ok(msg) => msg,
        Err(e) => {
            debug!("session {session}: bad message: {e}");
            return rq.respond(parse_error_response(e));
        }
    };
    if log::log_enabled!(log::Level::Debug) {
        debug!("< {session}: {}", String::from_utf8_lossy(&body));
    }
    let admitted = match &msg {
        Message::Request(r) => match shared.admit() {
            None => {
                return rq.respond(draining_session(
                    shared,
                    &session,
                    "open a new stream with GET /sse",
                ));
            }
            Some(guard) => {
                if r.method != "initialize" {
                    sessions::mark_used(&shared.live, &session);
                }
                Some(guard)
            }
        },
        _ => None,
    };
    if shared.router.dispatch(&session, msg).is_err() {
        return rq.respond(Response::text(503, "the gateway is shutting down"));
    }
    drop(admitted);
    rq.respond(Response::text(202, "Accepted"));
}
