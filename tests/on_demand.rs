//! Backends on demand (`"start": "on-demand"`): a backend runs only while something needs
//! it, its lists come from the catalogue cache when it sleeps and after a restart, and a
//! backend that cannot start for good is said so once and not retried every few seconds.

mod util;

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use util::backend_row as backend;
use util::{Gateway, McpClient, TempDir, fixture};

fn starts(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .count()
}

/// An on-demand fixture that counts its starts in `file`, asleep after a second idle.
fn lazy(file: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--starts", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut spec = fixture(&args);
    spec["start"] = json!("on-demand");
    spec["idleStop"] = json!(1);
    spec
}

fn state(gw: &Gateway, name: &str) -> String {
    backend(gw, name)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn eventually_state(gw: &Gateway, name: &str, want: &str) {
    util::eventually(&format!("backend '{name}' is {want}"), || {
        state(gw, name) == want
    });
}

fn tool_names(gw: &Gateway) -> Vec<String> {
    let c = McpClient::connect(gw.port);
    let r = c.request(json!(1), "tools/list", json!({}));
    r.last().unwrap()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_on_demand_backend_sleeps_wakes_for_a_call_and_lists_from_its_cache_after_a_restart() {
    let dir = TempDir::new();
    let (file, state_dir) = (dir.path().join("starts"), dir.path().join("state"));
    let state_arg = state_dir.to_str().unwrap();
    let config = json!({ "fx": lazy(&file, &[]) });
    let gw = Gateway::start_with(&config, &["--state-dir", state_arg]);
    // The first run learns its lists, then it sleeps once idle.
    assert_eq!(starts(&file), 1);
    eventually_state(&gw, "fx", "sleeping");
    assert!(tool_names(&gw).contains(&"fx__echo".to_string()));
    assert_eq!(starts(&file), 1, "a list does not wake it");
    // A call wakes it and is answered; idle again, it sleeps again.
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "fx__echo", json!({"text": "awake"}));
    assert_eq!(r["result"]["content"][0]["text"], "awake", "{r}");
    assert_eq!(starts(&file), 2);
    eventually_state(&gw, "fx", "sleeping");
    // Its file is the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state_dir.join("catalogue-fx.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(gw);
    // A restarted gateway lists its tools at once from the cache, starting nothing.
    let gw = Gateway::start_with(&config, &["--state-dir", state_arg]);
    assert_eq!(state(&gw, "fx"), "sleeping");
    assert!(tool_names(&gw).contains(&"fx__echo".to_string()));
    assert_eq!(starts(&file), 2, "listed from the cache");
    assert!(gw.stdout().contains("sleeping"), "{}", gw.stdout());
    // With what it said of itself when it last ran.
    assert_eq!(backend(&gw, "fx")["server"]["name"], "fixture");
    drop(gw);
    // A changed entry is learned anew.
    let changed = json!({ "fx": lazy(&file, &["--tag", "changed"]) });
    let gw = Gateway::start_with(&changed, &["--state-dir", state_arg]);
    assert_eq!(
        starts(&file),
        3,
        "a changed entry is started to learn its lists"
    );
    eventually_state(&gw, "fx", "sleeping");
    drop(gw);
    // A damaged cache costs one warning and a fresh learn, never the start.
    std::fs::write(state_dir.join("catalogue-fx.json"), "{damaged").unwrap();
    let gw = Gateway::start_with(&changed, &["--state-dir", state_arg]);
    assert_eq!(starts(&file), 4);
    assert_eq!(
        gw.stderr()
            .matches("the catalogue cache is not usable")
            .count(),
        1,
        "{}",
        gw.stderr()
    );
    assert!(tool_names(&gw).contains(&"fx__echo".to_string()));
}

#[test]
fn what_needs_an_on_demand_backend_keeps_it_awake() {
    let dir = TempDir::new();
    let file = dir.path().join("starts");
    let gw = Gateway::start(&json!({ "fx": lazy(&file, &[]) }));
    eventually_state(&gw, "fx", "sleeping");
    // A call longer than its idleStop: it is not stopped under the call.
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "fx__sleep", json!({"ms": 2500, "text": "done"}));
    assert_eq!(r["result"]["content"][0]["text"], "done", "{r}");
    assert_eq!(starts(&file), 2);
    // A resource subscription keeps it awake until it is given up.
    let s = gw.connect();
    s.initialize();
    s.request(
        json!(1),
        "resources/subscribe",
        json!({"uri": "mem://shared"}),
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(state(&gw, "fx"), "ready", "it slept under a subscription");
    s.request(
        json!(2),
        "resources/unsubscribe",
        json!({"uri": "mem://shared"}),
    );
    eventually_state(&gw, "fx", "sleeping");
    assert_eq!(starts(&file), 2, "one wake for all of it");
    // The status data shows the running process's memory while awake.
    c.call(json!(2), "fx__echo", json!({"text": "again"}));
    let row = backend(&gw, "fx");
    assert_eq!(row["onDemand"], true, "{row}");
    assert!(row["calls"].as_u64().unwrap() >= 2, "{row}");
}

#[test]
fn a_missing_program_is_failed_at_once_and_tried_again_only_on_reload_or_request() {
    let gw = Gateway::start(&json!({
        "fx": fixture(&[]),
        "gone": {"command": "/nonexistent/mcp-server-that-is-not-there"},
    }));
    eventually_state(&gw, "gone", "failed");
    let row = backend(&gw, "gone");
    assert!(
        row["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("/nonexistent"),
        "{row}"
    );
    // Said once, and not retried with the short backoff of a transient failure.
    std::thread::sleep(Duration::from_secs(4));
    let said = gw.stdout();
    assert_eq!(said.matches("not retried for 5 min").count(), 1, "{said}");
    assert!(!said.contains("restarting in"), "{said}");
    assert_eq!(backend(&gw, "gone")["restarts"], 0);
    // A reload tries it again.
    let started = Instant::now();
    let config = gw.dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text).unwrap();
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_stdout("trying 'gone' again"), "{}", gw.stdout());
    assert!(started.elapsed() < Duration::from_secs(20));
    eventually_state(&gw, "gone", "failed");
}

