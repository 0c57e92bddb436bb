//! Real third-party software on both sides of the real gateway: the official MCP Python
//! and TypeScript SDK clients in front, `@modelcontextprotocol/server-everything` behind.

mod util;

use serde_json::{Value, json};
use std::path::Path;
use util::{Gateway, everything, root, run_client, sdk_python};

fn everything_gateway() -> Gateway {
    let ev = everything();
    Gateway::start(&json!({
        "ev": {"command": "node", "args": [ev]},
        "evs": {"command": "node", "args": [ev], "scope": "session"},
    }))
}

#[test]
fn python_sdk_uses_everything_server_features_through_the_gateway() {
    let gw = everything_gateway();
    let seen = run_client(
        &gw,
        &sdk_python(),
        "tests/python/sdk_everything.py",
        &gw.url,
        &[],
    );
    assert_eq!(seen["has_tools"], true, "{seen}");
    assert_eq!(seen["resources"], 14, "{seen}");
    assert_eq!(seen["read_uri"], "demo://resource/dynamic/text/1");
    assert_eq!(
        seen["updated"], "demo://resource/dynamic/text/1",
        "subscription update: {seen}"
    );
    assert_eq!(
        seen["prompts"],
        json!([
            "ev__args-prompt",
            "ev__completable-prompt",
            "ev__resource-prompt",
            "ev__simple-prompt"
        ])
    );
    assert_eq!(seen["prompt_text"], "What's weather in Paris, TX?");
    assert_eq!(seen["completion"], json!(["Engineering"]));
    assert_eq!(seen["progress"], json!([1.0, 2.0, 3.0]));
    assert_eq!(seen["sampling"], 1);
    assert_eq!(
        seen["sampling_result"], true,
        "the sampled text reached the server: {seen}"
    );
    assert_eq!(seen["elicitation"], 1);
    assert_eq!(seen["elicitation_result"], true, "{seen}");
    assert_eq!(seen["logs"], true, "{seen}");
    assert_eq!(seen["roots"], 1, "{seen}");
    assert_eq!(seen["roots_seen_by_server"], true, "{seen}");
}

#[test]
fn typescript_sdk_uses_resources_prompts_and_sampling_through_the_gateway() {
    let gw = everything_gateway();
    let seen = run_client(
        &gw,
        Path::new("node"),
        "tests/node/sdk_everything.mjs",
        &gw.url,
        &[],
    );
    assert_eq!(seen["server"], "mcp-gateway");
    assert_eq!(seen["resources"], 7, "{seen}");
    assert_eq!(seen["read_ok"], true, "{seen}");
    assert_eq!(
        seen["templates"],
        json!([
            "demo://resource/dynamic/blob/{resourceId}",
            "demo://resource/dynamic/text/{resourceId}"
        ])
    );
    assert_eq!(seen["prompts"].as_array().unwrap().len(), 8, "{seen}");
    assert_eq!(seen["prompt_text"], "What's weather in Lisbon?");
    assert_eq!(seen["sampling_requests"], 1);
    assert_eq!(seen["sampling_result"], true, "{seen}");
}

#[test]
fn python_sdk_sse_client_calls_builtin_bash_on_the_shipped_config() {
    let shipped: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("config.json")).unwrap())
            .unwrap();
    let gw = Gateway::start(&shipped);
    let seen = run_client(
        &gw,
        &sdk_python(),
        "tests/python/sdk_sse_client.py",
        &gw.url,
        &[],
    );
    assert_eq!(seen["server"], "mcp-gateway");
    assert_eq!(seen["protocol"], "2025-11-25");
    assert_eq!(seen["tools"], serde_json::json!(["bash__bash"]));
    assert_eq!(seen["ok_text"], "[exit code 0]\nsdk-ok\n");
    assert_eq!(seen["ok_is_error"], false);
    assert_eq!(seen["ok_structured"]["stdout"], "sdk-ok\n");
    assert_eq!(seen["bad_is_error"], true);
    assert_eq!(seen["bad_structured"]["exitCode"], 4);
    assert_eq!(seen["bad_structured"]["stderr"], "nope\n");
}

#[test]
fn python_sdk_stdio_client_runs_the_gateway_as_a_stdio_server() {
    let seen = util::run_stdio_client(
        "tests/python/sdk_stdio_client.py",
        &json!({"bash": {"type": "builtin", "server": "bash"}}),
    );
    assert_eq!(seen["server"], "mcp-gateway");
    assert_eq!(seen["stdout"], "over stdio\n");
}

#[test]
fn stdio_mode_writes_only_protocol_messages_on_stdout() {
    use std::io::{BufRead, BufReader, Write};
    let (mut child, _dir) = util::stdio_gateway(
        &json!({ "fx": util::fixture(&[]) }),
        std::process::Stdio::piped(),
    );
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}}})).unwrap();
    writeln!(stdin, "not json").unwrap();
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    )
    .unwrap();
    drop(stdin); // stdin closing ends the gateway
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for line in &lines {
        let msg: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not JSON-RPC on stdout: {line}: {e}"));
        assert_eq!(msg["jsonrpc"], "2.0");
    }
    let by_id = |id: Value| {
        lines
            .iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|m| m["id"] == id)
            .unwrap()
    };
    assert_eq!(
        by_id(json!(1))["result"]["serverInfo"]["name"],
        "mcp-gateway"
    );
    assert_eq!(by_id(json!(2))["result"], json!({}));
    assert_eq!(by_id(Value::Null)["error"]["code"], -32700);
}
