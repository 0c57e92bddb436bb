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
    let stdin = child.stdin.take().expect("stdin was piped");
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    let last_stderr = Arc::new(Mutex::new(LastWords::default()));

    let (tx, rx) = crossbeam_channel::unbounded::<Message>();
    let bridge = Arc::new(Bridge::new(hub.clone(), name));
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let (eof_tx, eof_rx) = crossbeam_channel::bounded::<()>(1);
    let (stderr_done, stderr_drained) = crossbeam_channel::bounded::<()>(0);

    let spawned = (|| {
        let (n, writer_bridge) = (name.to_string(), bridge.clone());
        spawn_sized(format!("backend-{name}-writer"), PIPE_STACK, move || {
            write_stdin(&n, stdin, &rx, &writer_bridge)
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
    Ok(BackendHandle::new(tx, stop_tx, supervisor))
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

/// Writes the hub's messages (as the bridge has them) and the bridge's own, until the hub
/// drops its sender.
fn write_stdin(name: &str, mut stdin: ChildStdin, rx: &Receiver<Message>, bridge: &Bridge) {
    // One buffer for every line (a large message's is not kept for the small ones).
    let mut line = Vec::new();
    while let Ok(msg) = bridge.next(rx) {
        let Some(msg) = msg else { continue };
        if line.capacity() > 1024 * 1024 {
            line = Vec::new();
        }
        line.clear();
        msg.write_json(&mut line);
        drop(msg);
        if log::log_enabled!(log::Level::Debug) {
            debug!("> {name}: {}", String::from_utf8_lossy(&line));
        }
        line.push(b'\n');
        if let Err(e) = stdin.write_all(&line).and_then(|_| stdin.flush()) {
            debug!("backend '{name}': stdin closed: {e}");
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
