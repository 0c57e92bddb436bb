//! Running one command for a built-in server: its own process group (or Windows process
//! tree), a timeout, cancellation, capped output, progress with the latest output lines,
//! and the tool result that reports it all.
//!
//! Shared by `bash`, `cmd`, `PowerShell` and `query_wmi`; each only says which program and
//! arguments.

use super::toolserver::{CallContext, text_result};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

/// After the command ends, how long to wait for its output pipes to close (a background
/// process it started may hold them open).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How often a long command reports progress (when the client asked for it).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How often the runner looks at the clock and for a cancellation.
const POLL: Duration = Duration::from_millis(100);

/// A built-in server's settings (from `config.json`, passed as `builtin` flags).
#[derive(Debug, Clone)]
pub struct Settings {
    pub timeout: Duration,
    /// Bytes kept of each of stdout and stderr.
    pub max_output: usize,
    pub cwd: Option<PathBuf>,
    /// Patterns (`*` matches anything) a command must match one of, when any are given.
    pub allow: Vec<String>,
    /// Patterns no command may match; they win over `allow`.
    pub deny: Vec<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timeout: Duration::from_secs(60),
            max_output: 1024 * 1024,
            cwd: None,
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

impl Settings {
    /// Why `command` may not run, if it may not.
    pub fn refuse(&self, command: &str) -> Option<String> {
        if let Some(p) = self.deny.iter().find(|p| crate::glob::glob(p, command)) {
            return Some(format!("the command matches the denied pattern '{p}'"));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| crate::glob::glob(p, command)) {
            return Some(format!(
                "the command matches none of the allowed patterns ({})",
                self.allow.join(", ")
            ));
        }
        None
    }
}

/// What one call asks for.
pub struct Job<'a> {
    pub program: &'a str,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub timeout: Duration,
    /// How the command is shown in the log and in refusals.
    pub shown: &'a str,
}

/// Runs commands and remembers the running ones, to end them if the gateway goes away.
#[derive(Default)]
pub struct Runner {
    running: Mutex<HashSet<u32>>,
}

impl Runner {
    pub fn run(&self, job: Job<'_>, settings: &Settings, ctx: &CallContext) -> Value {
        let started = Instant::now();
        let mut cmd = Command::new(job.program);
        cmd.args(&job.args)
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &job.cwd {
            cmd.current_dir(dir);
        }
        crate::tree::prepare(&mut cmd);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let where_ = job
                    .cwd
                    .as_ref()
                    .map(|d| format!(" in '{}'", d.display()))
                    .unwrap_or_default();
                return text_result(
                    format!("cannot start '{}'{where_}: {e}", job.program),
                    true,
                    None,
                );
            }
        };
        crate::tree::adopt(&child);
        let pid = child.id();
        self.lock().insert(pid);
        let stdout = Capture::start(
            child.stdout.take().expect("stdout was piped"),
            settings.max_output,
        );
        let stderr = Capture::start(
            child.stderr.take().expect("stderr was piped"),
            settings.max_output,
        );
        let mut last_progress = Instant::now();
        let mut reported = 0;
        let ending = loop {
            match child.wait_timeout(POLL) {
                Ok(Some(status)) => break Ending::Exited(status),
                Ok(None) => {}
                Err(e) => break Ending::Lost(e.to_string()),
            }
            if ctx.is_cancelled() {
                break Ending::Cancelled;
            }
            if started.elapsed() >= job.timeout {
                break Ending::TimedOut(job.timeout);
            }
            if ctx.wants_progress() && last_progress.elapsed() >= PROGRESS_EVERY {
                let seen = stdout.len() + stderr.len();
                if seen != reported {
                    reported = seen;
                    ctx.progress(&stdout.tail_lines(5));
                }
                last_progress = Instant::now();
            }
        };
        if matches!(ending, Ending::Exited(_)) {
            crate::tree::release(pid);
        } else {
            crate::tree::kill_child(&mut child);
        }
        self.lock().remove(&pid);
        let deadline = Instant::now() + DRAIN_GRACE;
        let (out, err) = (stdout.finish(deadline), stderr.finish(deadline));
        let took = started.elapsed();
        let exit_code = match &ending {
            Ending::Exited(s) => s.code(),
            _ => None,
        };
        let summary = ending.describe();
        eprintln!(
            "{}: ran {:?} in {:.3} s: {summary}",
            ctx.server(),
            crate::lines::clip(job.shown, 200),
            took.as_secs_f64()
        );
        let mut text = format!("[{summary}]\n");
        text.push_str(&out);
        if !err.is_empty() {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("[stderr]\n");
            text.push_str(&err);
        }
        let structured = json!({
            "exitCode": exit_code,
            "stdout": out,
            "stderr": err,
            "timedOut": matches!(ending, Ending::TimedOut(_)),
        });
        text_result(text, exit_code != Some(0), Some(structured))
    }

    /// Ends every command still running (the gateway closed our stdin).
    pub fn kill_all(&self) {
        for pid in self.lock().drain() {
            crate::tree::kill(pid);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u32>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Ending {
    Exited(std::process::ExitStatus),
    TimedOut(Duration),
    Cancelled,
    Lost(String),
}

impl Ending {
    fn describe(&self) -> String {
        match self {
            Ending::Exited(s) => match s.code() {
                Some(code) => format!("exit code {code}"),
                None => format!("ended by {s}"),
            },
            Ending::TimedOut(t) => format!(
                "timed out after {} s; the command and its children were killed",
                t.as_secs_f64()
            ),
            Ending::Cancelled => "cancelled; the command and its children were killed".into(),
            Ending::Lost(e) => format!("lost track of the command ({e}); it was killed"),
        }
    }
}

/// The output schema every command tool declares.
pub fn output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "exitCode": {"type": ["integer", "null"], "description": "null when killed (timeout, cancellation, signal)"},
            "stdout": {"type": "string"},
            "stderr": {"type": "string"},
            "timedOut": {"type": "boolean"},
        },
        "required": ["exitCode", "stdout", "stderr", "timedOut"],
    })
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

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static, max: usize) -> Capture {
        let state = Arc::new(Mutex::new(Captured::default()));
        let (tx, done) = crossbeam_channel::bounded(1);
        let s = state.clone();
        let spawned = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    let mut c = s.lock().unwrap_or_else(|p| p.into_inner());
                    let room = max.saturating_sub(c.bytes.len()).min(n);
                    c.bytes.extend_from_slice(&buf[..room]);
                    c.dropped += n - room;
                }
                let _ = tx.send(());
            });
        if let Err(e) = spawned {
            eprintln!("cannot start an output reader thread: {e}");
        }
        Capture { state, done }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        let c = self.lock();
        c.bytes.len() + c.dropped
    }

    /// The last `n` lines read so far.
    fn tail_lines(&self, n: usize) -> String {
        let c = self.lock();
        let text = String::from_utf8_lossy(&c.bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// What was read, once the pipe closed or `deadline` passed.
    fn finish(self, deadline: Instant) -> String {
        let closed = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok();
        let c = self.lock();
        let mut text = decode(&c.bytes, c.dropped > 0);
        if c.dropped > 0 {
            text.push_str(&format!(
                "\n[output cut: {} more bytes not shown]\n",
                c.dropped
            ));
        }
        if !closed {
            text.push_str("\n[output incomplete: a background process still holds it open]\n");
        }
        text
    }
}

/// Command output as text: UTF-8; on Windows, failing that, the console's code page (what
/// `cmd.exe` and most console programs write); failing both, lossy UTF-8 with a note.
fn decode(bytes: &[u8], cut: bool) -> String {
    match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        // A cut may split a character: that is not worth a note.
        Err(e) if cut && e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => {
            #[cfg(windows)]
            if let Some(t) = codepage::decode(bytes) {
                return t;
            }
            let mut t = String::from_utf8_lossy(bytes).into_owned();
            t.push_str("\n[the output was not valid UTF-8; invalid bytes are shown as \u{fffd}]\n");
            t
        }
    }
}

