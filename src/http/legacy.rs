//! The legacy HTTP+SSE transport: `GET /sse` opens a session's stream (one writer thread
//! each, chunked framing, flushed per event; the first event names the session's POST
//! endpoint; a reply offered while the writer is idle is sent by the thread offering it,
//! `Door`) and `POST /messages?sessionId=` carries the client's messages (202 at once;
//! the answers go down the stream).

use super::server::{Request, Response};
use super::*;
use crate::contract::Access;
use std::sync::Mutex;

pub(super) fn open_stream(shared: &Arc<Shared>, rq: Request<'_>, access: Access) {
    if let Some(refusal) = no_room(shared) {
        return rq.respond(refusal);
    }
    let session = new_session_id(&shared.opts.instance);
    let (tx, rx) = Queue::new(SESSION_QUEUE);
    let (kick, kicked) = crossbeam_channel::bounded(1);
    let door = Arc::new(Door {
        way: Mutex::new(Doorway::default()),
        pending: AtomicUsize::new(0),
        kick,
        session: session.clone(),
        shared: shared.clone(),
    });
    shared
        .live
        .lock()
        .expect("no thread panics while holding the session set")
        .insert(session.clone(), Live::new(access.token.clone()));
    let sink = LegacySink {
        tx,
        door: door.clone(),
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
                &kicked,
                &door,
                &endpoint,
                shared2.opts.keepalive,
            );
            // Its other handle on the socket goes too, so the connection closes now.
            door.lock().socket = None;
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
    door: Arc<Door>,
    session: SessionId,
    live: LiveSessions,
}

impl Sink for LegacySink {
    fn offer(&self, out: Outbound) -> Result<(), Refused> {
        let Err(out) = self.door.write_now(out) else {
            return Ok(());
        };
        self.door.pending.fetch_add(1, Ordering::SeqCst);
        self.tx.offer(out).inspect_err(|_| {
            self.door.pending.fetch_sub(1, Ordering::SeqCst);
        })
    }
}

/// The stream's socket for a message offered while its writer is idle (a routed call's
/// reply, offered on the backend's reader): written there, without waking the writer,
/// when nothing is queued before it. That thread must never wait for a client, so the
/// send does not wait: what the socket does not take at once is left to the writer
/// (`rest`), which writes it before anything else, under the slow-client rules of every
/// write. `pending` counts the messages queued and not yet written (the writer counts
/// each off under the lock once written), so nothing written here overtakes them.
struct Door {
    way: Mutex<Doorway>,
    pending: AtomicUsize,
    /// Wakes the writer to write `rest`.
    kick: Sender<()>,
    session: SessionId,
    /// For its count of bytes written.
    shared: Arc<Shared>,
}

/// The most a door keeps of its buffers between events.
const KEPT: usize = 64 * 1024;

#[derive(Default)]
struct Doorway {
    /// None until the stream's head and endpoint are out, after a failed send, over TLS,
    /// and on hosts where a send cannot be told not to wait.
    socket: Option<std::net::TcpStream>,
    /// What a send here did not write, from `rest_from` on: the writer's first bytes (the
    /// event's own buffer, not a copy: a large result is not copied again).
    rest: Vec<u8>,
    rest_from: usize,
    /// The event being written, kept between messages.
    bytes: Vec<u8>,
}

impl Doorway {
    /// What a send left for the writer (empty: nothing): the buffer, and where the
    /// unsent part starts.
    fn take_rest(&mut self) -> (Vec<u8>, usize) {
        let rest = std::mem::take(&mut self.rest);
        let from = std::mem::take(&mut self.rest_from).min(rest.len());
        (rest, from)
    }
}

