//! The stdio front end (`--stdio`): one client session over stdin/stdout, for clients
//! that only start servers as child processes (Claude Desktop).
//!
//! Owns stdin and stdout: nothing but protocol messages is written to stdout, one per line
//! (console lines go to stderr in this mode). Stdin closing ends the gateway, as a stdio
//! server should.
//!
//! A 2026-07-28 client sends no `initialize`: each request that carries the revision in
//! its `_meta` is checked and served on a thread of its own (`crate::stateless::serve`), its
//! messages written as they come; `notifications/cancelled` naming it ends it.
//!
//! The one client is never dropped for reading slowly: while more than `SOFT_QUEUE`
//! messages (or `SOFT_BYTES`) wait for stdout, the reader stops reading stdin (the client's
//! own writes then block on the pipe), and notifications beyond that are dropped, counted
//! in the log, while answers and requests always queue. Should the session end anyway,
//! the gateway stops, so the parent notices.

use crate::contract::{HubEvent, Outbound, Queue, Refused, Sink};
use crate::http::MAX_BODY;
use crate::jsonrpc::{self, Message};
use crate::lines::{Line, read_line_limited};
use crate::modern;
use crate::stateless::{self, Reply};
use crossbeam_channel::Sender;
use log::{debug, warn};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const SESSION: &str = "stdio";
/// Messages (and bytes) waiting for stdout beyond which stdin is not read and
/// notifications are dropped.
const SOFT_QUEUE: usize = crate::http::SESSION_QUEUE;
const SOFT_BYTES: usize = crate::config::DEFAULT_MAX_MESSAGE + crate::contract::sink::QUEUE_BYTES;

/// The session's sink: answers and requests always queue (the reader bounds them by not
/// reading while the queue is long); notifications past the soft limit are dropped. The
/// hub holds it alone: when it lets go, the session has ended and the gateway stops.
struct StdioSink {
    queue: Queue,
    dropped: AtomicU64,
    done: Sender<()>,
}

impl StdioSink {
    fn backed_up(queue: &Queue) -> bool {
        let (count, bytes) = queue.backlog();
        count >= SOFT_QUEUE || bytes >= SOFT_BYTES
    }
}

impl Sink for StdioSink {
    fn offer(&self, out: Outbound) -> Result<(), Refused> {
        if matches!(out.msg, Message::Notification(_)) && StdioSink::backed_up(&self.queue) {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                warn!(
                    "stdio: the client is not reading stdout; {} notification(s) dropped so far (answers still queue)",
                    n + 1
                );
            }
            return Ok(());
        }
        self.queue.offer(out)
    }
}

impl Drop for StdioSink {
    fn drop(&mut self) {
        debug!("stdio: the session ended; stopping");
        let _ = self.done.try_send(());
    }
}

/// Starts the session and its two threads; `done` is told when stdin or stdout closes.
pub fn start(
    hub: Sender<HubEvent>,
    router: crate::hub::Router,
    done: Sender<()>,
    profile: Option<usize>,
) -> std::io::Result<JoinHandle<()>> {
    let (tx, rx) = Queue::with_limits(usize::MAX, usize::MAX);
    let sink = StdioSink {
        queue: tx.clone(),
        dropped: AtomicU64::new(0),
        done: done.clone(),
    };
    let _ = hub.send(HubEvent::ClientOpened {
        session: SESSION.into(),
        sink: Box::new(sink),
        transport: "stdio",
        access: crate::contract::Access {
            profile,
            token: None,
        },
    });
    let ends = stateless::Ends {
        hub: hub.clone(),
        router: router.clone(),
        instance: SESSION.into(),
        // Nothing is written for a quiet stdio request: this is how often it looks
        // whether it was cancelled.
        keepalive: Duration::from_secs(1),
        parked: Arc::default(),
        tasks: Arc::default(),
        access: crate::contract::Access {
            profile,
            token: None,
        },
    };
    let modern_calls = ModernCalls::default();
    let writer_done = done.clone();
    let writer_gone = Arc::new(AtomicBool::new(false));
    let gone = writer_gone.clone();
    let writer = thread::Builder::new()
        .name("stdio-writer".into())
        .spawn(move || {
            let mut out = std::io::stdout().lock();
            for o in rx {
                let mut line = o.msg.to_json();
                debug!("> {SESSION}: {line}");
                line.push('\n');
                if out
                    .write_all(line.as_bytes())
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    warn!("stdio: stdout closed");
                    gone.store(true, Ordering::SeqCst);
                    let _ = writer_done.try_send(());
                    return;
                }
            }
        })?;
    thread::Builder::new()
        .name("stdio-reader".into())
        .spawn(move || {
            let answer = |e: jsonrpc::ParseError| {
                let reply = Outbound {
                    related: None,
                    msg: Message::Response(e.into_response()),
                };
                let _ = tx.push(reply);
            };
            let mut input = std::io::BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
            let mut line = Vec::new();
            loop {
                // Back-pressure: while stdout is backed up, stdin waits.
                while StdioSink::backed_up(&tx) && !writer_gone.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(5));
                }
                // Only the end of input ends the session: a bad line gets the error the HTTP
                // path gives the same body, and the next line is read.
                match read_line_limited(&mut input, &mut line, MAX_BODY) {
                    Ok(Line::End) => break,
                    Ok(Line::TooLong(size)) => {
                        warn!("stdio: a line of {size} bytes, over the {MAX_BODY}-byte limit");
                        answer(jsonrpc::ParseError {
                            code: jsonrpc::INVALID_REQUEST,
                            message: format!(
                                "message of {size} bytes is over the {MAX_BODY}-byte limit"
                            ),
                            id: None,
                        });
                        continue;
                    }
                    Ok(Line::Text) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        warn!("stdio: cannot read stdin: {e}");
                        break;
                    }
                }
                if line.trim_ascii().is_empty() {
                    continue;
                }
                match crate::http::parse_body(line.trim_ascii()) {
                    Ok(msg) => {
                        debug!("< {SESSION}: {}", String::from_utf8_lossy(&line).trim_end());
                        let msg = match modern_calls.take(msg, &ends, &tx) {
                            Some(legacy) => legacy,
                            None => continue,
                        };
                        let _ = router.dispatch(SESSION, msg);
                    }
                    Err(e) => answer(e),
                }
            }
            debug!("stdio: stdin closed; stopping");
            let _ = hub.send(HubEvent::ClientGone {
                session: SESSION.into(),
            });
            let _ = done.try_send(());
        })?;
    Ok(writer)
}

