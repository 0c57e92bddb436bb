//! Backends on demand: what four ordinary npm backends cost a host, at launch (the
//! baseline, measured in the same run) and on demand.
//!
//!     tests/release && cargo bench --bench demand
//!     PERF_BIN=target/release/mcp-gateway cargo bench --bench demand   # another build
//!
//! The backends are those of issue 27, each started as users start them, with npx (from
//! the packages `tests/run` installs in tests/node, so no registry is asked): the official
//! filesystem and memory servers, server-everything, and Playwright MCP driving Debian's
//! chromium (left out, and said so, when there is no chromium). Each gets one call:
//! Playwright's opens a page on a loopback server, which starts its browser.
//!
//! 1. At launch, npm kept (what the gateway did before on-demand backends): the process
//!    tree's resident memory after the calls, and each backend's.
//! 2. On demand (`idleStop` 3 s), a fresh state directory: the gateway learns each
//!    backend's lists and lets it sleep; then each is called twice (the first call wakes
//!    it, and runs without npm), its memory read while awake; after the idle stop, once
//!    the stopped processes have exited, the process tree's memory again.
//! 3. Restarted on that state directory: how long until `tools/list` is complete, and how
//!    many backend processes run by then.
//!
//! Results go to stdout as a Markdown table and to `target/demand.json`. Loopback only;
//! every wait is bounded.

#[path = "../util/mod.rs"]
mod util;

use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use util::backend_row as status;
use util::{Gateway, McpClient, TempDir};

/// Longest any one wait in this program may take.
const LIMIT: Duration = Duration::from_secs(120);
const IDLE_STOP: u64 = 3;

struct Backend {
    name: &'static str,
    args: Vec<Value>,
    tool: &'static str,
    arguments: Value,
}

