//! mcp-gateway: one binary that serves the tools of many MCP servers through one endpoint.
//!
//! `main` owns the logger and the order of start-up and shutdown (the command line is
//! `cli.rs`'s); the
//! work itself happens in the hub (routing), the backends (child processes) and the HTTP
//! front end, each on its own threads.

#[macro_use]
mod console;
#[cfg(feature = "count-allocs")]
mod allocs;
mod audit;
mod backend;
#[cfg(any(all(target_os = "linux", not(feature = "count-allocs")), test))]
mod blocks;
mod cache;
mod cli;
mod compat;
mod config;
mod contract;
mod glob;
mod http;
mod hub;
mod ids;
mod inspect;
mod jsonrpc;
mod limits;
mod lines;
mod logging;
mod metrics;
mod modern;
mod npm;
mod procfs;
mod registry;
mod reload;
#[path = "../servers/mod.rs"]
mod servers;
mod sse;
mod stateless;
mod stdio;
mod tree;

/// On Linux, a cache of small freed blocks per CPU sits in front of the C library's
/// allocator (`blocks.rs`; measured in docs/performance.md): musl's, in the artifact users
/// copy, most of all. Every test runs with it.
#[cfg(all(target_os = "linux", not(feature = "count-allocs")))]
#[global_allocator]
static ALLOCATOR: blocks::Blocks = blocks::Blocks::new();

use cli::{Command, Failure, Flags, Mode, default_instance_id, help, parse_args};
use log::{error, info};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    if cfg!(panic = "abort") {
        // The release build aborts on panic: end the backends' process trees first.
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            tree::kill_all();
        }));
    }
    match parse_args() {
        Ok(Command::Help) => {
            print!("{}", help());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("mcp-gateway {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Builtin(name, parser)) => servers::run(&name, parser),
        Ok(Command::Schema) => {
            print!("{}", config::schema());
            ExitCode::SUCCESS
        }
        Ok(Command::Serve(flags)) => match serve(*flags) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Failure::Usage(msg)) => {
                eprintln!("{msg}");
                ExitCode::from(2)
            }
            Err(Failure::Runtime(msg)) => {
                // Into the log file; the console gets it once, from the line below.
                error!(target: "console", "{msg}");
                eprintln!("error: {msg}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e}\n\nRun 'mcp-gateway --help' for the options.");
            ExitCode::from(2)
        }
    }
}

