//! A stateful backend (`"scope": "session"`) behind the gateway keeps its state for each
//! client, whatever its protocol era: a legacy session has an instance of its own, and a
//! 2026-07-28 client (which has no session) one per client token and endpoint, kept across
//! its requests until idle; and only a request that must reach the backend starts one.
//! With the official Python SDK, and the real Playwright MCP server.

mod util;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use util::{Gateway, McpClient, TempDir, fixture, run_client, sdk_python};

/// How many times the stateful backend has started (one line each in its file).
fn starts(file: &Path) -> usize {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .count()
}

fn stateful(dir: &TempDir) -> (Value, PathBuf) {
    let file = dir.path().join("starts");
    let mut st = fixture(&["--tag", "st", "--starts", file.to_str().unwrap()]);
    st["scope"] = json!("session");
    (st, file)
}

const ALICE: &str = "alice-secret-token";
const BOB: &str = "bob-secret-token-2";

/// One run of the SDK client against the team profile with `token`.
fn sdk(gw: &Gateway, token: &str, mode: &str, action: &[&str]) -> Value {
    let url = format!("http://127.0.0.1:{}/p/team/mcp", gw.port);
    let mut args = vec![token, mode];
    args.extend_from_slice(action);
    run_client(
        gw,
        &sdk_python(),
        "tests/python/sdk_stateful.py",
        &url,
        &args,
    )
}

#[test]
fn a_2026_client_keeps_its_instance_and_a_list_starts_nothing() {
    let dir = TempDir::new();
    let (st, file) = stateful(&dir);
    let gw = Gateway::start(&json!({
        "gateway": {
            "token": "admin-secret-token",
            "tokens": {
                "alice": {"token": ALICE, "profiles": ["team"]},
                "bob": {"token": BOB, "profiles": ["team"]}
            },
            "profiles": {"team": {}}
        },
        "st": st,
        "other": fixture(&["--tag", "other"]),
    }));
    // The catalogue was learned from one instance at start, which has stopped since.
    assert!(gw.wait_stdout("Connect MCP clients"));
    let learned = starts(&file);
    assert_eq!(learned, 1, "one instance to learn the lists");
    // Listing and calling another backend start nothing.
    let seen = sdk(&gw, ALICE, "2026-07-28", &["others"]);
    assert!(seen["tools"].as_u64().unwrap() > 30, "{seen}");
    assert_eq!(seen["echo2"], "hi 2", "{seen}");
    assert_eq!(
        starts(&file),
        learned,
        "a list or another backend's call started it"
    );
    // What one request stores, the client's next request finds: its instance is kept.
    sdk(&gw, ALICE, "2026-07-28", &["remember", "alice's value"]);
    assert_eq!(starts(&file), learned + 1);
    let alice = sdk(&gw, ALICE, "2026-07-28", &["recall"]);
    assert_eq!(alice["recall"]["value"], "alice's value", "{alice}");
    assert_eq!(starts(&file), learned + 1, "the same instance answered");
    // Another token has an instance of its own, and sees none of the first one's state.
    let bob = sdk(&gw, BOB, "2026-07-28", &["recall"]);
    assert_eq!(bob["recall"]["value"], Value::Null, "{bob}");
    assert_ne!(bob["recall"]["pid"], alice["recall"]["pid"]);
    sdk(&gw, BOB, "2026-07-28", &["remember", "bob's value"]);
    let alice_again = sdk(&gw, ALICE, "2026-07-28", &["recall"]);
    assert_eq!(alice_again["recall"]["value"], "alice's value");
    assert_eq!(starts(&file), learned + 2);
    // A legacy session has an instance of its own, apart from the tokens' instances,
    // whichever token opened it.
    let legacy = legacy_recall(&gw, ALICE);
    assert_eq!(legacy["value"], Value::Null, "{legacy}");
    assert_ne!(legacy["pid"], alice["recall"]["pid"]);
    assert_eq!(starts(&file), learned + 3);
    // The status data shows each instance with whose it is.
    let admin = [("Authorization", "Bearer admin-secret-token")];
    let (_, _, body) = util::http(gw.port, "GET", "/status.json", &admin, b"");
    let status: Value = serde_json::from_str(&body).unwrap_or_default();
    let st = status["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == "st"))
        .cloned()
        .unwrap_or_default();
    let keys: Vec<&str> = st["instances"]
        .as_array()
        .map(|i| i.iter().filter_map(|i| i["key"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        keys.contains(&"token 'alice' at /p/team/") && keys.contains(&"token 'bob' at /p/team/"),
        "{st}"
    );
}

/// A legacy Streamable HTTP session at the team profile with `token`: initialize, then
/// what the stateful backend recalls.
fn legacy_recall(gw: &Gateway, token: &str) -> Value {
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str())];
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "legacy", "version": "1"}}});
    let (status, got, body) = McpClient::post_at(gw.port, "/p/team/mcp", None, &headers, &init);
    assert_eq!(status, 200, "{body}");
    let session = got
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .unwrap();
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    McpClient::post_at(
        gw.port,
        "/p/team/mcp",
        Some(&session),
        &headers,
        &initialized,
    );
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "st__recall", "arguments": {}}});
    let (_, _, body) = McpClient::post_at(gw.port, "/p/team/mcp", Some(&session), &headers, &call);
    let answer = util::last_message(&body);
    serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

#[test]
fn a_2026_client_on_stdio_keeps_its_instance_between_calls() {
    let dir = TempDir::new();
    let (st, file) = stateful(&dir);
    let config = json!({ "st": st, "other": fixture(&["--tag", "other"]) });
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let logs = dir.path().join("logs");
    let child = std::process::Command::new(sdk_python())
        .arg(util::root().join("tests/python/sdk_stateful.py"))
        .args(["stdio", env!("CARGO_BIN_EXE_mcp-gateway")])
        .arg(&path)
        .arg(&logs)
        .args(["2026-07-28", "both", "kept on stdio"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = util::finish_within(
        child,
        std::time::Duration::from_secs(90),
        "sdk_stateful",
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(seen["recall"]["value"], "kept on stdio", "{seen}");
    // One instance learned the lists, one served the client's two calls.
    assert_eq!(starts(&file), 2);
}
#[test]
fn playwright_keeps_its_page_between_a_2026_clients_calls() {
    let Some(browser) = util::chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing: tests/run installs it"
        );
        eprintln!("skipped: no chromium (tests/run installs it)");
        return;
    };
    let cli = util::root().join("tests/node/node_modules/@playwright/mcp/cli.js");
    assert!(
        cli.exists(),
        "run tests/run, which installs @playwright/mcp"
    );
    let dir = TempDir::new();
    let gw = Gateway::start(&json!({
        "pw": {"command": "node", "scope": "session", "cwd": dir.path(),
               "args": [cli, "--headless", "--isolated", "--no-sandbox", "--executable-path", browser]}
    }));
    let page = util::serve_page(
        "<html><head><title>Gateway Test Page</title></head><body><h1>Hello from loopback</h1></body></html>",
    );
    // The SDK's default mode: it negotiates 2026-07-28 with the gateway.
    let seen = run_client(
        &gw,
        &sdk_python(),
        "tests/python/sdk_stateful.py",
        &gw.mcp_url,
        &["-", "auto", "browse", &page],
    );
    let snapshot = seen["snapshot"].as_str().unwrap_or_default();
    assert!(
        snapshot.contains(&format!("Page URL: {page}"))
            && snapshot.contains("Gateway Test Page")
            && snapshot.contains("Hello from loopback"),
        "the snapshot is not of the page navigated to: {seen}"
    );
}
