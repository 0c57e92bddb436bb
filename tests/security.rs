//! Who may use the gateway and what it gives away: bearer tokens, session limits,
//! duplicate request ids, and secrets kept out of the logs.

mod util;

use serde_json::json;
use std::time::Duration;
use util::{Gateway, McpClient, fixture};

#[test]
fn a_token_is_required_on_every_endpoint_when_set() {
    let gw = Gateway::start_with(
        &json!({ "fx": fixture(&[]) }),
        &["--token", "s3cret-token-value"],
    );
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, headers, _) = McpClient::post(gw.port, None, &[], &init);
    assert_eq!(status, 401);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "www-authenticate" && v.starts_with("Bearer")),
        "{headers:?}"
    );
    let (status, _, _) =
        McpClient::post(gw.port, None, &[("Authorization", "Bearer wrong")], &init);
    assert_eq!(status, 401);
    let (status, _, _) = util::http(gw.port, "GET", "/sse", &[], b"");
    assert_eq!(status, 401, "the legacy endpoint needs it too");
    let (status, _, _) = util::http(gw.port, "POST", "/messages?sessionId=x", &[], b"{}");
    assert_eq!(status, 401);
    let auth = [("Authorization", "Bearer s3cret-token-value")];
    let (status, headers, body) = McpClient::post(gw.port, None, &auth, &init);
    assert_eq!(status, 200, "{body}");
    let session = headers
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .unwrap()
        .1
        .clone();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fx__echo", "arguments": {"text": "authorized"}}});
    let (status, _, body) = McpClient::post(gw.port, Some(&session), &auth, &call);
    assert_eq!(status, 200);
    assert!(body.contains("authorized"), "{body}");
    assert!(
        !gw.stderr().contains("s3cret-token-value"),
        "the token reached the log"
    );
}

#[test]
fn secrets_stay_out_of_the_logs() {
    let mut spec = fixture(&[]);
    spec["env"] = json!({"API_KEY": "${MCP_GATEWAY_TEST_UNSET:-env-secret-value}"});
    spec["args"]
        .as_array_mut()
        .unwrap()
        .extend([json!("--api-key"), json!("arg-secret-value")]);
    let gw = Gateway::start_with(
        &json!({ "fx": spec }),
        &["--log-level", "debug", "--token", "token-secret-value"],
    );
    let c = McpClient::post(
        gw.port,
        None,
        &[("Authorization", "Bearer token-secret-value")],
        &json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}}),
    );
    assert_eq!(c.0, 200);
    std::thread::sleep(Duration::from_millis(200));
    let logs = std::fs::read_dir(gw.dir.path().join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    for secret in ["env-secret-value", "arg-secret-value", "token-secret-value"] {
        assert!(!logs.contains(secret), "'{secret}' is in the log file");
        assert!(
            !gw.stderr().contains(secret),
            "'{secret}' is on the console"
        );
    }
}

#[test]
fn sessions_beyond_the_limit_get_503() {
    let gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--max-sessions", "2"]);
    let _a = gw.connect();
    let _b = McpClient::connect(gw.port);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}});
    let (status, headers, _) = McpClient::post(gw.port, None, &[], &init);
    assert_eq!(status, 503);
    assert!(headers.iter().any(|(k, _)| k == "retry-after"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
}

#[test]
fn a_duplicate_request_id_in_flight_is_refused() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let c = gw.connect();
    c.initialize();
    c.send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "fx__sleep", "arguments": {"ms": 500, "text": "first"}}}));
    c.send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "fx__echo", "arguments": {"text": "second"}}}));
    let first = c.next_message(util::WAIT).unwrap();
    assert_eq!(first["error"]["code"], -32600, "{first}");
    assert!(
        first["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already in flight")
    );
    let second = c.next_message(util::WAIT).unwrap();
    assert_eq!(second["result"]["content"][0]["text"], "first");
}