fn serve(flags: Flags) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&flags.config)
        .map_err(|e| Failure::Usage(reload::unreadable_config(&flags.config, &e)))?;
    let env = |name: &str| std::env::var(name).ok();
    // `--no-prefix` holds across reloads; the file's own `"prefix"` is read with each load.
    let no_prefix_flag = flags.no_prefix();
    let loaded = reload::load(&flags.config, &text, &env, no_prefix_flag).map_err(|e| {
        Failure::Usage(format!(
            "{e}\n{} problem(s) in '{}'; nothing was started.",
            e.0.len(),
            flags.config.display()
        ))
    })?;
    // Before any thread starts, so nothing reads the environment while it changes.
    let withheld = reload::withhold_secrets(&loaded.config.settings.secret_variables);
    limits::return_large_blocks();
    let args = flags.resolve(&loaded.config.settings);
    let running_settings = loaded.config.settings.clone();
    let profile_names: Vec<String> = loaded
        .config
        .settings
        .profiles
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let clients = client_tokens(&loaded.config.settings, &profile_names)?;
    let stdio_profile = match &args.profile {
        None => None,
        Some(_) if !args.stdio && args.mode != Mode::Tools => {
            return Err(Failure::Usage(
                "--profile is for --stdio and 'tools'; over HTTP a profile is served at /p/NAME/mcp and /p/NAME/sse".into(),
            ));
        }
        Some(name) => Some(profile_names.iter().position(|n| n == name).ok_or_else(|| {
            Failure::Usage(format!(
                "--profile {name}: the config '{}' has no such profile (gateway.profiles: {})",
                args.config.display(),
                if profile_names.is_empty() { "none".to_string() } else { profile_names.join(", ") }
            ))
        })?),
    };
    // The log file's name needs the local time, which is only safe to read while this
    // process has a single thread, so the logger starts before anything else.
    let setting = args.setting();
    let rotation = logging::Rotation {
        max_bytes: setting
            .num("logMaxSize")
            .unwrap_or(1)
            .saturating_mul(1024 * 1024),
        keep: setting.count("logKeep"),
    };
    let log_dir = std::path::PathBuf::from(setting.text("logDir").unwrap_or_default());
    let log_file =
        logging::start(&log_dir, setting.level("logLevel"), rotation).map_err(Failure::Runtime)?;
    // The audit log sits beside the log file, with the same time in its name.
    let audit_name = log_file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("log_"))
        .and_then(|n| n.rsplit_once('_'))
        .map(|(stamp, _)| format!("audit_{stamp}.jsonl"))
        .unwrap_or_else(|| "audit.jsonl".into());
    let audit = audit::Audit::open(
        &log_dir.join(audit_name),
        setting.flag("auditArguments"),
        rotation,
    )
    .map_err(Failure::Runtime)?;
    for w in &loaded.warnings {
        log::warn!("{w}");
    }
    let fds = limits::raise_fd_limit();
    let maps = limits::max_map_count();
    let backend_count = loaded.config.backends.len();
    let mut max_sessions = setting.count("maxSessions");
    let (capacity, limits) = limits::session_capacity(max_sessions, backend_count, fds, maps);
    if capacity < max_sessions {
        // Only a limit someone asked for and cannot have is worth a warning.
        let level = if setting.is_set("maxSessions") {
            log::Level::Warn
        } else {
            log::Level::Info
        };
        log::log!(
            level,
            "serving at most {capacity} sessions, not {max_sessions}: {}",
            limits.join("; ")
        );
        max_sessions = capacity;
    }
    let asked = setting
        .is_set("maxConnections")
        .then(|| setting.count("maxConnections"));
    let connections = limits::connection_capacity(asked, backend_count, fds, maps);

    if args.mode != Mode::Serve {
        let profile = stdio_profile.map(|p| loaded.config.settings.profiles[p].clone());
        return inspect::run(args, loaded.config.backends, &loaded.notices, profile);
    }
    let http = if args.stdio {
        console::ON_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
        None
    } else {
        Some(http::listen::listen(&args)?)
    };
    console!(
        "mcp-gateway {} | config {} | log {}",
        env!("CARGO_PKG_VERSION"),
        args.config.display(),
        log_file.display()
    );
    let n = loaded.config.backends.len();
    match &http {
        Some(h) => console!("listening on {}; starting {n} backend(s):", h.addr),
        None => console!("serving one client over stdin/stdout; starting {n} backend(s):"),
    }
    for notice in &loaded.notices {
        console!("  note: {notice}");
    }
    if http.is_some() {
        // Which client opens what, by label (never the secret).
        for c in &clients {
            let opens: Vec<&str> = c
                .profiles
                .iter()
                .map(|&p| profile_names[p].as_str())
                .collect();
            console!(
                "  client token '{}' opens the profiles {}",
                c.label,
                opens.join(", ")
            );
        }
    }

    let (hub_tx, hub_rx) = crossbeam_channel::unbounded();
    let (signal_tx, signal_rx) = crossbeam_channel::bounded::<()>(1);
    let stdio_done = signal_tx.clone();
    ctrlc::set_handler(move || {
        tree::note_stopping();
        let _ = signal_tx.try_send(());
    })
    .map_err(|e| Failure::Runtime(format!("cannot install the Ctrl-C handler: {e}")))?;

    let self_exe = std::env::current_exe()
        .map_err(|e| Failure::Runtime(format!("cannot find this executable: {e}")))?;
    if reload::on_sighup() {
        info!("SIGHUP reloads the config (no terminal)");
    }
    let watcher = reload::Watcher::start(
        args.config.clone(),
        text,
        running_settings,
        withheld,
        args.reload_interval,
        no_prefix_flag,
        hub_tx.clone(),
    )
    .map_err(|e| Failure::Runtime(format!("cannot start the config watcher: {e}")))?;
    let (backends, disabled): (Vec<_>, Vec<_>) =
        loaded.config.backends.into_iter().partition(|b| b.enabled);
    for b in &disabled {
        console!(
            "  {:<16} {:<15} disabled (\"enabled\": false)",
            b.name,
            b.transport.type_name()
        );
    }
    // The catalogue cache: `stateDir`, else `state` beside the log directory.
    let state_dir = setting
        .text("stateDir")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            log_dir
                .parent()
                .map_or_else(|| std::path::PathBuf::from("state"), |p| p.join("state"))
        });
    let hub = hub::Hub::new(
        backends,
        hub::HubOptions {
            init_timeout: setting.secs("initTimeout"),
            spawner: backend::spawner(&self_exe, setting.list("inheritEnv")),
            ready_line: match &http {
                Some(h) => format!(
                    "Connect MCP clients to {0}/mcp (Streamable HTTP) or {0}/sse (HTTP+SSE)",
                    h.client_url
                ),
                None if args.mode != Mode::Serve => "All backends have settled".into(),
                None => "Ready: serving one client over stdin/stdout".into(),
            },
            page_size: setting.count("pageSize"),
            ping_interval: setting.secs("pingInterval"),
            ping_timeout: setting.secs("pingTimeout"),
            audit: Some(audit.clone()),
            startup_wait: setting.secs("startupWait"),
            profiles: loaded.config.settings.profiles.clone(),
            on_demand: setting.text("start").as_deref() == Some("on-demand"),
            idle_stop: setting.secs("idleStop"),
            keep_wrapper: setting.flag("keepWrapper"),
            cache: Some(cache::CatalogCache::new(&state_dir)),
        },
        hub_tx.clone(),
    );
    let router = hub.router();
    let hub_thread = std::thread::Builder::new()
        .name("hub".into())
        .spawn(move || hub.run(hub_rx))
        .map_err(|e| Failure::Runtime(format!("cannot start the hub thread: {e}")))?;
    let (frontend, stdio_writer) = match http {
        Some(h) => {
            let options = http::Options {
                keepalive: setting.secs("sseKeepalive"),
                allowed_origins: setting.list("allowOrigins"),
                loopback: h.addr.ip().is_loopback(),
                session_idle: setting.secs("sessionIdle"),
                session_unused: setting.secs("sessionUnused"),
                token: h.token,
                max_sessions,
                instance: args
                    .instance_id
                    .clone()
                    .unwrap_or_else(|| default_instance_id(h.addr.port())),
                trusted_proxies: args.trusted_proxies.clone(),
                profiles: profile_names.clone(),
                clients,
            };
            let limits = http::server::Limits {
                header_timeout: setting.secs("headerTimeout"),
                body_timeout: setting.secs("bodyTimeout"),
                idle_timeout: setting.secs("connectionIdle"),
                max_connections: connections,
                max_body: http::MAX_BODY,
                body_memory: 4 * http::MAX_BODY,
            };
            let frontend =
                http::Frontend::start(h.listener, limits, hub_tx.clone(), router, options)
                    .map_err(|e| Failure::Runtime(format!("cannot start the HTTP threads: {e}")))?;
            (Some(frontend), None)
        }
        None => {
            let writer = stdio::start(hub_tx.clone(), router, stdio_done, stdio_profile)
                .map_err(|e| Failure::Runtime(format!("cannot start the stdio threads: {e}")))?;
            (None, Some(writer))
        }
    };

    let _ = signal_rx.recv();
    if let Some(f) = &frontend
        && args.drain_timeout > 0
    {
        drain(
            f,
            &hub_tx,
            &signal_rx,
            Duration::from_secs(args.drain_timeout),
        );
    }
    console!("shutting down");
    watcher.stop();
    // No request is let in from here on (it gets 503, or 404 in its session), and every
    // one let in before is with the hub before the hub is told to stop: the hub answers
    // them all, one way or the other.
    if let Some(f) = &frontend {
        f.drain();
    }
    let writers = frontend.map(http::Frontend::stop);
    let _ = hub_tx.send(contract::HubEvent::Shutdown);
    let supervisors = hub_thread.join().unwrap_or_default();
    // The hub answered every pending request; let those answers, and the refusals being
    // written, reach their clients, and the streams end with their last chunk.
    if let Some(w) = writers {
        w.wait(Duration::from_secs(5));
    }
    if let Some(w) = stdio_writer {
        let _ = w.join();
    }
    for s in supervisors {
        let _ = s.join();
    }
    // The last calls' audit lines, written before the process ends.
    audit.flush(Duration::from_secs(2));
    info!("stopped");
    log::logger().flush();
    Ok(())
}

