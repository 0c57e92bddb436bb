//! `mcp-gateway check` and `mcp-gateway tools`: start every backend, wait until they
//! settle, report each (or print the exposed tools), and stop.

use crate::cli::Failure;
use crate::cli::{Args, Mode};
use crate::{backend, config, hub};
use std::time::Duration;

/// `check` and `tools`: start the backends without serving anyone, wait until each has
/// come up or failed, report, and stop them.
pub fn run(
    args: Args,
    backends: Vec<config::BackendSpec>,
    notices: &[String],
    profile: Option<config::profiles::Profile>,
) -> Result<(), Failure> {
    crate::console::ON_STDERR.store(true, std::sync::atomic::Ordering::Relaxed);
    for notice in notices {
        console!("note: {notice}");
    }
    let (backends, _disabled): (Vec<_>, Vec<_>) = backends.into_iter().partition(|b| b.enabled);
    let specs = backends.clone();
    let (hub_tx, hub_rx) = crossbeam_channel::unbounded();
    let self_exe = std::env::current_exe()
        .map_err(|e| Failure::Runtime(format!("cannot find this executable: {e}")))?;
    let setting = args.setting();
    let hub = hub::Hub::new(
        backends,
        hub::HubOptions {
            init_timeout: setting.secs("initTimeout"),
            spawner: backend::spawner(&self_exe, setting.list("inheritEnv")),
            ready_line: "All backends have settled".into(),
            page_size: setting.count("pageSize"),
            ping_interval: setting.secs("pingInterval"),
            ping_timeout: setting.secs("pingTimeout"),
            audit: None,
            startup_wait: Duration::ZERO,
            profiles: Vec::new(),
            // Every backend is started and listed: a check is of what runs.
            on_demand: false,
            idle_stop: setting.secs("idleStop"),
            keep_wrapper: true,
            cache: None,
        },
        hub_tx.clone(),
    );
    let hub_thread = std::thread::Builder::new()
        .name("hub".into())
        .spawn(move || hub.run(hub_rx))
        .map_err(|e| Failure::Runtime(format!("cannot start the hub thread: {e}")))?;
    let deadline =
        std::time::Instant::now() + args.setting().secs("initTimeout") + Duration::from_secs(5);
    let status = loop {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = hub_tx.send(crate::contract::HubEvent::Status {
            reply: tx,
            full: true,
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(s) if s.settled || std::time::Instant::now() >= deadline => break s,
            Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => return Err(Failure::Runtime("the hub did not answer".into())),
        }
    };
    let _ = hub_tx.send(crate::contract::HubEvent::Shutdown);
    for s in hub_thread.join().unwrap_or_default() {
        let _ = s.join();
    }
    let backends = status.backends;
    let failed: Vec<&crate::contract::BackendStatus> =
        backends.iter().filter(|b| b.state != "ready").collect();
    if args.mode == Mode::Tools {
        let mut tools = status.tools;
        if let Some(p) = &profile {
            // `tools --profile NAME`: what that profile's sessions reach.
            let shown = |backend: &str| {
                specs
                    .iter()
                    .any(|s| s.name == backend && p.shows_backend(s))
            };
            tools.retain(|t| {
                shown(t["backend"].as_str().unwrap_or_default())
                    && p.tools.shows(t["name"].as_str().unwrap_or_default())
            });
            for t in &mut tools {
                let name = t["name"].as_str().unwrap_or_default().to_string();
                if let Some(d) = p.tools.description(&name) {
                    t["description"] = serde_json::Value::from(d);
                }
            }
            let listed = if p.catalogue {
                ", listed as a catalogue of 3 tools"
            } else {
                ""
            };
            console!("profile {}: {} tool(s){listed}", p.name, tools.len());
        }
        let status_tools = tools;
        if args.json {
            println!("{}", serde_json::Value::Array(status_tools));
        } else {
            println!(
                "{:<40} {:<16} {:<30} DESCRIPTION",
                "TOOL", "BACKEND", "ORIGINAL"
            );
            for t in &status_tools {
                let desc = t["description"].as_str().unwrap_or("").replace('\n', " ");
                println!(
                    "{:<40} {:<16} {:<30} {}",
                    t["name"].as_str().unwrap_or(""),
                    t["backend"].as_str().unwrap_or(""),
                    t["original"].as_str().unwrap_or(""),
                    crate::lines::clip(&desc, 80)
                );
            }
        }
        return Ok(());
    }
    for b in &backends {
        println!(
            "{:<16} {:<15} {:<10} {:>3} tools  {}",
            b.name,
            b.transport,
            b.state,
            b.tools,
            b.reason.as_deref().unwrap_or("")
        );
    }
    // Clients add their own prefix (Claude Code: mcp__<server>__), within the same 64.
    for t in &status.tools {
        let name = t["name"].as_str().unwrap_or("");
        if name.len() > 48 {
            println!(
                "warning: '{name}' is {} characters: clients that add their own prefix (mcp__<server>__) may go over the 64 that Claude and OpenAI accept",
                name.len()
            );
        }
    }
    if failed.is_empty() {
        println!(
            "ok: {} backend(s) ready, {} tool(s)",
            backends.len(),
            status.tools.len()
        );
        Ok(())
    } else {
        Err(Failure::Runtime(format!(
            "{} of {} backend(s) did not come up",
            failed.len(),
            backends.len()
        )))
    }
}
