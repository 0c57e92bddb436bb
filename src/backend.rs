//! A stdio backend: the child process, its three pipes and its supervisor.
//!
//! Owns the child and the threads that pump its pipes: `backend-<name>-reader` (stdout
//! lines → `HubEvent::FromBackend`), `backend-<name>-writer` (messages → stdin),
//! `backend-<name>-stderr` (lines → the log) and `backend-<name>` (the supervisor, which
//! reports the exit and stops the whole process group). It never routes: every message
//! goes to the hub.

mod last_words;

use crate::config::{BackendSpec, Launch, Transport};
use crate::hub::{Completed, Direct, HubEvent, InstanceId};
use crate::jsonrpc::Message;
use crossbeam_channel::{Receiver, Sender, select};
use last_words::LastWords;
use log::{debug, info, warn};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;
use wait_timeout::ChildExt;

/// How long a backend gets to exit by itself after its stdin is closed.
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// Stack of the pipe threads: they only move lines.
const PIPE_STACK: usize = 128 * 1024;

/// What the hub holds of a running backend.
pub struct BackendHandle {
    /// Messages for the child's stdin. Dropping it closes stdin.
    pub tx: Sender<Message>,
    stop: Sender<()>,
    supervisor: Option<JoinHandle<()>>,
}

impl BackendHandle {
    pub fn new(tx: Sender<Message>, stop: Sender<()>, supervisor: JoinHandle<()>) -> BackendHandle {
        BackendHandle {
            tx,
            stop,
            supervisor: Some(supervisor),
        }
    }

    /// Asks the supervisor to stop the child (close stdin, wait, kill the group) and gives
    /// back its thread, to be joined once every backend has been asked.
    pub fn stop(self) -> Option<JoinHandle<()>> {
        let BackendHandle {
            tx,
            stop,
            supervisor,
        } = self;
        drop(tx); // the writer ends and closes the child's stdin
        let _ = stop.send(());
        supervisor
    }
}

/// Starts an instance of `spec` over whatever transport it uses.
pub fn start_for(
    instance: InstanceId,
    spec: &BackendSpec,
    self_exe: &str,
    hub: Sender<HubEvent>,
    direct: Direct,
) -> Result<BackendHandle, String> {
    match &spec.transport {
        Transport::Sse {
            url,
            launch,
            startup,
        } => crate::remote::start_sse(
            instance,
            &spec.name,
            url,
            launch.as_ref(),
            *startup,
            ToHub { hub, direct },
            spec.policy.max_message,
        ),
        Transport::StreamableHttp { url, headers } => crate::remote::start_http(
            instance,
            &spec.name,
            url,
            headers,
            ToHub { hub, direct },
            spec.policy.max_message,
        ),
        _ => {
            let launch =
                launch_for(spec, self_exe).expect("stdio and builtin backends have a command");
            start(
                instance,
                &spec.name,
                &launch,
                ToHub { hub, direct },
                spec.policy.max_message,
            )
        }
    }
}

/// A program whose output is only logged.
pub struct LoggedChild {
    pub child: Child,
    /// Its last words, for error messages.
    pub last_words: Arc<Mutex<LastWords>>,
    /// Disconnects once its stdout and stderr are both closed and read.
    pub drained: Receiver<()>,
}

/// Starts a program whose output is only logged (a local server the gateway then connects
/// to over HTTP).
pub fn spawn_logged(name: &str, launch: &Launch) -> Result<LoggedChild, String> {
    let mut child = spawn_child(name, launch, Stdio::null())?;
    let last = Arc::new(Mutex::new(LastWords::default()));
    let (done_tx, drained) = crossbeam_channel::bounded::<()>(0);
    let outputs: [(&str, Box<dyn Read + Send>); 2] = [
        (
            "stdout",
            Box::new(child.stdout.take().expect("stdout was piped")),
        ),
        (
            "stderr",
            Box::new(child.stderr.take().expect("stderr was piped")),
        ),
    ];
    for (which, pipe) in outputs {
        let (n, tail, done) = (name.to_string(), last.clone(), done_tx.clone());
        let drain = move || {
            drain_stderr(&n, pipe, &tail);
            drop(done);
        };
        if let Err(e) = spawn_named(format!("backend-{name}-{which}"), drain) {
            crate::tree::kill_child(&mut child);
            return Err(e);
        }
    }
    Ok(LoggedChild {
        child,
        last_words: last,
        drained,
    })
}