/// A drain: no new sessions, then wait until no call is in flight, the time is up, or a
/// second signal comes.
fn drain(
    frontend: &http::Frontend,
    hub: &crossbeam_channel::Sender<contract::HubEvent>,
    signal: &crossbeam_channel::Receiver<()>,
    limit: Duration,
) {
    frontend.drain();
    let in_flight = || {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = hub.send(contract::HubEvent::Status {
            reply: tx,
            full: false,
        });
        rx.recv_timeout(Duration::from_secs(5))
            .map_or(0, |s: contract::Status| s.in_flight)
    };
    console!(
        "draining: new sessions get 503, new requests in open sessions 404; waiting up to {} s for {} call(s) in flight (signal again to stop now)",
        limit.as_secs(),
        in_flight()
    );
    let deadline = std::time::Instant::now() + limit;
    let end = loop {
        let left = in_flight();
        if left == 0 {
            break "drained: no call in flight".to_string();
        }
        if std::time::Instant::now() >= deadline {
            break format!("drain time is up with {left} call(s) in flight");
        }
        if signal.recv_timeout(Duration::from_millis(100)).is_ok() {
            break "second signal: stopping now".to_string();
        }
    };
    let (sessions, requests) = frontend.refused_while_draining();
    console!(
        "{end}; refused meanwhile: {sessions} new session(s), {requests} new request(s) in open sessions"
    );
}