/// The 2026-07-28 requests in flight, by their id's JSON, each with its cancellation flag.
#[derive(Default, Clone)]
struct ModernCalls(Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>);

impl ModernCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `msg` when it is a 2026-07-28 request (served on a thread of its own) or the
    /// cancellation of one; gives anything else back for the legacy session.
    fn take(&self, msg: Message, ends: &stateless::Ends, tx: &Queue) -> Option<Message> {
        match msg {
            Message::Request(req) if !modern::may_name_revision(req.params.as_deref()) => {
                Some(Message::Request(req))
            }
            Message::Request(req) => {
                let params: Option<Value> = req
                    .params
                    .as_deref()
                    .and_then(|p| serde_json::from_str(p.get()).ok());
                if !modern::is_modern(None, params.as_ref()) {
                    return Some(Message::Request(req));
                }
                let out = Stdout {
                    tx: tx.clone(),
                    id: req.id.clone(),
                    cancelled: Arc::new(AtomicBool::new(false)),
                    calls: self.clone(),
                };
                let meta = match modern::check(&req.method, params.as_ref(), None) {
                    Ok(meta) => meta,
                    Err(refusal) => {
                        let answer = jsonrpc::Response {
                            id: Some(req.id),
                            outcome: Err(refusal.error),
                        };
                        Box::new(out).finish(refusal.status, Message::Response(answer));
                        return None;
                    }
                };
                self.lock()
                    .insert(req.id.raw().get().to_string(), out.cancelled.clone());
                let ends = ends.clone();
                let spawned = thread::Builder::new()
                    .name(format!("stdio-{}", req.method.replace('/', "-")))
                    .stack_size(crate::http::WRITER_STACK)
                    .spawn(move || {
                        stateless::serve(&ends, Box::new(out), req, params, meta, Box::new(()))
                    });
                if let Err(e) = spawned {
                    warn!("stdio: cannot start a thread for a 2026-07-28 request: {e}");
                }
                None
            }
            Message::Notification(n) if n.method == "notifications/cancelled" => {
                let id = n
                    .params
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                    .and_then(|p| p.get("requestId").map(Value::to_string));
                let flag = id.and_then(|id| self.lock().remove(&id));
                match flag {
                    Some(flag) => {
                        flag.store(true, Ordering::SeqCst);
                        None
                    }
                    None => Some(Message::Notification(n)),
                }
            }
            other => Some(other),
        }
    }
}

/// Where a 2026-07-28 request's messages go on stdio: the session's writer, until the
/// client cancels the request.
struct Stdout {
    tx: Queue,
    id: jsonrpc::Id,
    cancelled: Arc<AtomicBool>,
    calls: ModernCalls,
}

impl Stdout {
    fn write(&self, msg: Message) -> bool {
        !self.cancelled.load(Ordering::SeqCst)
            && self.tx.push(Outbound { related: None, msg }).is_ok()
    }
}

impl Drop for Stdout {
    fn drop(&mut self) {
        self.calls.lock().remove(self.id.raw().get());
    }
}

impl Reply for Stdout {
    fn event(&mut self, msg: Option<&Message>) -> bool {
        match msg {
            Some(m) => self.write(m.clone()),
            None => !self.cancelled.load(Ordering::SeqCst),
        }
    }

    fn finish(self: Box<Self>, _status: u16, answer: Message) {
        self.write(answer);
    }

    fn stopping(self: Box<Self>) {
        let answer = jsonrpc::Response::error(
            Some(self.id.clone()),
            jsonrpc::INTERNAL_ERROR,
            "the gateway is shutting down",
        );
        self.write(Message::Response(answer));
    }
}