/// The program, arguments and environment a backend runs as, for the transports that start
/// a process. `self_exe` is this binary, which serves the built-in servers.
pub fn launch_for(spec: &BackendSpec, self_exe: &str) -> Option<Launch> {
    match &spec.transport {
        Transport::Stdio(launch) => Some(launch.clone()),
        Transport::Builtin {
            server,
            timeout_secs,
            max_output,
            cwd,
            env,
            allow,
            deny,
        } => {
            let mut args = vec!["builtin".to_string(), server.clone()];
            if let Some(t) = timeout_secs {
                args.extend(["--timeout".to_string(), t.to_string()]);
            }
            if let Some(m) = max_output {
                args.extend(["--max-output".to_string(), m.to_string()]);
            }
            if let Some(d) = cwd {
                args.extend(["--cwd".to_string(), d.clone()]);
            }
            for p in allow {
                args.extend(["--allow".to_string(), p.clone()]);
            }
            for p in deny {
                args.extend(["--deny".to_string(), p.clone()]);
            }
            Some(Launch {
                command: self_exe.to_string(),
                args,
                env: env.clone(),
                cwd: None,
            })
        }
        Transport::Sse { .. } | Transport::StreamableHttp { .. } => None,
    }
}

/// Starts `launch` in its own process group, with the environment it adds and stdout and
/// stderr piped.
fn spawn_child(name: &str, launch: &Launch, stdin: Stdio) -> Result<Child, String> {
    let mut cmd = Command::new(&launch.command);
    cmd.args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &launch.cwd {
        if !std::path::Path::new(dir).is_dir() {
            return Err(format!(
                "its cwd {} is not a directory",
                crate::console::quoted_path(dir.as_ref(), None)
            ));
        }
        cmd.current_dir(dir);
    }
    crate::tree::prepare(&mut cmd);
    let child = cmd.spawn().map_err(|e| {
        let program = std::path::Path::new(&launch.command);
        let named = if program.components().count() > 1 {
            // A relative path is taken from the cwd the child gets.
            crate::console::quoted_path(program, launch.cwd.as_deref().map(std::path::Path::new))
        } else if e.kind() == std::io::ErrorKind::NotFound {
            format!("'{}' (not found on the PATH)", launch.command)
        } else {
            format!("'{}'", launch.command)
        };
        format!("cannot start {named}: {e}")
    })?;
    crate::tree::adopt(&child);
    info!(
        "backend '{name}': started '{}' with {} argument(s), pid {}",
        launch.command,
        launch.args.len(),
        child.id()
    );
    Ok(child)
}

