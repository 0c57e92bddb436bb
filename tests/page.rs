//! The status page (`/`), rendered in headless Chromium (Debian's `chromium`) against a
//! running gateway with one backend up, one failed on purpose and one asleep (on demand);
//! its data endpoint under
//! the same token and Origin rules as the API. The screenshot is kept in
//! `target/test-artifacts/status-page.png`.

mod util;

use serde_json::{Value, json};
use std::process::Command;
use util::{Gateway, fixture, http};

const TOKEN: &str = "page-test-admin-token";

fn gateway() -> Gateway {
    Gateway::start(&json!({
        "gateway": {"token": TOKEN,
                    "tokens": {"agent": {"token": "page-test-agent", "profiles": ["coding"]}},
                    "profiles": {"coding": {"backends": ["up"]}}},
        "up": fixture(&["--tag", "up"]),
        "broken": {"command": "/nonexistent/mcp-server-that-is-not-there", "restart": "never"},
        "lazy": lazy(),
    }))
}

/// An on-demand backend that sleeps a second after its lists are learned.
fn lazy() -> Value {
    let mut spec = fixture(&["--tag", "lazy"]);
    spec["start"] = json!("on-demand");
    spec["idleStop"] = json!(1);
    spec
}

/// Until `/status.json` says backend `name` is `state`.
fn wait_state(gw: &Gateway, name: &str, state: &str) {
    let admin = [("Authorization", &*format!("Bearer {TOKEN}"))];
    util::eventually(&format!("'{name}' is {state}"), || {
        let (_, _, body) = http(gw.port, "GET", "/status.json", &admin, b"");
        let data: Value = serde_json::from_str(&body).unwrap_or_default();
        data["backends"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["name"] == name && b["state"] == state))
    });
}
#[test]
fn the_status_data_needs_the_gateways_token_and_says_what_is_up() {
    let gw = gateway();
    let get = |path: &str, headers: &[(&str, &str)]| http(gw.port, "GET", path, headers, b"");
    // The page and its script hold no data and need no token; the data does.
    let (status, headers, body) = get("/", &[]);
    assert_eq!(status, 200);
    assert!(body.contains("<title>mcp-gateway</title>"), "{body}");
    let policy = headers
        .iter()
        .find(|(k, _)| k == "content-security-policy")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    assert!(policy.contains("script-src 'self'"), "{headers:?}");
    assert_eq!(get("/status.js", &[]).0, 200);
    assert_eq!(get("/status.json", &[]).0, 401);
    let agent = [("Authorization", "Bearer page-test-agent")];
    assert_eq!(
        get("/status.json", &agent).0,
        403,
        "a client token is not the admin's"
    );
    // Nor under the profile it opens: the whole gateway's status and metrics are served
    // at the root only, to the gateway's token.
    for path in ["/p/coding/status.json", "/p/coding/metrics"] {
        let (status, _, body) = get(path, &agent);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("mcp_gateway_"), "{body}");
        let admin = [("Authorization", &*format!("Bearer {TOKEN}"))];
        assert_eq!(get(path, &admin).0, 404, "{path}");
    }
    let evil = [
        ("Authorization", &*format!("Bearer {TOKEN}")),
        ("Origin", "https://evil.example"),
    ];
    assert_eq!(get("/status.json", &evil).0, 403, "a foreign Origin");
    assert_eq!(
        get("/", &evil[1..]).0,
        403,
        "a foreign Origin, for the page too"
    );

    let admin = [("Authorization", &*format!("Bearer {TOKEN}"))];
    let (status, _, body) = get("/status.json", &admin);
    assert_eq!(status, 200, "{body}");
    let data: Value = serde_json::from_str(&body).unwrap();
    let state = |name: &str| {
        data["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .map(|b| b["state"].clone())
    };
    assert_eq!(state("up"), Some(json!("ready")), "{data}");
    assert_eq!(state("broken"), Some(json!("failed")), "{data}");
    assert!(data["tools"].as_u64().unwrap() > 5, "{data}");
    let up = data["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "up")
        .unwrap();
    assert_eq!(up["processes"], 1, "its process tree: {up}");
    assert!(up["rssKiB"].as_u64().unwrap() > 1000, "{up}");
    assert!(up["cpuSeconds"].is_number(), "{up}");
    // A session at a profile is counted under it; a call that fails is a recent error.
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "p", "version": "1"}}});
    let (status, headers, _) =
        util::McpClient::post_at(gw.port, "/p/coding/mcp", None, &agent, &init);
    assert_eq!(status, 200);
    let session = headers
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .unwrap();
    let crash = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "up__crash", "arguments": {}}});
    util::McpClient::post_at(gw.port, "/p/coding/mcp", Some(&session), &agent, &crash);
    let (_, _, body) = get("/status.json", &admin);
    let data: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(data["sessions"]["byProfile"]["coding"], 1, "{data}");
    // One row per open session: its client, protocol, profile and token, never its id whole.
    let open = data["sessions"]["open"].as_array().unwrap();
    let row = open
        .iter()
        .find(|s| s["profile"] == "coding")
        .unwrap_or_else(|| panic!("no row for the session: {data}"));
    assert_eq!(row["transport"], "streamable-http", "{row}");
    assert_eq!(row["client"], "p 1", "{row}");
    assert_eq!(row["protocol"], "2025-11-25", "{row}");
    assert_eq!(row["token"], "agent", "{row}");
    assert_eq!(row["inFlight"], 0, "{row}");
    assert!(row["ageSeconds"].as_u64().is_some_and(|s| s < 60), "{row}");
    assert!(session.ends_with(row["id"].as_str().unwrap()), "{row}");
    assert!(
        !body.contains(&session),
        "the whole session id is not shown"
    );
    // A legacy stream is listed too, before its initialize.
    let (stream, _) =
        util::raw_sse_endpoint(gw.port, &format!("Authorization: Bearer {TOKEN}\r\n"));
    let (_, _, body) = get("/status.json", &admin);
    let data: Value = serde_json::from_str(&body).unwrap();
    let open = data["sessions"]["open"].as_array().unwrap();
    assert!(
        open.iter()
            .any(|s| s["transport"] == "sse" && s["client"] == "" && s["profile"].is_null()),
        "{data}"
    );
    drop(stream);
    let errors = data["recentErrors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["backend"] == "up" && e["method"] == "tools/call"),
        "{data}"
    );
    assert!(data["requests"]["failed"].as_u64().unwrap() >= 1, "{data}");
    // An error the gateway answers itself (an unknown tool) is counted and listed too.
    let failed = data["requests"]["failed"].as_u64().unwrap();
    let unknown = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                         "params": {"name": "up__no_such_tool", "arguments": {}}});
    util::McpClient::post_at(gw.port, "/p/coding/mcp", Some(&session), &agent, &unknown);
    let (_, _, body) = get("/status.json", &admin);
    let data: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        data["requests"]["failed"].as_u64().unwrap(),
        failed + 1,
        "{data}"
    );
    assert!(
        data["recentErrors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["backend"] == "gateway" && e["method"] == "tools/call"),
        "{data}"
    );
}

