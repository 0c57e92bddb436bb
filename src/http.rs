//! The HTTP front end: the legacy HTTP+SSE transport (`GET /sse`, `POST /messages`).
//!
//! Owns the listening socket, the tiny_http worker threads and one writer thread per open
//! stream. It turns request bodies into `jsonrpc::Message`s for the hub and drains each
//! session's channel into its stream, flushing every event. It never talks to a backend.

use crate::hub::{HubEvent, SessionId};
use crate::jsonrpc::{self, Message};
use crate::sse;
use crossbeam_channel::{Receiver, Sender, select};
use log::{debug, info, warn};
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;
use tiny_http::{Header, Method, Request, Response, Server};

/// Largest request body accepted (413 above it).
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Messages queued for one client before it counts as not reading and is dropped.
pub const SESSION_QUEUE: usize = 1024;
/// Threads that take requests off the socket; each request is quick (parse, hand over).
const WORKERS: usize = 4;
/// Stack of a stream writer thread: it only formats and writes events.
const WRITER_STACK: usize = 64 * 1024;

pub struct Options {
    pub keepalive: Duration,
}

pub struct Frontend {
    server: Arc<Server>,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

/// State shared by the worker threads and stream writers.
struct Shared {
    hub: Sender<HubEvent>,
    /// Sessions whose stream is open, so a POST for any other gets 404 at once.
    live: Mutex<HashSet<SessionId>>,
    keepalive: Duration,
}

impl Frontend {
    pub fn bind(addr: &str) -> Result<Server, String> {
        Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))
    }

    pub fn local_addr(server: &Server) -> Option<SocketAddr> {
        server.server_addr().to_ip()
    }

    pub fn start(server: Server, hub: Sender<HubEvent>, opts: Options) -> io::Result<Frontend> {
        let server = Arc::new(server);
        let stopping = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            hub,
            live: Mutex::new(HashSet::new()),
            keepalive: opts.keepalive,
        });
        let mut workers = Vec::new();
        for i in 0..WORKERS {
            let (server, stopping, shared) = (server.clone(), stopping.clone(), shared.clone());
            workers.push(
                thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn(move || {
                        loop {
                            match server.recv() {
                                Ok(rq) => handle(&shared, rq),
                                Err(_) if stopping.load(Ordering::SeqCst) => break,
                                Err(e) => debug!("http: accept error: {e}"),
                            }
                        }
                    })?,
            );
        }
        Ok(Frontend {
            server,
            stopping,
            workers,
        })
    }

    /// Stops taking requests; open streams end when the hub drops their channels.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

fn handle(shared: &Arc<Shared>, rq: Request) {
    let url = rq.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    debug!("http: {} {path}", rq.method());
    match (rq.method(), path) {
        (Method::Get, "/sse") => open_stream(shared, rq),
        (Method::Post, "/messages" | "/messages/") => post_message(shared, rq, query),
        (_, "/sse") => respond(
            rq,
            text(405, "use GET on /sse").with_header(header("Allow", "GET")),
        ),
        (_, "/messages" | "/messages/") => respond(
            rq,
            text(405, "use POST on /messages").with_header(header("Allow", "POST")),
        ),
        _ => respond(rq, text(404, "not found: the MCP endpoint is GET /sse")),
    }
}