/// Starts the child and its threads. Messages it prints arrive at the hub tagged `instance`.
fn start(
    instance: InstanceId,
    name: &str,
    launch: &Launch,
    to_hub: ToHub,
    max_message: usize,
) -> Result<BackendHandle, String> {
    let hub = to_hub.hub.clone();
    let mut child = spawn_child(name, launch, Stdio::piped())?;
    let stdin = child.stdin.take().expect("stdin was piped");
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    let last_stderr = Arc::new(Mutex::new(LastWords::default()));

    let (tx, rx) = crossbeam_channel::unbounded::<Message>();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let (eof_tx, eof_rx) = crossbeam_channel::bounded::<()>(1);
    let (stderr_done, stderr_drained) = crossbeam_channel::bounded::<()>(0);

    let spawned = (|| {
        let n = name.to_string();
        spawn_named(format!("backend-{name}-writer"), move || {
            write_stdin(&n, stdin, rx)
        })?;
        let n = name.to_string();
        spawn_named(format!("backend-{name}-reader"), move || {
            read_stdout(instance, &n, stdout, &to_hub, max_message);
            drop(eof_tx);
        })?;
        let n = name.to_string();
        let tail = last_stderr.clone();
        spawn_named(format!("backend-{name}-stderr"), move || {
            drain_stderr(&n, stderr, &tail);
            drop(stderr_done);
        })?;
        Ok::<(), String>(())
    })();
    if let Err(e) = spawned {
        crate::tree::kill_child(&mut child);
        return Err(e);
    }
    let n = name.to_string();
    let supervisor = thread::Builder::new()
        .name(format!("backend-{name}"))
        .spawn(move || {
            if let Some(reason) =
                supervise(&n, child, stop_rx, eof_rx, &stderr_drained, &last_stderr)
            {
                let _ = hub.send(HubEvent::BackendExited { instance, reason });
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    Ok(BackendHandle {
        tx,
        stop: stop_tx,
        supervisor: Some(supervisor),
    })
}

/// Waits for the child to end by itself (returning why, for the hub) or for the hub to ask
/// it to stop (returning `None`). Either way the process group is gone afterwards.
fn supervise(
    name: &str,
    mut child: Child,
    stop: Receiver<()>,
    stdout_closed: Receiver<()>,
    stderr_drained: &Receiver<()>,
    last_stderr: &Mutex<LastWords>,
) -> Option<String> {
    // The child's end shows as stdout closing, or, when something it started still holds
    // stdout open, only as its exit: so watch both.
    let status = loop {
        select! {
            recv(stdout_closed) -> _ => {
                break match child.wait_timeout(EXIT_GRACE) {
                    Ok(Some(status)) => status.to_string(),
                    _ => "stdout closed".to_string(),
                };
            }
            recv(stop) -> _ => {
                // The hub dropped our stdin sender before asking, so the writer closes stdin.
                match child.wait_timeout(EXIT_GRACE) {
                    Ok(Some(status)) => debug!("backend '{name}': exited on stdin close ({status})"),
                    _ => info!("backend '{name}': did not exit within {EXIT_GRACE:?} of stdin closing; killing its process group"),
                }
                crate::tree::kill_child(&mut child);
                return None;
            }
            default(Duration::from_millis(250)) => {
                if let Ok(Some(status)) = child.try_wait() {
                    break status.to_string();
                }
            }
        }
    };
    crate::tree::kill_child(&mut child);
    // What it wrote before dying reaches the hub first; its last words explain it.
    let _ = stdout_closed.recv_timeout(Duration::from_secs(1));
    let _ = stderr_drained.recv_timeout(Duration::from_secs(1));
    let tail = last_stderr.lock().map(|w| w.summary()).unwrap_or_default();
    let reason = if tail.is_empty() {
        format!("exited ({status})")
    } else {
        format!("exited ({status}); its stderr ends: {tail}")
    };
    warn!("backend '{name}': {reason}");
    Some(reason)
}

fn write_stdin(name: &str, mut stdin: ChildStdin, rx: Receiver<Message>) {
    for msg in rx {
        let mut line = msg.to_json();
        debug!("> {name}: {line}");
        line.push('\n');
        if let Err(e) = stdin.write_all(line.as_bytes()).and_then(|_| stdin.flush()) {
            debug!("backend '{name}': stdin closed: {e}");
            return;
        }
    }
}

/// Where a backend's readers send what they read: replies they may complete themselves go
/// straight to their client (`hub::Direct`), everything else to the hub, counted so that
/// a direct reply never overtakes a message still on its way through the hub.
#[derive(Clone)]
pub struct ToHub {
    /// For the events that are not the backend's messages (`BackendExited`).
    pub hub: Sender<HubEvent>,
    direct: Direct,
}

impl ToHub {
    /// Hands a message of the backend on; false when the hub is gone.
    pub fn message(&self, instance: InstanceId, msg: Message) -> bool {
        let msg = match msg {
            Message::Response(resp) => match self.direct.complete(resp) {
                Completed::Done => return true,
                Completed::Refused(session, why) => {
                    debug!("session {session}: did not take its answer");
                    return self.hub.send(HubEvent::Refused { session, why }).is_ok();
                }
                Completed::ToHub(resp) => Message::Response(resp),
            },
            other => other,
        };
        self.direct.order.sending();
        self.hub
            .send(HubEvent::FromBackend { instance, msg })
            .is_ok()
    }
}

fn read_stdout(
    instance: InstanceId,
    name: &str,
    stdout: impl Read,
    to_hub: &ToHub,
    max_message: usize,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf = Vec::new();
    loop {
        // A large message's buffer is not kept for the small ones after it.
        if buf.capacity() > 1024 * 1024 {
            buf = Vec::new();
        }
        let text = match read_line_limited(&mut reader, &mut buf, max_message) {
            Ok(Line::End) => break,
            Ok(Line::TooLong(size)) => {
                if let Some(reply) = oversized(name, &buf, size, max_message)
                    && !to_hub.message(instance, Message::Response(reply))
                {
                    break;
                }
                continue;
            }
            Ok(Line::Text) => &buf,
            Err(e) => {
                warn!("backend '{name}': cannot read stdout: {e}");
                break;
            }
        };
        let Ok(text) = std::str::from_utf8(text) else {
            warn!("backend '{name}': skipped a stdout line that is not UTF-8");
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match Message::parse(text) {
            Ok(msg) => {
                debug!("< {name}: {text}");
                if !to_hub.message(instance, msg) {
                    break;
                }
            }
            Err(e) => warn!(
                "backend '{name}': skipped a stdout line that is not JSON-RPC ({e}): {}",
                clip(text, 200)
            ),
        }
    }
}

/// What `read_line_limited` found.
pub enum Line {
    End,
    /// A whole line is in the buffer.
    Text,
    /// A line of this many bytes, over the limit: only its start is in the buffer.
    TooLong(usize),
}

/// Bytes of an oversized line kept, to find its request id.
const KEEP_OF_OVERSIZED: usize = 512;

/// Reads one line into `buf` (cleared first), keeping at most `limit` bytes: a longer line
/// is read to its end and dropped, and only its first bytes are kept.
pub fn read_line_limited(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut size = 0usize;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(match size {
                0 => Line::End,
                n if n > limit => Line::TooLong(n),
                _ => Line::Text,
            });
        }
        let (take, done) = match memchr_newline(chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        size += take;
        if size <= limit {
            buf.extend_from_slice(&chunk[..take]);
        } else if buf.len() < KEEP_OF_OVERSIZED {
            let room = KEEP_OF_OVERSIZED - buf.len();
            buf.extend_from_slice(&chunk[..take.min(room)]);
        } else if buf.len() > KEEP_OF_OVERSIZED {
            buf.truncate(KEEP_OF_OVERSIZED);
        }
        reader.consume(take);
        if done {
            return Ok(if size > limit {
                Line::TooLong(size)
            } else {
                Line::Text
            });
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// A message over the size limit: if it answers a request, that request gets an error
/// instead, so nobody waits for it; the backend stays in use.
/// A message over `limit` bytes was read (only `start` of it kept): says so, and returns
/// the error that answers the request it was the answer to, if its id can be found.
pub fn oversized(
    name: &str,
    start: &[u8],
    size: usize,
    limit: usize,
) -> Option<crate::jsonrpc::Response> {
    let why = format!(
        "backend '{name}' sent a message of {size} bytes, over the {limit}-byte limit (maxMessageSize)"
    );
    warn!("{why}");
    let id = sniff_id(start)?;
    Some(crate::jsonrpc::Response::error(
        Some(id),
        crate::jsonrpc::INTERNAL_ERROR,
        why,
    ))
}

/// The `"id"` of a message, read from its first bytes only (the rest may be gigabytes).
/// Only a response's id counts: a request from the backend has its `"method"` first or
/// soon after, and is simply dropped.
fn sniff_id(start: &[u8]) -> Option<crate::jsonrpc::Id> {
    let text = String::from_utf8_lossy(start);
    if text.contains("\"method\"") {
        return None;
    }
    let at = text.find("\"id\"")? + 4;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if let Some(s) = rest.strip_prefix('"') {
        s.find('"')? + 2
    } else {
        rest.find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(rest.len())
    };
    let raw = serde_json::value::RawValue::from_string(rest[..end].to_string()).ok()?;
    let probe = format!(r#"{{"jsonrpc":"2.0","id":{},"result":null}}"#, raw.get());
    match Message::parse(&probe).ok()? {
        Message::Response(r) => r.id,
        _ => None,
    }
}

fn drain_stderr(name: &str, stderr: impl Read, last: &Mutex<LastWords>) {
    let reader = BufReader::new(stderr);
    for line in reader.split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        info!("[{name}] {line}");
        if let Ok(mut words) = last.lock() {
            words.push(line);
        }
    }
}

/// The first `max` bytes of `s`, cut on a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn spawn_named(name: String, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    thread::Builder::new()
        .name(name)
        .stack_size(PIPE_STACK)
        .spawn(f)
        .map(|_| ())
        .map_err(|e| format!("cannot start a thread: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_dropped_but_their_start_kept() {
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":\"{}\"}}\n",
            "x".repeat(5000)
        );
        let input = format!("short\n{long}after\nlast");
        let mut reader = BufReader::with_capacity(64, input.as_bytes());
        let mut buf = Vec::new();
        assert!(matches!(
            read_line_limited(&mut reader, &mut buf, 100).unwrap(),
            Line::Text
        ));
        assert_eq!(buf, b"short\n");
        match read_line_limited(&mut reader, &mut buf, 100).unwrap() {
            Line::TooLong(n) => assert_eq!(n, long.len()),
            _ => panic!("not too long"),
        }
        assert_eq!(buf.len(), KEEP_OF_OVERSIZED);
        assert_eq!(sniff_id(&buf).and_then(|i| i.as_u64()), Some(42));
        assert!(matches!(
            read_line_limited(&mut reader, &mut buf, 100).unwrap(),
            Line::Text
        ));
        assert_eq!(buf, b"after\n");
        assert!(matches!(
            read_line_limited(&mut reader, &mut buf, 100).unwrap(),
            Line::Text
        ));
        assert_eq!(buf, b"last");
        assert!(matches!(
            read_line_limited(&mut reader, &mut buf, 100).unwrap(),
            Line::End
        ));
    }

    #[test]
    fn ids_are_sniffed_from_responses_only() {
        let id = |s: &str| sniff_id(s.as_bytes()).map(|i| i.to_string());
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":"abc","result":{"content":"#).as_deref(),
            Some(r#""abc""#)
        );
        assert_eq!(
            id(r#"{"id": 7 , "jsonrpc":"2.0","res"#).as_deref(),
            Some("7")
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","method":"x","id":1,"params":"#),
            None
        );
        assert_eq!(id(r#"{"jsonrpc":"2.0","result":"#), None);
    }
}
