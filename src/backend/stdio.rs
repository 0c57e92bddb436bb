//! A backend over stdio: the child process, its three pipes and its supervisor.
//!
//! Threads: `backend-<name>-reader` (stdout lines → the hub's inbox),
//! `backend-<name>-writer` (messages → stdin), `backend-<name>-stderr` (lines → the log)
//! and `backend-<name>` (the supervisor, which reports the exit and stops the whole
//! process group).

use super::modern::Bridge;
use super::{BackendHandle, Hub, LastWords, PIPE_STACK, drain_stderr, spawn_child, spawn_sized};
use crate::config::Launch;
use crate::jsonrpc::Message;
use crate::lines::{Line, clip, oversized, read_line_limited};
use crossbeam_channel::{Receiver, select};
use log::{debug, info, warn};
use std::io::{BufReader, Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use wait_timeout::ChildExt;

/// How long a backend gets to exit by itself after its stdin is closed.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// Starts the child and its threads; the messages it prints go to `hub`.
pub(super) fn start(
    name: &str,
    launch: &Launch,
    hub: Hub,
    max_message: usize,
) -> Result<BackendHandle, String> {
    let mut child = spawn_child(name, launch, Stdio::piped())?;
    let pid = child.id();
    let stdin = child.stdin.take().expect("stdin was piped");
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    let last_stderr = Arc::new(Mutex::new(LastWords::default()));

    let (tx, rx) = crossbeam_channel::unbounded::<Message>();
    let bridge = Arc::new(Bridge::new(hub.clone(), name));
    let pipe = Arc::new(Pipe {
        stdin: Mutex::new((stdin, Vec::new())),
        bridge: bridge.clone(),
        name: name.to_string(),
    });
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let (eof_tx, eof_rx) = crossbeam_channel::bounded::<()>(1);
    let (stderr_done, stderr_drained) = crossbeam_channel::bounded::<()>(0);

    let spawned = (|| {
        let (writer_pipe, writer_queued) = (pipe.clone(), queued.clone());
        spawn_sized(format!("backend-{name}-writer"), PIPE_STACK, move || {
            write_stdin(&writer_pipe, &rx, &writer_queued)
        })?;
        let (n, reader_hub): (String, Hub) = (name.to_string(), bridge);
        spawn_sized(format!("backend-{name}-reader"), PIPE_STACK, move || {
            read_stdout(&n, stdout, &reader_hub, max_message);
            drop(eof_tx);
        })?;
        let n = name.to_string();
        let tail = last_stderr.clone();
        spawn_sized(format!("backend-{name}-stderr"), PIPE_STACK, move || {
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
                hub.exited(reason);
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    Ok(BackendHandle::writing_now(tx, pipe, queued, stop_tx, supervisor).with_pid(pid))
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
                break child.wait_timeout(EXIT_GRACE).ok().flatten();
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
                    break Some(status);
                }
            }
        }
    };
    let ended = ended_with_the_gateway(status, &stop);
    let status = status.map_or_else(|| "stdout closed".to_string(), |s| s.to_string());
    if ended {
        debug!("backend '{name}': ended with the gateway ({status})");
        crate::tree::kill_child(&mut child);
        return None;
    }
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

/// Whether a child that ended by itself (`status`; `None`: its stdout closed and it is
/// still there) ended with the gateway rather than failing: a stop was on its way (it saw
/// its stdin close first), or a signal that ends the gateway ended it too (SIGTERM from
/// systemd, Ctrl-C to a process group). Only an end that looks like one (status 0, 130 or
/// 143, or SIGINT/SIGTERM) waits a moment for either; a crash is reported at once.
fn ended_with_the_gateway(status: Option<std::process::ExitStatus>, stop: &Receiver<()>) -> bool {
    const SETTLE: Duration = Duration::from_millis(300);
    #[cfg(unix)]
    let by_signal = status
        .and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s))
        .is_some_and(|sig| sig == libc::SIGTERM || sig == libc::SIGINT);
    #[cfg(not(unix))]
    let by_signal = false;
    let looks_ended = match status {
        None => true,
        Some(s) => by_signal || matches!(s.code(), Some(0 | 130 | 143)),
    };
    if !looks_ended {
        return false;
    }
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        if crate::tree::stopping() {
            return true;
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match stop.recv_timeout(left.min(Duration::from_millis(20))) {
            Ok(()) => return true,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return true,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if left.is_zero() => return false,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
        }
    }
}

/// A child's stdin, written by its writer thread or, when that is idle, by the thread
/// that routed a message (`WriteNow`): one thread hand-off less per call.
struct Pipe {
    /// The pipe and a buffer for the line being written, kept between messages.
    stdin: Mutex<(ChildStdin, Vec<u8>)>,
    bridge: Arc<Bridge>,
    name: String,
}

impl Pipe {
    fn lock(&self) -> std::sync::MutexGuard<'_, (ChildStdin, Vec<u8>)> {
        self.stdin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `msg` as one line; false when stdin is closed.
    fn write(&self, held: &mut (ChildStdin, Vec<u8>), msg: &Message) -> bool {
        let (stdin, line) = held;
        // A large message's buffer is not kept for the small ones.
        if line.capacity() > 1024 * 1024 {
            *line = Vec::new();
        }
        line.clear();
        msg.write_json(line);
        if log::log_enabled!(log::Level::Debug) {
            debug!("> {}: {}", self.name, String::from_utf8_lossy(line));
        }
        line.push(b'\n');
        if let Err(e) = stdin.write_all(line).and_then(|_| stdin.flush()) {
            debug!("backend '{}': stdin closed: {e}", self.name);
            return false;
        }
        true
    }
}

impl crate::contract::WriteNow for Pipe {
    fn write_now(
        &self,
        msg: Message,
        queued: &std::sync::atomic::AtomicUsize,
    ) -> Result<(), Message> {
        // A 2026-07-28 backend's messages are the bridge's to translate, on the writer.
        if !self.bridge.passes_through() {
            return Err(msg);
        }
        let Ok(mut held) = self.stdin.try_lock() else {
            return Err(msg);
        };
        if queued.load(std::sync::atomic::Ordering::SeqCst) != 0 {
            return Err(msg);
        }
        match self.write(&mut held, &msg) {
            true => Ok(()),
            // Closed: the writer finds so too, and the instance's end answers the call.
            false => Err(msg),
        }
    }
}

/// Writes the hub's messages (as the bridge has them) and the bridge's own, until the hub
/// drops its sender. Each message from the hub's channel is counted off `queued` once
/// written, under the pipe's lock (`contract::Outlet`).
fn write_stdin(pipe: &Pipe, rx: &Receiver<Message>, queued: &std::sync::atomic::AtomicUsize) {
    use std::sync::atomic::Ordering;
    while let Ok((msg, from_hub)) = pipe.bridge.next_from(rx) {
        let Some(msg) = msg else {
            if from_hub {
                queued.fetch_sub(1, Ordering::SeqCst);
            }
            continue;
        };
        let mut held = pipe.lock();
        let written = pipe.write(&mut held, &msg);
        if from_hub {
            queued.fetch_sub(1, Ordering::SeqCst);
        }
        drop(held);
        if !written {
            return;
        }
    }
}

fn read_stdout(name: &str, stdout: impl Read, hub: &Hub, max_message: usize) {
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
                    && !hub.message(Message::Response(reply))
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
                if !hub.message(msg) {
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