impl Door {
    fn lock(&self) -> std::sync::MutexGuard<'_, Doorway> {
        self.way.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `out` here when the writer is idle, nothing is queued and the socket takes
    /// some of it at once; gives it back otherwise.
    fn write_now(&self, out: Outbound) -> Result<(), Outbound> {
        let Ok(mut way) = self.way.try_lock() else {
            return Err(out);
        };
        let way = &mut *way;
        if self.pending.load(Ordering::SeqCst) != 0 || !way.rest.is_empty() {
            return Err(out);
        }
        let Some(socket) = &way.socket else {
            return Err(out);
        };
        let (start, json) = encode(&out.msg, &mut way.bytes, &self.session);
        match send_nowait(socket, &way.bytes[start..]) {
            Ok(n) => {
                self.shared
                    .bytes_out
                    .fetch_add(json as u64, Ordering::Relaxed);
                if start + n < way.bytes.len() {
                    way.rest = std::mem::take(&mut way.bytes);
                    way.rest_from = start + n;
                    let _ = self.kick.try_send(());
                }
                // A large event's buffer is not kept by an idle session (the writer keeps
                // its own, up to 1 MiB, as before).
                if way.bytes.capacity() > KEPT {
                    way.bytes = Vec::new();
                }
                Ok(())
            }
            Err(e) => {
                // The writer meets the same error at its next write, and ends the stream.
                debug!("session {}: a send failed: {e}", self.session);
                way.socket = None;
                Err(out)
            }
        }
    }
}

/// Sends what the socket takes without waiting (none: Ok(0)).
#[cfg(unix)]
fn send_nowait(socket: &std::net::TcpStream, bytes: &[u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `bytes` is valid for its length for the call's duration; the descriptor is
    // the open socket `socket` holds.
    let n = unsafe {
        libc::send(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock => Ok(0),
        io::ErrorKind::Interrupted => Ok(0),
        _ => Err(e),
    }
}

#[cfg(not(unix))]
fn send_nowait(_: &std::net::TcpStream, _: &[u8]) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// A message as the stream's event (one chunk), in `bytes` from the offset returned, with
/// the length of its JSON.
fn encode(msg: &Message, bytes: &mut Vec<u8>, session: &str) -> (usize, usize) {
    if log::log_enabled!(log::Level::Debug) {
        debug!("> {session}: {}", msg.to_json());
    }
    sse::message_chunk_into(bytes, |out| msg.write_json(out))
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
    kicked: &Receiver<()>,
    door: &Door,
    endpoint: &str,
    keepalive: Duration,
) -> String {
    let endpoint = sse::event("endpoint", endpoint);
    let mut out = sse_head("").into_bytes();
    out.extend(sse::chunk(endpoint.as_bytes()));
    if let Err(e) = send(&mut w, &out) {
        return format!("client closed: {e}");
    }
    if cfg!(unix) {
        door.lock().socket = w.plain_handle();
    }
    let hangup = w.hangup();
    // A buffer kept between events (a large message's is not kept for the small ones), and
    // where the event to write starts in it.
    let mut bytes = Vec::new();
    loop {
        if bytes.capacity() > 1024 * 1024 {
            bytes = Vec::new();
        }
        bytes.clear();
        let mut start = 0;
        // Whether what is written is a message from the queue, to count off `pending`.
        let queued = select! {
            recv(hangup) -> _ => return "client hung up".into(),
            recv(kicked) -> _ => false,
            recv(rx) -> out => match out {
                Ok(out) => {
                    let json;
                    (start, json) = encode(&out.msg, &mut bytes, &door.session);
                    drop(out);
                    door.shared.bytes_out.fetch_add(json as u64, Ordering::Relaxed);
                    true
                }
                Err(_) => {
                    // The gateway is stopping: ask the client to come back in a second.
                    let (rest, from) = door.lock().take_rest();
                    let _ = send(&mut w, &rest[from..]);
                    let _ = send(&mut w, &sse::chunk(sse::RETRY.as_bytes()));
                    let _ = send(&mut w, sse::LAST_CHUNK);
                    return "closed by the gateway".into();
                }
            },
            default(keepalive) => {
                bytes.extend(sse::chunk(sse::KEEPALIVE.as_bytes()));
                false
            }
        };
        // Under the door's lock: what a send there left comes first, and nothing is
        // written there meanwhile.
        let mut way = door.lock();
        let (rest, from) = way.take_rest();
        let written = send(&mut w, &rest[from..]).and_then(|()| send(&mut w, &bytes[start..]));
        if queued {
            door.pending.fetch_sub(1, Ordering::SeqCst);
        }
        drop(way);
        if let Err(e) = written {
            door.lock().socket = None;
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