#[test]
fn an_on_demand_backend_whose_program_went_away_keeps_its_tools_and_says_why() {
    let dir = TempDir::new();
    let script = dir.path().join("server.py");
    std::fs::copy(util::root().join("tests/fixtures/stdio_server.py"), &script).unwrap();
    let spec = json!({"command": "python3", "args": [script], "start": "on-demand", "idleStop": 1});
    let gw = Gateway::start(&json!({ "fx": spec }));
    eventually_state(&gw, "fx", "sleeping");
    std::fs::remove_file(&script).unwrap();
    // The call that wakes it gets the reason; it is failed for good, its tools still
    // listed, and the next call within seconds is told so without another start.
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "fx__echo", json!({"text": "x"}));
    let message = r["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("No such file or directory"), "{r}");
    eventually_state(&gw, "fx", "failed");
    assert!(tool_names(&gw).contains(&"fx__echo".to_string()));
    let launches = || {
        gw.stderr()
            .matches("backend 'fx': started 'python3'")
            .count()
    };
    let before = launches();
    let r = c.call(json!(2), "fx__echo", json!({"text": "x"}));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not available"),
        "{r}"
    );
    assert_eq!(r["error"]["data"]["state"], "failed", "{r}");
    assert_eq!(launches(), before, "tried again at once");
    // Once the program is back, a call (after the short wait between tries) brings it back.
    std::fs::copy(util::root().join("tests/fixtures/stdio_server.py"), &script).unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let r = c.call(json!(3), "fx__echo", json!({"text": "back"}));
    assert_eq!(r["result"]["content"][0]["text"], "back", "{r}");
}

#[test]
fn the_official_filesystem_and_memory_servers_on_demand_answer_after_a_restart() {
    let modules = util::root().join("tests/node/node_modules/@modelcontextprotocol");
    let (fs, mem) = (
        modules.join("server-filesystem/dist/index.js"),
        modules.join("server-memory/dist/index.js"),
    );
    assert!(
        fs.exists() && mem.exists(),
        "run tests/run, which installs them"
    );
    let dir = TempDir::new();
    let (files, state_dir) = (dir.path().join("files"), dir.path().join("state"));
    std::fs::create_dir_all(&files).unwrap();
    let config = json!({
        "fs": {"command": "node", "args": [fs, files], "start": "on-demand", "idleStop": 1},
        "mem": {"command": "node", "args": [mem], "start": "on-demand", "idleStop": 1,
                "env": {"MEMORY_FILE_PATH": dir.path().join("memory.jsonl")}},
    });
    let run = |gw: &Gateway| {
        util::run_client(
            gw,
            &util::sdk_python(),
            "tests/python/sdk_on_demand.py",
            &gw.mcp_url,
            &[],
        )
    };
    let state_arg = state_dir.to_str().unwrap();
    let gw = Gateway::start_with(&config, &["--state-dir", state_arg]);
    let first = run(&gw);
    assert!(first["dirs"].as_str().unwrap().contains("files"), "{first}");
    assert!(
        first["graph"].as_str().unwrap().contains("runs on demand"),
        "{first}"
    );
    eventually_state(&gw, "fs", "sleeping");
    eventually_state(&gw, "mem", "sleeping");
    drop(gw);
    // Restarted: both sleep from the start, their tools listed from the cache, and the
    // calls wake them.
    let gw = Gateway::start_with(&config, &["--state-dir", state_arg]);
    assert_eq!(state(&gw, "fs"), "sleeping");
    assert_eq!(state(&gw, "mem"), "sleeping");
    assert!(!gw.stderr().contains("started 'node'"), "{}", gw.stderr());
    let again = run(&gw);
    assert_eq!(again["tools"], first["tools"]);
    assert!(
        again["graph"].as_str().unwrap().contains("runs on demand"),
        "{again}"
    );
}