#[cfg(windows)]
mod codepage {
    //! The console code page, through kernel32.
    unsafe extern "system" {
        fn GetConsoleOutputCP() -> u32;
        fn GetOEMCP() -> u32;
        fn MultiByteToWideChar(
            page: u32,
            flags: u32,
            text: *const u8,
            len: i32,
            wide: *mut u16,
            wide_len: i32,
        ) -> i32;
    }

    pub fn decode(bytes: &[u8]) -> Option<String> {
        let len = i32::try_from(bytes.len()).ok()?;
        // SAFETY: the buffers' pointers and lengths are passed together; MultiByteToWideChar
        // writes at most `wide.len()` units.
        unsafe {
            let page = match GetConsoleOutputCP() {
                0 => GetOEMCP(), // no console of our own: the OEM page is what cmd.exe uses
                p => p,
            };
            let needed = MultiByteToWideChar(page, 0, bytes.as_ptr(), len, std::ptr::null_mut(), 0);
            if needed <= 0 {
                return None;
            }
            let mut wide = vec![0u16; needed as usize];
            let written =
                MultiByteToWideChar(page, 0, bytes.as_ptr(), len, wide.as_mut_ptr(), needed);
            (written > 0).then(|| String::from_utf16_lossy(&wide[..written as usize]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_utf8_or_says_it_was_not() {
        assert_eq!(decode("héllo".as_bytes(), false), "héllo");
        // Cut in the middle of a character: no note.
        assert_eq!(decode(&"hé".as_bytes()[..2], true), "h");
        let latin1 = decode(b"caf\xe9", false);
        #[cfg(not(windows))]
        assert!(
            latin1.starts_with("caf\u{fffd}") && latin1.contains("not valid UTF-8"),
            "{latin1}"
        );
        #[cfg(windows)]
        assert!(latin1.starts_with("caf"), "{latin1}");
    }

    #[test]
    fn deny_wins_over_allow() {
        let s = Settings {
            allow: vec!["git *".into(), "ls*".into()],
            deny: vec!["*push*".into()],
            ..Settings::default()
        };
        assert_eq!(s.refuse("git status"), None);
        assert!(
            s.refuse("git push origin")
                .unwrap()
                .contains("denied pattern '*push*'")
        );
        assert!(
            s.refuse("rm x")
                .unwrap()
                .contains("none of the allowed patterns")
        );
        assert_eq!(Settings::default().refuse("anything"), None);
    }
}