#[test]
fn the_status_page_renders_the_backends_in_headless_chromium() {
    let Some(browser) = util::chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is required in CI (tests/run installs it)"
        );
        eprintln!("SKIPPED: chromium is not installed (tests/run installs it when it can)");
        return;
    };
    let gw = gateway();
    wait_state(&gw, "lazy", "sleeping");
    // Calls, for the up backend's count and latency and the chart.
    let admin = format!("Bearer {TOKEN}");
    let auth = [("Authorization", admin.as_str())];
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "p", "version": "1"}}});
    let (_, headers, _) = util::McpClient::post(gw.port, None, &auth, &init);
    let session = headers
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .unwrap();
    for id in 1..=5 {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "up__echo", "arguments": {"text": "x"}}});
        let (status, _, body) = util::McpClient::post(gw.port, Some(&session), &auth, &call);
        assert_eq!(status, 200, "{body}");
    }
    let profile = util::TempDir::new();
    let url = format!("http://127.0.0.1:{}/#token={TOKEN}", gw.port);
    let artifacts = util::root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let run = |extra: &[&str]| {
        let child = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--window-size=1200,900",
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(&url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start chromium");
        util::finish_within(
            child,
            std::time::Duration::from_secs(90),
            "chromium",
            Some(&gw),
        )
    };
    // The page as its script left it: the backends in the table, each with its state.
    let dom = run(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("data-loaded=\"yes\""),
        "the data never came:\n{dom}"
    );
    let row = |name: &str| {
        dom.split("<tr>")
            .find(|r| r.contains(&format!("<td>{name}</td>")))
            .unwrap_or_default()
            .to_string()
    };
    let up = row("up");
    assert!(up.contains("class=\"state-ready\">ready"), "{dom}");
    // Its calls, their median, and its process tree's memory.
    assert!(up.contains("<td>5</td>"), "{up}");
    assert!(
        up.contains(" ms</td>") && up.contains("(1 process)"),
        "{up}"
    );
    // The session that made the calls has its row.
    let sessions = dom.split("id=\"open\"").nth(1).unwrap_or_default();
    assert!(sessions.contains("<td>streamable-http</td>"), "{sessions}");
    // Empty tables say so; nothing failed yet.
    let errors = dom.split("id=\"errors\"").nth(1).unwrap_or_default();
    assert!(
        errors.contains("class=\"none\">none</td>"),
        "the empty errors table: {errors}"
    );
    let lazy = row("lazy");
    assert!(
        lazy.contains("class=\"state-sleeping\">sleeping (on demand)"),
        "{lazy}"
    );
    // The chart of requests per second has a point for each refresh after the first.
    let chart = dom
        .split("<polyline")
        .nth(1)
        .and_then(|p| p.split("points=\"").nth(1))
        .and_then(|p| p.split('"').next())
        .unwrap_or_default();
    assert!(chart.contains(','), "no chart points: {dom}");
    let broken = row("broken");
    assert!(broken.contains("class=\"state-failed\">failed"), "{dom}");
    assert!(
        broken.contains("nonexistent"),
        "its reason is shown: {broken}"
    );
    let out = run(&[&format!("--screenshot={}", shot.display())]);
    assert!(
        shot.metadata().map(|m| m.len() > 10_000).unwrap_or(false),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