#[test]
fn an_npx_backend_runs_the_program_npm_ran_directly_from_its_second_start() {
    // npx finds the package installed in tests/node (no registry needed).
    let dir = TempDir::new();
    let node = util::root().join("tests/node");
    let entry = |keep: bool| {
        json!({"command": "npx", "args": ["--offline", "@modelcontextprotocol/server-memory"],
               "cwd": node, "start": "on-demand", "idleStop": 1, "keepWrapper": keep,
               "env": {"MEMORY_FILE_PATH": dir.path().join("memory.jsonl")}})
    };
    let gw = Gateway::start(&json!({"direct": entry(false), "wrapped": entry(true)}));
    eventually_state(&gw, "direct", "sleeping");
    eventually_state(&gw, "wrapped", "sleeping");
    assert!(
        gw.stderr().contains("backend 'direct': npm runs '"),
        "{}",
        gw.stderr()
    );
    let c = McpClient::connect(gw.port);
    // Woken by a call: npm, its shell and the server, or the server alone (counted at
    // once, well within the second before it sleeps again).
    let mut processes = Vec::new();
    for (n, name) in ["direct", "wrapped"].into_iter().enumerate() {
        let call = json!({"name": format!("{name}__read_graph"), "arguments": {}});
        let r = c.request(json!(n), "tools/call", call);
        processes.push(backend(&gw, name)["processes"].as_u64().unwrap());
        let text = r.last().unwrap()["result"]["content"][0]["text"].to_string();
        assert!(text.contains("entities"), "{r:?}");
    }
    assert_eq!(processes[0], 1, "{processes:?} {}", gw.stderr());
    assert!(processes[1] >= 2, "{processes:?} {}", gw.stderr());
    assert!(
        !gw.stderr().contains("backend 'wrapped': npm runs"),
        "{}",
        gw.stderr()
    );
}

#[test]
fn a_sleeping_backend_that_takes_tasks_still_has_them_offered_after_a_restart() {
    // The conformance backend takes tool calls as tasks (2025-11-25); asleep, and after a
    // restart never started, the gateway still offers tasks from what it said when it ran.
    let dir = TempDir::new();
    let state_dir = dir.path().join("state");
    let script = util::root().join("tests/fixtures/conformance_server.py");
    let config = json!({"conf": {"command": "python3", "args": [script],
                                 "start": "on-demand", "idleStop": 1}});
    let offered = |gw: &Gateway| {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}});
        let (_, _, body) = McpClient::post(gw.port, None, &[], &init);
        util::last_message(&body)["result"]["capabilities"]["tasks"].is_object()
    };
    let args = ["--state-dir", state_dir.to_str().unwrap()];
    let gw = Gateway::start_with(&config, &args);
    eventually_state(&gw, "conf", "sleeping");
    assert!(offered(&gw));
    drop(gw);
    let gw = Gateway::start_with(&config, &args);
    assert_eq!(state(&gw, "conf"), "sleeping");
    assert!(offered(&gw));
    assert_eq!(backend(&gw, "conf")["processes"], 0);
}

#[test]
fn a_state_directory_that_cannot_be_written_is_said_once_and_costs_nothing_else() {
    let dir = TempDir::new();
    let file = dir.path().join("starts");
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let state_dir = blocker.join("state");
    let gw = Gateway::start_with(
        &json!({ "fx": lazy(&file, &[]) }),
        &["--state-dir", state_dir.to_str().unwrap()],
    );
    eventually_state(&gw, "fx", "sleeping");
    // Woken and asleep again with the same lists: no second warning.
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "fx__echo", json!({"text": "still works"}));
    assert_eq!(r["result"]["content"][0]["text"], "still works", "{r}");
    eventually_state(&gw, "fx", "sleeping");
    assert_eq!(
        gw.stderr()
            .matches("catalogue cache: cannot create")
            .count(),
        1,
        "{}",
        gw.stderr()
    );
}
