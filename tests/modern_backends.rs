//! Backends that speak only protocol 2026-07-28, bridged for every client: the official
//! SDKs in legacy mode and raw clients against them over stdio and Streamable HTTP; their
//! input_required rounds and tasks, headers, resource subscriptions, list caching hints
//! and cancellation.

mod util;

use serde_json::{Value, json};
use util::{Gateway, run_client, sdk_python};

const VERSION: &str = "2026-07-28";

fn call_text(c: &util::McpClient, tool: &str, arguments: Value) -> String {
    let answer = c.request(
        json!("call"),
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    );
    let last = answer.last().cloned().unwrap_or_default();
    let text = last["result"]["content"][0]["text"].as_str();
    text.unwrap_or_else(|| panic!("{tool}: {last}")).to_string()
}

/// Waits until a legacy client's `tools/list` shows `tool`.
fn wait_listed(c: &util::McpClient, tool: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = c.request(json!("wait"), "tools/list", json!({}));
        let list = answer.last().cloned().unwrap_or_default();
        if list.to_string().contains(tool) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{tool} never showed: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A gateway in front of the stdio backend that speaks only 2026-07-28.
fn modern_backend_gateway() -> Gateway {
    let backend = util::root().join("tests/fixtures/modern_server.py");
    bridged(json!({"command": "python3", "args": [backend]}))
}

/// A gateway in front of the backend `mo` (`spec`), once the bridge to it is up.
fn bridged(spec: Value) -> Gateway {
    let gw = Gateway::start(&json!({ "mo": spec }));
    assert!(
        gw.wait_stderr("speaks protocol 2026-07-28"),
        "{}",
        gw.stderr()
    );
    gw
}

#[test]
fn a_backend_that_speaks_only_2026_07_28_serves_legacy_clients() {
    let gw = modern_backend_gateway();
    let c = util::McpClient::connect(gw.port);
    let last = |answer: Vec<Value>| answer.last().cloned().unwrap_or_default();
    let list = last(c.request(json!(1), "tools/list", json!({})));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"mo__echo") && names.contains(&"mo__ask_name"),
        "{list}"
    );
    // Each request carries the revision's _meta, with the gateway's identity.
    let meta: Value = serde_json::from_str(&call_text(&c, "mo__whoami", json!({}))).unwrap();
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"], VERSION,
        "{meta}"
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientInfo"]["name"], "mcp-gateway",
        "{meta}"
    );
    // What the revision removed is answered by the gateway.
    let pong = last(c.request(json!(3), "ping", json!({})));
    assert!(pong["result"].is_object(), "{pong}");
    // Its list changes come through its listen stream, and reach legacy clients as ever.
    let added = last(c.request(
        json!(4),
        "tools/call",
        json!({"name": "mo__add_tool", "arguments": {}}),
    ));
    assert_eq!(added["result"]["content"][0]["text"], "added", "{added}");
    wait_listed(&c, "mo__added_0");
}

#[test]
fn the_python_sdk_in_legacy_mode_answers_a_modern_backends_input_required_and_tasks() {
    let gw = modern_backend_gateway();
    let seen = run_client(
        &gw,
        &sdk_python(),
        "tests/python/sdk_legacy_to_modern.py",
        &gw.mcp_url,
        &[],
    );
    assert_eq!(seen["version"], "2025-11-25", "{seen}");
    assert_eq!(seen["echo"], "modern echo: from a legacy client", "{seen}");
    assert_eq!(seen["greeting"], "Hello, Grace!", "{seen}");
    // The backend made a task of the booking: polled, its question asked, its end the answer.
    assert_eq!(seen["booked"], "booked seat 12A", "{seen}");
    assert_eq!(
        seen["asked"],
        json!(["What is your name?", "Which seat?"]),
        "{seen}"
    );
}

#[test]
fn the_typescript_sdk_answers_a_modern_backends_input_required() {
    let gw = modern_backend_gateway();
    let node = std::path::Path::new("node");
    let seen = run_client(
        &gw,
        node,
        "tests/node/sdk_legacy_to_modern.mjs",
        &gw.mcp_url,
        &[],
    );
    assert_eq!(seen["echo"], "modern echo: from TypeScript", "{seen}");
    assert_eq!(seen["greeting"], "Hello, Linus!", "{seen}");
    assert_eq!(seen["asked"], json!(["What is your name?"]), "{seen}");
}

