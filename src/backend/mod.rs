//! The backends: starting an instance over its transport, and what the transports share.
//!
//! Each transport owns its instance's connection and threads and hands what it reads to
//! the hub's `Inbox` (which completes plain answers on the reading thread); none routes.
//! `stdio` pumps a child's pipes; `sse` and `http` speak the legacy HTTP+SSE transport and
//! Streamable HTTP (`remote` holds what those two share). A request the instance cannot
//! be reached for is answered by its transport with a JSON-RPC error naming the backend,
//! so the pending entry always gets its one answer.

mod http;
mod last_words;
mod modern;
mod remote;
mod sse;
mod stdio;

use crate::config::{BackendSpec, Launch, Transport};
pub use crate::contract::BackendHandle;
use crate::contract::{Inbox, Spawner};
use crossbeam_channel::Receiver;
use last_words::LastWords;
use log::info;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

/// Where an instance's threads hand what they read.
pub type Hub = Arc<dyn Inbox>;

/// Stack of the pipe threads: they only move lines.
pub(super) const PIPE_STACK: usize = 128 * 1024;

/// Starts an instance of `spec` over whatever transport it uses; what it reads goes to
/// `hub`. `self_exe` is this binary, which serves the built-in servers.
pub fn start_for(spec: &BackendSpec, self_exe: &str, hub: Hub) -> Result<BackendHandle, String> {
    let (name, max_message) = (&spec.name, spec.policy.max_message);
    match &spec.transport {
        Transport::Sse {
            url,
            launch,
            startup,
        } => {
            let launch = launch.as_ref().map(|l| Launch {
                environment: spec.environment.clone(),
                ..l.clone()
            });
            sse::start(name, url, launch.as_ref(), *startup, hub, max_message)
        }
        Transport::StreamableHttp { url, headers } => {
            http::start(name, url, headers, hub, max_message)
        }
        _ => {
            let launch =
                launch_for(spec, self_exe).expect("stdio and builtin backends have a command");
            stdio::start(name, &launch, hub, max_message)
        }
    }
}

/// The hub's way to start instances: `start_for` with this binary for the built-ins, and
/// the gateway-wide `inheritEnv` for backends without one of their own.
pub fn spawner(self_exe: &std::path::Path, inherit_env: Vec<String>) -> Box<Spawner> {
    let self_exe = self_exe.to_string_lossy().into_owned();
    Box::new(move |spec: &BackendSpec, hub: Hub| {
        if spec.environment.only.is_none() && !inherit_env.is_empty() {
            let mut spec = spec.clone();
            spec.environment.only = Some(inherit_env.clone());
            return start_for(&spec, &self_exe, hub);
        }
        start_for(spec, &self_exe, hub)
    })
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
        if let Err(e) = spawn_sized(format!("backend-{name}-{which}"), PIPE_STACK, drain) {
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
        Transport::Stdio(launch) => Some(Launch {
            environment: spec.environment.clone(),
            ..launch.clone()
        }),
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
                environment: spec.environment.clone(),
            })
        }
        Transport::Sse { .. } | Transport::StreamableHttp { .. } => None,
    }
}

/// Starts `launch` in its own process group, with what it inherits of the gateway's
/// environment (`config::Environment`) and what it adds, and stdout and stderr piped.
pub(super) fn spawn_child(name: &str, launch: &Launch, stdin: Stdio) -> Result<Child, String> {
    let mut cmd = Command::new(&launch.command);
    cmd.args(&launch.args);
    let environment = &launch.environment;
    if environment.only.is_some() {
        cmd.env_clear();
        for (k, v) in std::env::vars_os() {
            if k.to_str().is_some_and(|k| environment.inherits(k)) {
                cmd.env(k, v);
            }
        }
    }
    for name in &environment.withheld {
        cmd.env_remove(name);
    }
    cmd.envs(launch.env.iter().map(|(k, v)| (k, v)))
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

pub(super) fn drain_stderr(name: &str, stderr: impl Read, last: &Mutex<LastWords>) {
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

/// Starts a backend's thread with a stack of `stack` bytes (only what is touched costs
/// memory).
pub(super) fn spawn_sized(
    name: String,
    stack: usize,
    f: impl FnOnce() + Send + 'static,
) -> Result<(), String> {
    thread::Builder::new()
        .name(name)
        .stack_size(stack)
        .spawn(f)
        .map(|_| ())
        .map_err(|e| format!("cannot start a thread: {e}"))
}
