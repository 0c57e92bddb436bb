//! Protocol 2026-07-28 clients on `/mcp`: stateless requests, each checked and answered as
//! the revision says, served by legacy backends behind the gateway. Raw HTTP for the wire
//! details, and the official Python SDK's client pinned to 2026-07-28.

mod util;

use serde_json::{Value, json};
use util::{Gateway, fixture, run_client, sdk_python};

const VERSION: &str = "2026-07-28";

fn meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": VERSION,
           "io.modelcontextprotocol/clientCapabilities": {},
           "io.modelcontextprotocol/clientInfo": {"name": "raw-modern", "version": "1"}})
}

/// POSTs one modern request with the headers a conforming client sends (`name` for
/// `Mcp-Name`), `extra` replacing or adding; returns the status and the JSON answer (the
/// last message of an SSE answer).
fn modern(
    gw: &Gateway,
    method: &str,
    params: Value,
    name: Option<&str>,
    extra: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let mut headers: Vec<(&str, &str)> =
        vec![("MCP-Protocol-Version", VERSION), ("Mcp-Method", method)];
    if let Some(n) = name {
        headers.push(("Mcp-Name", n));
    }
    for (k, v) in extra {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        if !v.is_empty() {
            headers.push((k, v));
        }
    }
    let (status, got, text) = util::McpClient::post(gw.port, None, &headers, &body);
    let last = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .unwrap_or(&text);
    let answer = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {status} {text}"));
    (status, got, answer)
}

#[test]
fn a_2026_client_discovers_lists_and_calls_without_a_session() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let (status, headers, d) = modern(&gw, "server/discover", json!({"_meta": meta()}), None, &[]);
    assert_eq!(status, 200, "{d}");
    assert!(
        !headers.iter().any(|(k, _)| k == "mcp-session-id"),
        "no session: {headers:?}"
    );
    let r = &d["result"];
    assert_eq!(r["resultType"], "complete", "{d}");
    assert_eq!(r["supportedVersions"][0], VERSION, "{d}");
    assert!(
        r["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2025-11-25"))
    );
    assert!(r["capabilities"]["tools"].is_object(), "{d}");
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-gateway"
    );
    assert!(
        r["ttlMs"].as_u64().is_some() && r["cacheScope"] == "public",
        "{d}"
    );

    let (status, _, list) = modern(&gw, "tools/list", json!({"_meta": meta()}), None, &[]);
    assert_eq!(status, 200, "{list}");
    let r = &list["result"];
    assert!(
        r["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "fx__echo"),
        "{list}"
    );
    assert_eq!(
        (r["resultType"].clone(), r["cacheScope"].clone()),
        (json!("complete"), json!("public"))
    );
    assert_eq!(r["ttlMs"], 0);

    let params = json!({"name": "fx__echo", "arguments": {"text": "hi"}, "_meta": meta()});
    let (status, _, call) = modern(&gw, "tools/call", params, Some("fx__echo"), &[]);
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["id"], 7, "{call}");
    assert_eq!(call["result"]["resultType"], "complete", "{call}");
    assert!(
        call["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hi"),
        "{call}"
    );
    // The gateway's session for it is gone with its answer: no session stays behind.
    assert!(gw.wait_stderr("closed"), "{}", gw.stderr());
}