#[test]
fn a_streamable_http_backend_that_speaks_only_2026_07_28_is_bridged_too() {
    use std::process::{Command, Stdio};
    let dir = util::TempDir::new();
    let port_file = dir.path().join("port");
    let mut server = Command::new("python3")
        .arg(util::root().join("tests/fixtures/modern_http_server.py"))
        .arg(&port_file)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file)
            && let Ok(p) = p.trim().parse::<u16>()
        {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTP fixture did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let url = format!("http://127.0.0.1:{port}/mcp");
    let gw = bridged(json!({"type": "streamable-http", "url": url}));
    let c = util::McpClient::connect(gw.port);
    let last = |answer: Vec<Value>| answer.last().cloned().unwrap_or_default();
    assert_eq!(
        call_text(&c, "mo__echo", json!({"text": "hi"})),
        "modern echo: hi"
    );
    // The revision's headers went with it, and no session.
    let seen: Value = serde_json::from_str(&call_text(&c, "mo__whoami", json!({}))).unwrap();
    assert_eq!(
        seen,
        json!({"MCP-Protocol-Version": VERSION, "Mcp-Method": "tools/call", "Mcp-Name": "whoami", "Mcp-Session-Id": null})
    );
    // A tool's mirrored argument goes in its Mcp-Param header (the revision's base64 form
    // when not plain ASCII); the backend refuses the call without it.
    assert_eq!(
        call_text(&c, "mo__locate", json!({"region": "eu-west"})),
        "region eu-west, header eu-west"
    );
    let encoded = call_text(&c, "mo__locate", json!({"region": "zürich"}));
    assert!(
        encoded.starts_with("region zürich, header =?base64?"),
        "{encoded}"
    );
    // Its list changes come over its listen stream.
    last(c.request(
        json!(3),
        "tools/call",
        json!({"name": "mo__add_tool", "arguments": {}}),
    ));
    wait_listed(&c, "mo__added_0");
    drop(gw);
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_call_to_a_2026_backend_that_times_out_is_cancelled_under_the_id_the_backend_knows() {
    let backend = util::root().join("tests/fixtures/modern_server.py");
    let gw = bridged(json!({"command": "python3", "args": [backend], "timeout": 1}));
    let c = util::McpClient::connect(gw.port);
    let answer = c.request(
        json!(1),
        "tools/call",
        json!({"name": "mo__slow", "arguments": {}}),
    );
    let last = answer.last().cloned().unwrap_or_default();
    assert_eq!(last["error"]["code"], -32001, "timed out: {last}");
    let told: Vec<Value> =
        serde_json::from_str(&call_text(&c, "mo__cancelled", json!({}))).unwrap();
    assert_eq!(told.len(), 1, "the backend was told once: {told:?}");
}

#[test]
fn a_resource_subscription_to_a_2026_backend_rides_a_listen_stream_of_its_own() {
    let gw = modern_backend_gateway();
    let c = gw.connect();
    c.initialize();
    let mut listed = Value::Null;
    util::eventually("the backend's resources are listed", || {
        listed = c.request(json!(1), "resources/list", json!({}));
        listed["result"]["resources"][0]["uri"].is_string()
    });
    let uri = listed["result"]["resources"][0]["uri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let subscribed = c.request(json!(2), "resources/subscribe", json!({"uri": uri}));
    assert!(subscribed["result"].is_object(), "{subscribed}");
    let updated = |c: &util::SseClient, secs: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match c.next_message(left) {
                Some(m) if m["method"] == "notifications/resources/updated" => return Some(m),
                Some(_) => continue,
                None => break,
            }
        }
        None
    };
    // The backend's update comes on the subscription's listen stream, and reaches the
    // session as a legacy backend's would: the URI the client knows, no subscription id.
    c.send(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                   "params": {"name": "mo__touch", "arguments": {}}}));
    let update = updated(&c, 10).expect("an update after the touch");
    assert_eq!(update["params"]["uri"], uri.as_str(), "{update}");
    assert!(update["params"].get("_meta").is_none(), "{update}");
    // Unsubscribed: the listen is cancelled at the backend, and no update comes.
    let gone = c.request(json!(4), "resources/unsubscribe", json!({"uri": uri}));
    assert!(gone["result"].is_object(), "{gone}");
    c.send(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                   "params": {"name": "mo__touch", "arguments": {}}}));
    assert!(updated(&c, 2).is_none(), "no update after unsubscribing");
    let seen = c.call(json!(6), "mo__cancelled", json!({}));
    let text = seen["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("gateway-subscription-"),
        "the backend was told: {text}"
    );
}

#[test]
fn a_2026_backends_list_is_listed_again_when_its_ttl_runs_out() {
    let gw = modern_backend_gateway();
    let c = gw.connect();
    c.initialize();
    let uris = |c: &util::SseClient| {
        let listed = c.request(json!(1), "resources/list", json!({}));
        listed["result"]["resources"].to_string()
    };
    util::eventually("the backend's resources are listed", || {
        uris(&c).contains("modern://clock")
    });
    // The backend does not announce resource list changes, and says its list is stale at
    // once (ttlMs 0): the gateway lists it again (at least 5 s apart) and sees the new one.
    let added = c.call(json!(2), "mo__add_resource", json!({}));
    assert_eq!(
        added["result"]["content"][0]["text"], "added quietly",
        "{added}"
    );
    util::eventually("the quietly added resource is listed", || {
        uris(&c).contains("modern://added-0")
    });
}