fn main() {
    let bin = gateway_bin();
    util::use_binary(bin.clone());
    let dir = TempDir::new();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let page =
        util::serve_page("<html><head><title>Bench</title></head><body>on demand</body></html>");
    let mut backends = vec![
        Backend {
            name: "fs",
            args: vec![
                json!("@modelcontextprotocol/server-filesystem"),
                json!(files),
            ],
            tool: "list_allowed_directories",
            arguments: json!({}),
        },
        Backend {
            name: "mem",
            args: vec![json!("@modelcontextprotocol/server-memory")],
            tool: "read_graph",
            arguments: json!({}),
        },
        Backend {
            name: "every",
            args: vec![json!("@modelcontextprotocol/server-everything")],
            tool: "echo",
            arguments: json!({"message": "hi"}),
        },
    ];
    match util::chromium() {
        Some(browser) => backends.push(Backend {
            name: "pw",
            args: vec![
                json!("@playwright/mcp"),
                json!("--headless"),
                json!("--isolated"),
                json!("--no-sandbox"),
                json!("--executable-path"),
                json!(browser),
                // Its snapshots and logs, which it writes beside its cwd otherwise.
                json!("--output-dir"),
                json!(dir.path().join("playwright")),
            ],
            tool: "browser_navigate",
            arguments: json!({"url": page}),
        }),
        None => println!("(no chromium on the PATH: Playwright MCP left out)"),
    }
    let config = |on_demand: bool| -> Value {
        let node = util::root().join("tests/node");
        let mut c = serde_json::Map::new();
        for b in &backends {
            let mut args = vec![json!("--offline")];
            args.extend(b.args.iter().cloned());
            let mut entry = json!({"command": "npx", "args": args, "cwd": node,
                                   "env": {"MEMORY_FILE_PATH": dir.path().join("memory.jsonl")}});
            if on_demand {
                entry["start"] = json!("on-demand");
                entry["idleStop"] = json!(IDLE_STOP);
            } else {
                entry["keepWrapper"] = json!(true);
            }
            c.insert(b.name.into(), entry);
        }
        Value::Object(c)
    };
    let state = dir.path().join("state");
    let state_arg = ["--state-dir", state.to_str().unwrap()];
    let mut report = Vec::new();

    // 1. At launch, npm kept.
    let gw = Gateway::start_with(&config(false), &state_arg);
    let c = McpClient::connect(gw.port);
    for b in &backends {
        call(&c, b);
    }
    std::thread::sleep(Duration::from_secs(IDLE_STOP + 1));
    let launch_tree = tree_kib(gw.pid());
    let launch_own = util::rss_kib(gw.pid());
    let launch_each: Vec<u64> = backends
        .iter()
        .map(|b| status(&gw, b.name)["rssKiB"].as_u64().unwrap_or(0))
        .collect();
    let tools = tool_count(&c);
    drop(c);
    drop(gw);

    // 2. On demand.
    let gw = Gateway::start_with(&config(true), &state_arg);
    for b in &backends {
        wait_for(&format!("'{}' sleeps", b.name), || {
            status(&gw, b.name)["state"] == "sleeping"
        });
    }
    let c = McpClient::connect(gw.port);
    let mut first = Vec::new();
    let mut awake = Vec::new();
    let mut awake_kib = Vec::new();
    for b in &backends {
        first.push(call(&c, b));
        awake.push(call(&c, b));
        awake_kib.push(status(&gw, b.name)["rssKiB"].as_u64().unwrap_or(0));
    }
    for b in &backends {
        wait_for(&format!("'{}' sleeps again", b.name), || {
            status(&gw, b.name)["state"] == "sleeping"
        });
    }
    // Asleep, a backend's process is told to stop (stdin closed, then killed after a
    // grace period): its tree is gone a moment later.
    wait_for("every backend process exits", || {
        util::descendants(gw.pid()).is_empty()
    });
    let demand_tree = tree_kib(gw.pid());
    let demand_own = util::rss_kib(gw.pid());
    drop(c);
    drop(gw);

    // 3. Restarted on the same state directory.
    let started = Instant::now();
    let gw = Gateway::start_with(&config(true), &state_arg);
    let c = McpClient::connect(gw.port);
    let listed = tool_count(&c);
    let list_ms = started.elapsed().as_secs_f64() * 1000.0;
    let running = util::descendants(gw.pid()).len();
    drop(c);
    drop(gw);

    println!("\n| measure | at launch (baseline) | on demand | ratio |\n|---|---|---|---|");
    let mib = |k: u64| k as f64 / 1024.0;
    let row = |what: &str, base: f64, got: f64, unit: &str| {
        println!(
            "| {what} | {base:.1} {unit} | {got:.1} {unit} | {:.3} |",
            got / base.max(f64::MIN_POSITIVE)
        );
    };
    row(
        "process tree RSS after one call each and the idle stop",
        mib(launch_tree),
        mib(demand_tree),
        "MiB",
    );
    row("gateway's own RSS", mib(launch_own), mib(demand_own), "MiB");
    println!(
        "\n| backend | RSS at launch, npm kept | RSS awake on demand, npm's program run directly | first call (wakes it) | call while awake |\n|---|---|---|---|---|"
    );
    for (i, b) in backends.iter().enumerate() {
        println!(
            "| {} | {:.1} MiB | {:.1} MiB | {:.0} ms | {:.1} ms |",
            b.name,
            mib(launch_each[i]),
            mib(awake_kib[i]),
            first[i],
            awake[i]
        );
        report.push(json!({"backend": b.name, "launchKiB": launch_each[i],
                           "awakeKiB": awake_kib[i], "firstMs": first[i], "awakeMs": awake[i]}));
    }
    println!(
        "\nRestarted on its state directory: tools/list complete ({listed} of {tools} tools) {list_ms:.0} ms after the start, with {running} backend process(es) running."
    );
    let out = json!({"binary": bin, "launchTreeKiB": launch_tree, "demandTreeKiB": demand_tree,
                     "launchOwnKiB": launch_own, "demandOwnKiB": demand_own, "backends": report,
                     "restart": {"tools": listed, "of": tools, "ms": list_ms, "processes": running}});
    let path = util::root().join("target/demand.json");
    std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    println!("(binary: {}; also in {})", bin.display(), path.display());
}

/// Calls backend `b`'s tool; the milliseconds it took.
fn call(c: &McpClient, b: &Backend) -> f64 {
    let started = Instant::now();
    let params = json!({"name": format!("{}__{}", b.name, b.tool), "arguments": b.arguments});
    let r = c.request(json!(1), "tools/call", params);
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let result = &r.last().unwrap()["result"];
    assert!(
        result.is_object() && result["isError"] != true,
        "{}: {r:?}",
        b.name
    );
    took
}

fn tool_count(c: &McpClient) -> usize {
    let r = c.request(json!(2), "tools/list", json!({}));
    r.last().unwrap()["result"]["tools"]
        .as_array()
        .map_or(0, Vec::len)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The resident memory of `pid` and everything below it.
fn tree_kib(pid: u32) -> u64 {
    util::rss_kib(pid) + util::descendants(pid).iter().map(|d| d.1).sum::<u64>()
}

/// The gateway binary measured: `PERF_BIN`; else the static artifact `tests/release`
/// builds, the one users copy; else this build's.
fn gateway_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PERF_BIN") {
        return PathBuf::from(bin);
    }
    let artifact = util::root().join("target/x86_64-unknown-linux-musl/release/mcp-gateway");
    if artifact.exists() {
        return artifact;
    }
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-gateway"))
}