#[test]
fn refusals_use_the_revisions_codes_and_statuses() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let check = |method: &str,
                 params: Value,
                 name: Option<&str>,
                 extra: &[(&str, &str)],
                 want: (u16, i64)| {
        let (status, _, answer) = modern(&gw, method, params, name, extra);
        assert_eq!(
            (status, answer["error"]["code"].as_i64().unwrap_or(0)),
            want,
            "{method} {extra:?}: {answer}"
        );
        assert_eq!(answer["id"], 7, "the request's id: {answer}");
        answer
    };
    // _meta incomplete: -32602, 400.
    check("tools/list", json!({}), None, &[], (400, -32602));
    let no_caps = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": VERSION}});
    check("tools/list", no_caps, None, &[], (400, -32602));
    // A version the gateway does not speak: -32022 with what it does.
    let old = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01",
                               "io.modelcontextprotocol/clientCapabilities": {}}});
    let a = check(
        "tools/list",
        old,
        None,
        &[("MCP-Protocol-Version", "2099-01-01")],
        (400, -32022),
    );
    assert_eq!(a["error"]["data"]["requested"], "2099-01-01", "{a}");
    assert!(
        a["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!(VERSION))
    );
    // Headers missing or not matching the body: -32020.
    check(
        "tools/list",
        json!({"_meta": meta()}),
        None,
        &[("Mcp-Method", "")],
        (400, -32020),
    );
    check(
        "tools/list",
        json!({"_meta": meta()}),
        None,
        &[("Mcp-Method", "prompts/list")],
        (400, -32020),
    );
    let call = json!({"name": "fx__echo", "arguments": {}, "_meta": meta()});
    check("tools/call", call.clone(), None, &[], (400, -32020));
    check(
        "tools/call",
        call.clone(),
        Some("fx__other"),
        &[],
        (400, -32020),
    );
    // A name may travel base64-encoded.
    let (status, _, a) = modern(
        &gw,
        "tools/call",
        call,
        Some("=?base64?ZnhfX2VjaG8=?="),
        &[],
    );
    assert_eq!(status, 200, "{a}");
    // Methods the revision removed, and unknown ones: 404 with -32601.
    for removed in [
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "no/such",
    ] {
        check(removed, json!({"_meta": meta()}), None, &[], (404, -32601));
    }
}

#[test]
fn legacy_clients_are_unchanged_beside_modern_ones() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let legacy = util::McpClient::connect(gw.port);
    let (status, _, list) = modern(&gw, "tools/list", json!({"_meta": meta()}), None, &[]);
    assert_eq!(status, 200, "{list}");
    let answer = legacy.request(json!(1), "tools/list", json!({}));
    let result = &answer.last().unwrap()["result"];
    assert!(result["tools"].is_array(), "{answer:?}");
    assert!(
        result.get("resultType").is_none(),
        "a legacy client gets legacy results: {result}"
    );
    // A probe without _meta or the modern header is still a plain 400, so clients fall back.
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let (status, _, body) = util::McpClient::post(gw.port, None, &[], &ping);
    assert!(
        status == 400 && !body.contains("jsonrpc"),
        "{status} {body}"
    );
}

#[test]
fn the_python_sdk_pinned_to_2026_07_28_lists_and_calls() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let seen = run_client(
        &gw,
        &sdk_python(),
        "tests/python/sdk_modern.py",
        &gw.mcp_url,
        &[],
    );
    assert!(
        seen["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("fx__echo")),
        "{seen}"
    );
    assert!(
        seen["echo"].as_str().unwrap().contains("modern hello"),
        "{seen}"
    );
    assert_eq!(seen["is_error"], false, "{seen}");
    assert_eq!(seen["unknown_code"], -32602, "an unknown tool: {seen}");
}

#[test]
fn capabilities_and_log_levels_come_from_each_requests_meta() {
    let backend = util::root().join("tests/fixtures/conformance_server.py");
    let gw =
        Gateway::start(&json!({ "conf": {"command": "python3", "args": [backend], "prefix": ""} }));
    // The backend asks the client to sample; this client did not declare sampling.
    let params = json!({"name": "test_missing_capability", "arguments": {}, "_meta": meta()});
    let (status, _, a) = modern(
        &gw,
        "tools/call",
        params,
        Some("test_missing_capability"),
        &[],
    );
    assert_eq!(
        (status, a["error"]["code"].clone()),
        (400, json!(-32021)),
        "{a}"
    );
    assert!(
        a["error"]["data"]["requiredCapabilities"]["sampling"].is_object(),
        "{a}"
    );
    // Log lines only for a request that asks for them, at its level and above.
    let logs = |level: Option<&str>| {
        let mut m = meta();
        if let Some(l) = level {
            m["io.modelcontextprotocol/logLevel"] = json!(l);
        }
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                          "params": {"name": "test_logging_tool", "arguments": {}, "_meta": m}});
        let headers = [
            ("MCP-Protocol-Version", VERSION),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "test_logging_tool"),
        ];
        let (status, _, text) = util::McpClient::post(gw.port, None, &headers, &body);
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("resultType"), "{text}");
        text.matches("notifications/message").count()
    };
    assert_eq!(logs(None), 0, "no logLevel, no log lines");
    assert_eq!(logs(Some("info")), 3, "the tool logs three lines at info");
    assert_eq!(logs(Some("error")), 0, "none at error or above");
}