/// The fewest characters a client token may have.
const MIN_CLIENT_TOKEN: usize = 12;

/// The config's client tokens, their secrets read (from the config or their files) and
/// their profiles named by place; a file that cannot be read, or holds nothing, or a secret
/// that is the gateway's own token, stops the start with the token's label.
fn client_tokens(
    settings: &config::Settings,
    profiles: &[String],
) -> Result<Vec<http::ClientToken>, Failure> {
    use config::profiles::Secret;
    let mut out: Vec<http::ClientToken> = Vec::new();
    for t in &settings.tokens {
        let ctx = format!("config: 'gateway': token '{}'", t.label);
        let token = match &t.secret {
            Secret::Text(s) => s.clone(),
            Secret::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::Usage(format!(
                        "{ctx}: field 'tokenFile': cannot read '{path}': {e}"
                    ))
                })?;
                let text = text.trim().to_string();
                if text.is_empty() {
                    return Err(Failure::Usage(format!(
                        "{ctx}: field 'tokenFile': '{path}' is empty"
                    )));
                }
                text
            }
        };
        if token.chars().count() < MIN_CLIENT_TOKEN {
            return Err(Failure::Usage(format!(
                "{ctx}: a client token must be at least {MIN_CLIENT_TOKEN} characters (this one has {}): anyone could guess a shorter one; `openssl rand -hex 16` makes a good one",
                token.chars().count()
            )));
        }
        if settings.text("token") == Some(token.as_str()) || out.iter().any(|o| o.token == token) {
            return Err(Failure::Usage(format!(
                "{ctx}: its secret is another token's (or the gateway's own): give each client its own"
            )));
        }
        out.push(http::ClientToken {
            label: std::sync::Arc::from(t.label.as_str()),
            token,
            profiles: t
                .profiles
                .iter()
                .filter_map(|n| profiles.iter().position(|p| p == n))
                .collect(),
        });
    }
    Ok(out)
}
