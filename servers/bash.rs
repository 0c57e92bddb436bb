//! The built-in `bash` server: one tool, `bash {command}`, run with `bash -c`.
//!
//! Each command runs in its own process group with a timeout, after which the whole group
//! is killed; stdout and stderr are captured up to a cap; a non-zero exit, a signal or a
//! timeout sets `isError`.

use super::toolserver::{ToolServer, text_result};
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

/// Bytes kept of each of stdout and stderr; the rest is counted and dropped.
const MAX_OUTPUT: usize = 1024 * 1024;
/// After the command ends, how long to wait for its output pipes to close (a background
/// process it started may hold them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

pub struct Bash {
    timeout: Duration,
    /// Process groups of commands still running, killed when the gateway goes away.
    running: Mutex<HashSet<u32>>,
}

impl Bash {
    pub fn new(timeout: Duration) -> Bash {
        Bash {
            timeout,
            running: Mutex::new(HashSet::new()),
        }
    }

    fn run(&self, command: &str) -> Value {
        let started = Instant::now();
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return text_result(format!("cannot start bash: {e}"), true, None),
        };
        let pid = child.id();
        self.running.lock().expect("running-set lock").insert(pid);
        let stdout = Capture::start(child.stdout.take().expect("stdout was piped"));
        let stderr = Capture::start(child.stderr.take().expect("stderr was piped"));
        let status = match child.wait_timeout(self.timeout) {
            Ok(Some(status)) => Some(status),
            Ok(None) => {
                kill_group(pid);
                let _ = child.kill();
                let _ = child.wait();
                None
            }
            Err(e) => {
                kill_group(pid);
                let _ = child.wait();
                return text_result(format!("cannot wait for bash: {e}"), true, None);
            }
        };
        self.running.lock().expect("running-set lock").remove(&pid);
        let deadline = Instant::now() + DRAIN_GRACE;
        let (out, err) = (stdout.finish(deadline), stderr.finish(deadline));
        let took = started.elapsed();
        let timed_out = status.is_none();
        let exit_code = status.and_then(|s| s.code());
        let ending = match status {
            None => format!(
                "timed out after {} s; the command and its children were killed",
                self.timeout.as_secs()
            ),
            Some(s) => match s.code() {
                Some(code) => format!("exit code {code}"),
                None => format!("ended by {s}"),
            },
        };
        eprintln!(
            "bash: ran {:?} in {:.3} s: {ending}",
            crate::backend::clip(command, 200),
            took.as_secs_f64()
        );
        let mut text = format!("[{ending}]\n");
        text.push_str(&out.text);
        if !err.text.is_empty() {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("[stderr]\n");
            text.push_str(&err.text);
        }
        let structured = json!({
            "exitCode": exit_code,
            "stdout": out.text,
            "stderr": err.text,
            "timedOut": timed_out,
        });
        text_result(text, exit_code != Some(0), Some(structured))
    }
}

impl ToolServer for Bash {
    fn name(&self) -> &'static str {
        "mcp-gateway-bash"
    }

    fn tools(&self) -> Vec<Value> {
        vec![json!({
            "name": "bash",
            "description": format!(
                "Run a command with `bash -c` on the gateway's host and return its exit code, stdout and stderr. \
                 Commands are killed after {} s; output beyond {} KiB per stream is cut.",
                self.timeout.as_secs(), MAX_OUTPUT / 1024
            ),
            "inputSchema": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": "The bash command line to run"}},
                "required": ["command"],
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "exitCode": {"type": ["integer", "null"], "description": "null when killed by a signal or the timeout"},
                    "stdout": {"type": "string"},
                    "stderr": {"type": "string"},
                    "timedOut": {"type": "boolean"},
                },
                "required": ["exitCode", "stdout", "stderr", "timedOut"],
            },
        })]
    }

    fn call(&self, tool: &str, args: &Map<String, Value>) -> Option<Value> {
        if tool != "bash" {
            return None;
        }
        Some(match args.get("command") {
            Some(Value::String(c)) if !c.trim().is_empty() => self.run(c),
            Some(Value::String(_)) => text_result("'command' must not be empty".into(), true, None),
            Some(_) => text_result("'command' must be a string".into(), true, None),
            None => text_result("missing required argument 'command'".into(), true, None),
        })
    }

    fn shutdown(&self) {
        for pid in self.running.lock().expect("running-set lock").drain() {
            kill_group(pid);
        }
    }
}

/// One output stream read on its own thread into a capped buffer.
struct Capture {
    state: Arc<Mutex<Captured>>,
    done: crossbeam_channel::Receiver<()>,
}

#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

struct Finished {
    text: String,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Capture {
        let state = Arc::new(Mutex::new(Captured::default()));
        let (tx, done) = crossbeam_channel::bounded(1);
        let s = state.clone();
        let spawned = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    let mut c = s.lock().expect("capture lock");
                    let room = MAX_OUTPUT.saturating_sub(c.bytes.len()).min(n);
                    c.bytes.extend_from_slice(&buf[..room]);
                    c.dropped += n - room;
                }
                let _ = tx.send(());
            });
        if let Err(e) = spawned {
            eprintln!("bash: cannot start an output reader thread: {e}");
        }
        Capture { state, done }
    }

    /// What was read, once the pipe closed or `deadline` passed.
    fn finish(self, deadline: Instant) -> Finished {
        let closed = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok();
        let c = self.state.lock().expect("capture lock");
        let mut text = String::from_utf8_lossy(&c.bytes).into_owned();
        if c.dropped > 0 {
            text.push_str(&format!(
                "\n[output cut: {} more bytes not shown]\n",
                c.dropped
            ));
        }
        if !closed {
            text.push_str("\n[output incomplete: a background process still holds it open]\n");
        }
        Finished { text }
    }
}

#[cfg(unix)]
fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

#[cfg(windows)]
fn kill_group(pid: u32) {
    crate::backend::kill_tree(pid);
}

#[cfg(not(any(unix, windows)))]
fn kill_group(_pid: u32) {}