fn open_stream(shared: &Arc<Shared>, rq: Request) {
    let session = new_session_id();
    let (tx, rx) = crossbeam_channel::bounded::<Message>(SESSION_QUEUE);
    shared
        .live
        .lock()
        .expect("no thread panics while holding the session set")
        .insert(session.clone());
    if shared
        .hub
        .send(HubEvent::ClientOpened {
            session: session.clone(),
            tx,
        })
        .is_err()
    {
        shared
            .live
            .lock()
            .expect("session set lock")
            .remove(&session);
        respond(rq, text(503, "the gateway is shutting down"));
        return;
    }
    let peer = rq.remote_addr().map(|a| a.to_string()).unwrap_or_default();
    info!("session {session}: stream opened by {peer}");
    let writer = rq.into_writer();
    let shared2 = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("sse-{}", &session[..8]))
        .stack_size(WRITER_STACK)
        .spawn(move || {
            let why = stream(writer, &rx, &session, shared2.keepalive);
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

/// Writes the stream until the hub drops the session or the client goes away; says which.
fn stream(
    mut w: Box<dyn Write + Send>,
    rx: &Receiver<Message>,
    session: &str,
    keepalive: Duration,
) -> String {
    let head = "HTTP/1.1 200 OK\r\n\
        Content-Type: text/event-stream\r\n\
        Cache-Control: no-cache\r\n\
        X-Accel-Buffering: no\r\n\
        Transfer-Encoding: chunked\r\n\r\n";
    let endpoint = sse::event("endpoint", &format!("/messages?sessionId={session}"));
    let mut out = head.as_bytes().to_vec();
    out.extend(sse::chunk(endpoint.as_bytes()));
    if let Err(e) = send(&mut w, &out) {
        return format!("client closed: {e}");
    }
    loop {
        let bytes = select! {
            recv(rx) -> msg => match msg {
                Ok(msg) => {
                    let json = msg.to_json();
                    debug!("> {session}: {json}");
                    sse::chunk(sse::event("message", &json).as_bytes())
                }
                Err(_) => {
                    let _ = send(&mut w, sse::LAST_CHUNK);
                    return "closed by the gateway".into();
                }
            },
            default(keepalive) => sse::chunk(sse::KEEPALIVE.as_bytes()),
        };
        if let Err(e) = send(&mut w, &bytes) {
            return format!("client closed: {e}");
        }
    }
}

fn send(w: &mut Box<dyn Write + Send>, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes)?;
    w.flush()
}

fn post_message(shared: &Arc<Shared>, mut rq: Request, query: &str) {
    let Some(session) = query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "sessionId" || k == "session_id").then(|| v.to_string())
    }) else {
        return respond(
            rq,
            text(
                400,
                "missing 'sessionId' query parameter: open GET /sse first and POST to the endpoint it sends",
            ),
        );
    };
    let known = shared
        .live
        .lock()
        .expect("session set lock")
        .contains(&session);
    if !known {
        return respond(
            rq,
            text(
                404,
                &format!("unknown session '{session}': open a new stream with GET /sse"),
            ),
        );
    }
    let mut body = Vec::new();
    let read = rq
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body);
    if let Err(e) = read {
        return respond(rq, text(400, &format!("cannot read the request body: {e}")));
    }
    if body.len() > MAX_BODY {
        return respond(
            rq,
            text(413, &format!("request body over the {MAX_BODY}-byte limit")),
        );
    }
    let parsed = std::str::from_utf8(&body)
        .map_err(|e| jsonrpc::ParseError {
            code: jsonrpc::PARSE_ERROR,
            message: format!("parse error: body is not UTF-8: {e}"),
            id: None,
        })
        .and_then(Message::parse);
    let msg = match parsed {
        Ok(msg) => msg,
        Err(e) => {
            debug!("session {session}: bad message: {e}");
            let body = Message::Response(e.into_response()).to_json();
            return respond(
                rq,
                Response::from_string(body)
                    .with_status_code(400)
                    .with_header(header("Content-Type", "application/json")),
            );
        }
    };
    if log::log_enabled!(log::Level::Debug) {
        debug!("< {session}: {}", String::from_utf8_lossy(&body));
    }
    if shared
        .hub
        .send(HubEvent::FromClient { session, msg })
        .is_err()
    {
        return respond(rq, text(503, "the gateway is shutting down"));
    }
    respond(rq, text(202, "Accepted"));
}

fn respond<R: Read>(rq: Request, response: Response<R>) {
    if let Err(e) = rq.respond(response) {
        debug!("http: client went away before the response: {e}");
    }
}

fn text(status: u16, body: &str) -> Response<io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("header names and values are ASCII")
}

/// 128 random bits, hex: unguessable, and safe in a URL.
fn new_session_id() -> SessionId {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
