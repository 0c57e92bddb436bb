//! Hot reload: a thread that watches the config file (its modification time and size, every
//! couple of seconds, and SIGHUP) and hands every valid new version to the hub, which
//! applies the difference. An invalid version is reported on the console and ignored: the
//! gateway goes on with what it runs.

use crate::cli::TOKEN_VARIABLE;
use crate::config::{self, Settings};
use crate::contract::HubEvent;
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Set by the SIGHUP handler, taken by the watcher.
static HANGUP: AtomicBool = AtomicBool::new(false);

/// How often the watcher looks at the flag set by SIGHUP.
const GLANCE: Duration = Duration::from_millis(200);

/// Without a terminal (systemd, containers, nohup), makes SIGHUP a request to reload, as
/// daemons do, and says so. In a terminal SIGHUP keeps meaning "the terminal is gone": the
/// Ctrl-C handler shuts the gateway down with its backends.
pub fn on_sighup() -> bool {
    use std::io::IsTerminal;
    let interactive = std::io::stdin().is_terminal()
        || std::io::stdout().is_terminal()
        || std::io::stderr().is_terminal();
    if interactive {
        return false;
    }
    #[cfg(unix)]
    {
        extern "C" fn hangup(_: libc::c_int) {
            HANGUP.store(true, Ordering::Relaxed);
        }
        let handler: extern "C" fn(libc::c_int) = hangup;
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGHUP, handler as libc::sighandler_t);
        }
    }
    cfg!(unix)
}

pub struct Watcher {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Watcher {
    /// Watches `path`, whose current text `text` with `settings` is what runs now. With
    /// `poll` None only SIGHUP triggers a reload. `withheld` are the variables taken out of
    /// the environment (the gateway's secrets), still there for `${VAR}` in a new version.
    pub fn start(
        path: PathBuf,
        text: String,
        settings: Settings,
        withheld: Vec<(String, String)>,
        poll: Option<Duration>,
        no_prefix: bool,
        hub: Sender<HubEvent>,
    ) -> std::io::Result<Watcher> {
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("config-watch".into())
            .spawn(move || {
                let mut seen = stamp(&path);
                let mut last_text = text;
                let mut next_poll = poll.map(|p| Instant::now() + p);
                loop {
                    match stopped.recv_timeout(GLANCE) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let hangup = HANGUP.swap(false, Ordering::Relaxed);
                    let due = next_poll.is_some_and(|t| Instant::now() >= t);
                    if due {
                        next_poll = poll.map(|p| Instant::now() + p);
                    }
                    if !hangup && !due {
                        continue;
                    }
                    let now = stamp(&path);
                    if !hangup && now == seen {
                        continue;
                    }
                    seen = now;
                    let text = match std::fs::read_to_string(&path) {
                        Ok(t) => t,
                        Err(e) => {
                            console!(
                                "config reload: cannot read '{}': {e}; still running the previous config",
                                path.display()
                            );
                            continue;
                        }
                    };
                    if !hangup && text == last_text {
                        continue;
                    }
                    last_text = text;
                    if hangup {
                        log::info!("SIGHUP: reloading '{}'", path.display());
                    }
                    if let Some(backends) = check(&path, &last_text, &settings, &withheld, no_prefix)
                        && hub.send(HubEvent::Reload { backends }).is_err()
                    {
                        return;
                    }
                }
            })?;
        Ok(Watcher { stop, thread })
    }

    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Parses the text of the config file at `path`: relative paths are looked up from the
/// gateway's directory (where backends start), and every message begins with the file's
/// path instead of "config".
pub fn load(
    path: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    no_prefix: bool,
) -> Result<config::Loaded, config::ConfigError> {
    let cx = config::Context {
        lookup,
        exists: &|p| p.exists(),
        no_prefix,
    };
    let name = format!("{}:", path.display());
    let located = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .map(|l| match l.strip_prefix("config:") {
                Some(rest) => format!("{name}{rest}"),
                None => l,
            })
            .collect()
    };
    match config::parse_in(text, &cx) {
        Ok(mut loaded) => {
            loaded.warnings = located(loaded.warnings);
            Ok(loaded)
        }
        Err(e) => Err(config::ConfigError(located(e.0))),
    }
}

/// What tells a changed file apart without reading it.
fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Validates a new version of the config: the enabled backends to run, or None after
/// saying on the console what is wrong with it.
fn check(
    path: &std::path::Path,
    text: &str,
    running: &Settings,
    withheld: &[(String, String)],
    no_prefix: bool,
) -> Option<Vec<config::BackendSpec>> {
    let lookup = |name: &str| {
        withheld
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    };
    match load(path, text, &lookup, no_prefix) {
        Err(e) => {
            console!(
                "config reload REJECTED: {} problem(s) in '{}'; still running the previous config:\n{e}",
                e.0.len(),
                path.display()
            );
            None
        }
        Ok(loaded) => {
            for w in &loaded.warnings {
                log::warn!("{w}");
            }
            for n in &loaded.notices {
                log::info!("{n}");
            }
            let changed = running.changed_fields(&loaded.config.settings);
            if !changed.is_empty() {
                console!(
                    "config reload: the gateway settings {} changed; they take effect when the gateway is restarted",
                    changed.join(", ")
                );
            }
            Some(
                loaded
                    .config
                    .backends
                    .into_iter()
                    .filter(|b| b.enabled)
                    .collect(),
            )
        }
    }
}

/// Takes the gateway's secrets out of its environment, so no backend, built-in server or
/// command it starts inherits them: `MCP_GATEWAY_TOKEN` and the variables the `token`
/// setting names (`${VAR}`). A backend whose own `env` names one still gets it (its `env`
/// is expanded from the values returned here). Must run while the process has one thread.
pub fn withhold_secrets(names: &[String]) -> Vec<(String, String)> {
    let mut withheld = Vec::new();
    for name in std::iter::once(TOKEN_VARIABLE).chain(names.iter().map(String::as_str)) {
        if let Some(value) = std::env::var_os(name) {
            // SAFETY: called by `serve` before it starts any thread, so no other thread
            // reads or writes the environment meanwhile.
            unsafe { std::env::remove_var(name) };
            if let Ok(value) = value.into_string() {
                withheld.push((name.to_string(), value));
            }
        }
    }
    withheld
}

/// Why the config file cannot be read, with where a relative path was looked for and, when
/// there is none, how to get one.
pub fn unreadable_config(path: &std::path::Path, e: &std::io::Error) -> String {
    let mut message = format!(
        "config: cannot read {}: {e}",
        crate::console::quoted_path(path, None)
    );
    if e.kind() == std::io::ErrorKind::NotFound {
        message.push_str(
            "\nwrite one (docs/configuration.md shows the shapes; `mcp-gateway --print-config-schema` prints its JSON Schema), or name another with --config FILE",
        );
    }
    message
}
