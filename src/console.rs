//! The console: lines meant for the person who started the gateway (stdout, or stderr in
//! `--stdio` mode, where stdout carries the protocol), and on a terminal one status line
//! rewritten in place under them. Also where file paths are shown to that person.

use std::io::Write;

/// A line for the person at the console (stdout, or stderr with `--stdio`, where stdout
/// carries the protocol), also kept in the log file.
macro_rules! console {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        log::info!(target: "console", "{line}");
        crate::console::line(line);
    }};
}

/// Set once at start-up in `--stdio` mode. Besides the logger, the console's state is the
/// one global: the console macro is used from threads that have no handle to pass it through.
pub static ON_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The transient status line shown under the console lines on a terminal ("starting: ..."),
/// empty when none is shown.
static STATUS_LINE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// The console stream: stdout, or stderr in `--stdio` mode.
fn stream() -> Box<dyn std::io::Write> {
    if ON_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    }
}

/// Whether the console is a terminal (then progress is one line rewritten in place).
/// Asked once (the hub asks on every tick), after `ON_STDERR` is settled.
pub fn is_tty() -> bool {
    use std::io::IsTerminal;
    static TTY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TTY.get_or_init(|| {
        if ON_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        }
    })
}

/// Whether the log's warnings reach the same place as the console: the console is on
/// stderr (`--stdio`), or stdout and stderr are one file, pipe or terminal (a shell,
/// `2>&1`, systemd's journal), and warnings are shown at all.
fn warnings_share_the_console() -> bool {
    if !log::log_enabled!(log::Level::Warn) {
        return false;
    }
    if ON_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        return true;
    }
    #[cfg(unix)]
    {
        let identity = |fd| {
            let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
            // SAFETY: fstat writes a whole `stat` into the buffer when it returns 0, and
            // only then is the buffer read.
            (unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0).then(|| {
                // SAFETY: initialized by the successful fstat above.
                let st = unsafe { st.assume_init() };
                (st.st_dev, st.st_ino)
            })
        };
        matches!((identity(1), identity(2)), (Some(a), Some(b)) if a == b)
    }
    #[cfg(not(unix))]
    false
}

/// Prints a console line, above the status line if one is shown; control characters in it
/// (from a backend's or a client's names) are escaped, never sent to the terminal.
pub fn line(line: String) {
    let line = crate::logging::escape_controls(&line);
    let status = STATUS_LINE.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = stream();
    let mut bytes = Vec::with_capacity(line.len() + status.len() + 8);
    if !status.is_empty() {
        bytes.extend_from_slice(b"\r\x1b[K");
    }
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(status.as_bytes());
    let _ = out.write_all(&bytes);
    let _ = out.flush();
}

/// Shows `text` as the status line on a terminal (replacing the last one; "" removes it).
/// Does nothing when the console is not a terminal.
pub fn status(text: &str) {
    if !is_tty() {
        return;
    }
    let mut status = STATUS_LINE.lock().unwrap_or_else(|e| e.into_inner());
    if *status == text {
        return;
    }
    let mut out = stream();
    let _ = write!(out, "\r\x1b[K{text}");
    let _ = out.flush();
    *status = text.to_string();
}

/// `'path'`, and for a relative one the directory it is taken from (`base`, else the
/// current one), so an error about a missing file says where it was looked for.
pub fn quoted_path(path: &std::path::Path, base: Option<&std::path::Path>) -> String {
    if path.is_absolute() {
        return format!("'{}'", path.display());
    }
    let dir = match base {
        Some(b) if b.is_absolute() => b.to_path_buf(),
        Some(b) => std::env::current_dir().unwrap_or_default().join(b),
        None => std::env::current_dir().unwrap_or_default(),
    };
    format!("'{}' (relative to {})", path.display(), dir.display())
}

/// The start-up summary: a table of the backends, the exposed tools, and where clients
/// connect. Printed once, when no backend is still starting.
pub struct Summary<'a> {
    pub backends: Vec<SummaryRow<'a>>,
    /// Tools, prompts, resources and templates exposed.
    pub counts: [usize; 4],
    /// Each tool: exposed name, backend, original name, whether every client accepts it.
    pub tools: Vec<(&'a str, &'a str, &'a str, bool)>,
    pub notes: &'a [String],
    /// Each profile: its name, the tools it reaches, whether it lists them as a catalogue.
    pub profiles: Vec<(&'a str, usize, bool)>,
    pub ready_line: &'a str,
}

/// One backend's line of the summary.
pub struct SummaryRow<'a> {
    pub name: &'a str,
    pub kind: &'static str,
    pub state: &'a str,
    pub ready: bool,
    /// Its tools, prompts, resources and templates.
    pub counts: [usize; 4],
    /// How long its first start took.
    pub took: Option<std::time::Duration>,
}

impl Summary<'_> {
    pub fn print(&self) {
        status("");
        console!(
            "  {:<16} {:<15} {:<10} {:>5} {:>7} {:>9} {:>9} {:>9}",
            "BACKEND",
            "TYPE",
            "STATE",
            "TOOLS",
            "PROMPTS",
            "RESOURCES",
            "TEMPLATES",
            "START"
        );
        for b in &self.backends {
            let took = b.took.map_or("-".to_string(), |t| {
                format!("{:.0} ms", t.as_secs_f64() * 1000.0)
            });
            let [tools, prompts, resources, templates] = b.counts;
            console!(
                "  {:<16} {:<15} {:<10} {tools:>5} {prompts:>7} {resources:>9} {templates:>9} {took:>9}",
                b.name,
                b.kind,
                b.state,
            );
        }
        let ready = self.backends.iter().filter(|b| b.ready).count();
        let [tools, prompts, resources, templates] = self.counts;
        console!(
            "{ready} of {} backend(s) ready, {tools} tool(s) exposed, {prompts} prompt(s), {resources} resource(s), {templates} template(s):",
            self.backends.len(),
        );
        for (exposed, backend, original, safe) in &self.tools {
            let warning = if *safe {
                ""
            } else {
                "  (rejected by Claude/OpenAI clients)"
            };
            console!("  {exposed:<40} {backend} / {original}{warning}");
        }
        // Each note was a warning when it arose; where the console and the warnings are
        // read in one place, it is said there once.
        if !self.notes.is_empty() && warnings_share_the_console() {
            console!(
                "  {} name(s) rewritten or contested: see the warnings above",
                self.notes.len()
            );
        } else {
            for note in self.notes {
                console!("  note: {note}");
            }
        }
        for (name, tools, catalogue) in &self.profiles {
            let listed = if *catalogue {
                " (listed as a catalogue: 3 tools)"
            } else {
                ""
            };
            console!("profile {name}: {tools} tool(s){listed} at /p/{name}/mcp and /p/{name}/sse");
        }
        console!("{}", self.ready_line);
    }
}
