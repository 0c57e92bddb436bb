//! A stdio backend: the child process, its three pipes and its supervisor.
//!
//! Owns the child and the threads that pump its pipes: `backend-<name>-reader` (stdout
//! lines → `HubEvent::FromBackend`), `backend-<name>-writer` (messages → stdin),
//! `backend-<name>-stderr` (lines → the log) and `backend-<name>` (the supervisor, which
//! reports the exit and stops the whole process group). It never routes: every message
//! goes to the hub.

use crate::config::{BackendSpec, Launch, Transport};
use crate::hub::{HubEvent, InstanceId};
use crate::jsonrpc::Message;
use crossbeam_channel::{Receiver, Sender, select};
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
) -> Result<BackendHandle, String> {
    match &spec.transport {
        Transport::Sse {
            url,
            launch,
            startup,
        } => crate::remote::start_sse(instance, &spec.name, url, launch.as_ref(), *startup, hub),
        Transport::StreamableHttp { url, headers } => {
            crate::remote::start_http(instance, &spec.name, url, headers, hub)
        }
        _ => {
            let launch =
                launch_for(spec, self_exe).expect("stdio and builtin backends have a command");
            start(instance, &spec.name, &launch, hub)
        }
    }
}

/// A program whose output is only logged.
pub struct LoggedChild {
    pub child: Child,
    /// Its last output line, for error messages.
    pub last_line: Arc<Mutex<String>>,
    /// Disconnects once its stdout and stderr are both closed and read.
    pub drained: Receiver<()>,
}

/// Starts a program whose output is only logged (a local server the gateway then connects
/// to over HTTP).
pub fn spawn_logged(name: &str, launch: &Launch) -> Result<LoggedChild, String> {
    let mut child = spawn_child(name, launch, Stdio::null())?;
    let last = Arc::new(Mutex::new(String::new()));
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
            kill_group(&mut child);
            return Err(e);
        }
    }
    Ok(LoggedChild {
        child,
        last_line: last,
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
        } => {
            let mut args = vec!["builtin".to_string(), server.clone()];
            if let Some(t) = timeout_secs {
                args.extend(["--timeout".to_string(), t.to_string()]);
            }
            Some(Launch {
                command: self_exe.to_string(),
                args,
                env: Vec::new(),
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
        cmd.current_dir(dir);
    }
    own_process_group(&mut cmd);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start '{}': {e}", launch.command))?;
    info!(
        "backend '{name}': started '{}' with {} argument(s), pid {}",
        launch.command,
        launch.args.len(),
        child.id()
    );
    Ok(child)
}

/// Starts the child and its threads. Messages it prints arrive at the hub tagged `instance`.
pub fn start(
    instance: InstanceId,
    name: &str,
    launch: &Launch,
    hub: Sender<HubEvent>,
) -> Result<BackendHandle, String> {
    let mut child = spawn_child(name, launch, Stdio::piped())?;
    let stdin = child.stdin.take().expect("stdin was piped");
    let stdout = child.stdout.take().expect("stdout was piped");
    let stderr = child.stderr.take().expect("stderr was piped");
    let last_stderr = Arc::new(Mutex::new(String::new()));

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
        let reader_hub = hub.clone();
        spawn_named(format!("backend-{name}-reader"), move || {
            read_stdout(instance, &n, stdout, &reader_hub);
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
        kill_group(&mut child);
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
    last_stderr: &Mutex<String>,
) -> Option<String> {
    select! {
        recv(stdout_closed) -> _ => {
            // stdout closed: the process ended or is about to.
            let status = match child.wait_timeout(EXIT_GRACE) {
                Ok(Some(status)) => status.to_string(),
                _ => "stdout closed".to_string(),
            };
            kill_group(&mut child);
            // Its last words explain it: let the stderr thread finish reading them.
            let _ = stderr_drained.recv_timeout(Duration::from_secs(1));
            let tail = last_stderr.lock().map(|s| s.clone()).unwrap_or_default();
            let reason = if tail.is_empty() {
                format!("exited ({status})")
            } else {
                format!("exited ({status}; last stderr line: {tail})")
            };
            warn!("backend '{name}': {reason}");
            Some(reason)
        }
        recv(stop) -> _ => {
            // The hub dropped our stdin sender before asking, so the writer closes stdin.
            match child.wait_timeout(EXIT_GRACE) {
                Ok(Some(status)) => debug!("backend '{name}': exited on stdin close ({status})"),
                _ => info!("backend '{name}': did not exit within {EXIT_GRACE:?} of stdin closing; killing its process group"),
            }
            kill_group(&mut child);
            None
        }
    }
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

fn read_stdout(instance: InstanceId, name: &str, stdout: impl Read, hub: &Sender<HubEvent>) {
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                warn!("backend '{name}': cannot read stdout: {e}");
                break;
            }
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
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
                let event = HubEvent::FromBackend { instance, msg };
                if hub.send(event).is_err() {
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

fn drain_stderr(name: &str, stderr: impl Read, last: &Mutex<String>) {
    let reader = BufReader::new(stderr);
    for line in reader.split(b'\n') {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        info!("[{name}] {line}");
        if let Ok(mut l) = last.lock() {
            *l = clip(line, 300).to_string();
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

#[cfg(unix)]
fn own_process_group(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

#[cfg(not(unix))]
fn own_process_group(_cmd: &mut Command) {}

/// Kills the child's whole process group (the child and everything it started), then reaps
/// the child. Harmless when they are already gone.
#[cfg(unix)]
pub fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(not(unix))]
pub fn kill_group(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
