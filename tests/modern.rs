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
    (status, got, util::last_message(&text))
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
    // The gateway's session for each request is gone with its answer, and quietly: its
    // opening and closing are debug lines, not one info line per request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, _, metrics) = util::http(gw.port, "GET", "/metrics", &[], b"");
        if metrics.contains("mcp_gateway_sessions{transport=\"streamable-http-2026\"} 0") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sessions stayed: {metrics}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !gw.stderr().contains("initialize from 'raw-modern"),
        "{}",
        gw.stderr()
    );
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

/// A gateway in front of the conformance backend, whose tools ask their client for input.
fn asking_gateway() -> Gateway {
    let backend = util::root().join("tests/fixtures/conformance_server.py");
    Gateway::start(&json!({ "conf": {"command": "python3", "args": [backend], "prefix": ""} }))
}

fn call_with(gw: &Gateway, id: u64, tool: &str, extra: Value, capabilities: Value) -> (u16, Value) {
    let mut m = meta();
    m["io.modelcontextprotocol/clientCapabilities"] = capabilities;
    let mut params = json!({"name": tool, "arguments": {}, "_meta": m});
    if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params});
    let headers = [
        ("MCP-Protocol-Version", VERSION),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", tool),
    ];
    let (status, _, text) = util::McpClient::post(gw.port, None, &headers, &body);
    (status, util::last_message(&text))
}

#[test]
fn a_backend_that_asks_for_roots_and_answers_at_once_is_answered_as_modern() {
    // The official filesystem server asks for roots during a call and answers without
    // waiting: the answer came to the client undecorated (no resultType), or not at all.
    let gw = Gateway::start(&json!({"fx": fixture(&["--asks"])}));
    for id in 1..=3 {
        let (status, r) = call_with(&gw, id, "fx__glance", json!({}), json!({}));
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["id"], id, "{r}");
        assert_eq!(r["result"]["resultType"], "complete", "{r}");
        assert_eq!(r["result"]["content"][0]["text"], "glanced", "{r}");
    }
    // A client that declared no roots has none: the backend hears an empty list, not an
    // error it would log.
    let (_, r) = call_with(&gw, 9, "fx__state", json!({}), json!({}));
    let state = util::fixture_state(&r);
    let answers = state["roots_answers"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{state}");
    assert!(
        answers.iter().all(|a| a["result"] == json!({"roots": []})),
        "{state}"
    );
}

#[test]
fn a_shared_backend_asking_for_roots_with_no_client_hears_none_quietly() {
    // As the official filesystem server does once initialized.
    let gw = Gateway::start(&json!({"fx": fixture(&["--roots-at-start"])}));
    let c = util::McpClient::connect(gw.port);
    let r = c.request(
        json!(1),
        "tools/call",
        json!({"name": "fx__state", "arguments": {}}),
    );
    let state = util::fixture_state(r.last().unwrap());
    assert_eq!(
        state["roots_answers"],
        json!([{"id": "roots-start", "result": {"roots": []}}]),
        "{state}"
    );
    assert!(
        !gw.stderr().contains("has no client to go to"),
        "{}",
        gw.stderr()
    );
}

#[test]
fn a_legacy_backends_requests_become_input_required_rounds() {
    let gw = asking_gateway();
    let caps = json!({"elicitation": {}});
    let tool = "test_input_required_result_multi_round";
    // Round 1: the backend asks for a name.
    let (status, r1) = call_with(&gw, 1, tool, json!({}), caps.clone());
    assert_eq!(status, 200, "{r1}");
    let result = &r1["result"];
    assert_eq!(result["resultType"], "input_required", "{r1}");
    let (key, input) = result["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert_eq!(input["method"], "elicitation/create", "{r1}");
    let state = result["requestState"].as_str().unwrap().to_string();
    // Round 2, under a new id: the name answers it, and the backend asks for a colour.
    let answer = json!({"inputResponses": {key: {"action": "accept", "content": {"name": "Ada"}}},
                        "requestState": state});
    let (_, r2) = call_with(&gw, 2, tool, answer.clone(), caps.clone());
    assert_eq!(r2["id"], 2, "{r2}");
    assert_eq!(r2["result"]["resultType"], "input_required", "{r2}");
    let state2 = r2["result"]["requestState"].as_str().unwrap().to_string();
    assert_ne!(state, state2, "each round its own state");
    // A state is good once: the first one again is refused.
    let (_, again) = call_with(&gw, 3, tool, answer, caps.clone());
    assert_eq!(again["error"]["code"], -32602, "{again}");
    // Tampered, or for another call: refused, and the waiting call stays for its retry.
    let key2 = r2["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let colour = json!({key2.clone(): {"action": "accept", "content": {"color": "green"}}});
    let tampered = json!({"inputResponses": colour, "requestState": format!("{state2}-TAMPERED")});
    assert_eq!(
        call_with(&gw, 4, tool, tampered, caps.clone()).1["error"]["code"],
        -32602
    );
    let elsewhere = json!({"inputResponses": colour, "requestState": state2});
    let (_, wrong) = call_with(
        &gw,
        5,
        "test_input_required_result_sampling",
        elsewhere.clone(),
        caps.clone(),
    );
    assert!(
        wrong["error"]["message"]
            .as_str()
            .unwrap()
            .contains("belongs to tools/call"),
        "{wrong}"
    );
    let other = json!({"inputResponses": colour, "requestState": "other-9000.feedface"});
    let (_, foreign) = call_with(&gw, 6, tool, other, caps.clone());
    assert!(
        foreign["error"]["message"]
            .as_str()
            .unwrap()
            .contains("instance 'other-9000'"),
        "{foreign}"
    );
    // Round 3: the colour completes the call, answered under the retry's id.
    let (_, done) = call_with(&gw, 7, tool, elsewhere, caps.clone());
    assert_eq!(done["id"], 7, "{done}");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert_eq!(
        done["result"]["content"][0]["text"], "Ada likes green",
        "{done}"
    );
    // Asked for what it did not declare alongside what it did: only the declared is asked.
    let (_, r) = call_with(
        &gw,
        8,
        "test_input_required_result_capabilities",
        json!({}),
        json!({"sampling": {}}),
    );
    let methods: Vec<&str> = r["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|i| i["method"].as_str())
        .collect();
    assert_eq!(methods, ["sampling/createMessage"], "{r}");
}

#[test]
fn the_python_sdk_pinned_to_2026_07_28_answers_input_required_through_the_gateway() {
    let gw = asking_gateway();
    let seen = run_client(
        &gw,
        &sdk_python(),
        "tests/python/sdk_modern_input.py",
        &gw.mcp_url,
        &[],
    );
    assert_eq!(seen["multi_round"], "Ada likes green", "{seen}");
    assert_eq!(
        seen["sampling"], "The model says: Paris, said Python",
        "{seen}"
    );
    assert_eq!(seen["asked"].as_array().map(Vec::len), Some(3), "{seen}");
}

/// Opens a `subscriptions/listen` stream (request `id`, asking for `notifications`) and
/// gives back a reader of its events, each the JSON of one `data:` line.
fn listen(gw: &Gateway, id: &str, notifications: Value) -> impl FnMut() -> Value {
    use std::io::{BufRead, BufReader, Write};
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
                      "params": {"_meta": meta(), "notifications": notifications}})
    .to_string();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: {VERSION}\r\nMcp-Method: subscriptions/listen\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut lines = BufReader::new(s).lines();
    move || loop {
        let line = lines.next().expect("the stream is open").expect("readable");
        if let Some(data) = line.strip_prefix("data: ") {
            return serde_json::from_str::<Value>(data).unwrap();
        }
    }
}

#[test]
fn a_listen_stream_acknowledges_then_carries_the_list_changes_asked_for() {
    let gw = asking_gateway();
    let mut next_event = listen(&gw, "sub-1", json!({"toolsListChanged": true}));
    let ack = next_event();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true})
    );
    // A prompt change is not asked for; a tool change is, and comes tagged.
    call_with(&gw, 1, "test_trigger_prompt_change", json!({}), json!({}));
    call_with(&gw, 2, "test_trigger_tool_change", json!({}), json!({}));
    let changed = next_event();
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-1"
    );
}

#[test]
fn the_python_sdk_pinned_to_2026_07_28_uses_the_stdio_front_end() {
    let backend = util::root().join("tests/fixtures/conformance_server.py");
    let config = json!({ "conf": {"command": "python3", "args": [backend], "prefix": ""} });
    let seen = util::run_stdio_client("tests/python/sdk_modern_stdio.py", &config);
    assert_eq!(seen["listed"], true, "{seen}");
    assert!(
        seen["simple"].as_str().unwrap().contains("simple text"),
        "{seen}"
    );
    assert_eq!(seen["multi_round"], "Ada likes green", "{seen}");
}

/// A legacy client's call of `tool`: the first text of its result.

#[test]
fn mirrored_arguments_are_checked_against_their_mcp_param_headers() {
    let gw = asking_gateway();
    let params = json!({"name": "test_custom_headers", "arguments": {"region": "us-west1"}, "_meta": meta()});
    let with = |region: Option<&str>| {
        let mut extra = vec![("Mcp-Name", "test_custom_headers")];
        if let Some(r) = region {
            extra.push(("Mcp-Param-Region", r));
        }
        let (status, _, answer) = modern(&gw, "tools/call", params.clone(), None, &extra);
        (status, answer)
    };
    let (status, ok) = with(Some("us-west1"));
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        ok["result"]["content"][0]["text"], "region: us-west1",
        "{ok}"
    );
    assert_eq!(
        with(Some("=?base64?dXMtd2VzdDE=?=")).0,
        200,
        "the base64 form"
    );
    for bad in [None, Some("eu-north1"), Some("=?base64?dXMtd2VzdDE?=")] {
        let (status, answer) = with(bad);
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (400, json!(-32020)),
            "{bad:?}: {answer}"
        );
    }
}

#[test]
fn on_stdio_a_2026_request_is_answered_in_order_and_cancelled_by_name() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let dir = util::TempDir::new();
    let config = dir.path().join("config.json");
    std::fs::write(&config, json!({ "fx": fixture(&[]) }).to_string()).unwrap();
    let mut gw = Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(["--stdio", "--config"])
        .arg(&config)
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = gw.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = gw.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap_or_default());
        }
    });
    let mut send = |v: Value| writeln!(stdin, "{v}").unwrap();
    let call = |id: &str, tool: &str, args: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": tool, "arguments": args, "_meta": meta()}})
    };
    let wait = std::time::Duration::from_secs(15);
    // A slow call, cancelled by name: no answer comes for it, and the backend hears of it.
    send(call(
        "slow",
        "fx__sleep",
        json!({"ms": 5000, "text": "late"}),
    ));
    std::thread::sleep(std::time::Duration::from_millis(500));
    send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow"}}),
    );
    send(call("state", "fx__state", json!({})));
    let answer = rx.recv_timeout(wait).expect("the state call's answer");
    assert_eq!(
        answer["id"], "state",
        "the cancelled call is not answered: {answer}"
    );
    assert_eq!(answer["result"]["resultType"], "complete", "{answer}");
    let seen: Value =
        serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    let deadline = std::time::Instant::now() + wait;
    let mut cancelled = seen["cancelled"].as_array().map(Vec::len).unwrap_or(0);
    while cancelled == 0 && std::time::Instant::now() < deadline {
        send(call("again", "fx__state", json!({})));
        let a = rx.recv_timeout(wait).expect("an answer");
        let seen: Value =
            serde_json::from_str(a["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
        cancelled = seen["cancelled"].as_array().map(Vec::len).unwrap_or(0);
    }
    assert_eq!(cancelled, 1, "the backend was told to stop the call");
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(6)).is_err(),
        "nothing more came"
    );
    drop(stdin);
    let _ = gw.wait();
}

#[test]
fn a_tool_made_as_a_task_passes_through_with_its_id_named_for_the_client() {
    let ev = util::everything();
    let gw = Gateway::start(&json!({ "ev": {"command": "node", "args": [ev]} }));
    let c = util::McpClient::connect(gw.port);
    let last = |answer: Vec<Value>| answer.last().cloned().unwrap_or_default();
    let list = last(c.request(json!(1), "tools/list", json!({})));
    let tool = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ev__simulate-research-query")
        .cloned()
        .unwrap_or_else(|| panic!("no task tool in {list}"));
    assert_eq!(tool["execution"]["taskSupport"], "required", "{tool}");
    let call = json!({"name": "ev__simulate-research-query", "arguments": {"topic": "gateways"},
                      "task": {"ttl": 60000}});
    let created = last(c.request(json!(2), "tools/call", call));
    let task_id = created["result"]["task"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("no task: {created}"))
        .to_string();
    assert!(
        task_id.starts_with("ev."),
        "named for the client: {task_id}"
    );
    // Polled until it is done (four stages of a second each), then its result.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = last(c.request(json!(3), "tasks/get", json!({"taskId": task_id})));
        assert_eq!(got["result"]["taskId"], task_id.as_str(), "{got}");
        if got["result"]["status"] == "completed" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never completed: {got}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let result = last(c.request(json!(4), "tasks/result", json!({"taskId": task_id})));
    let text = result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("gateways"), "{result}");
    let listed = last(c.request(json!(5), "tasks/list", json!({})));
    assert_eq!(
        listed["result"]["tasks"][0]["taskId"],
        task_id.as_str(),
        "{listed}"
    );
    // Another session's task is not this one's to ask about.
    let other = util::McpClient::connect(gw.port);
    let refused = last(other.request(json!(6), "tasks/get", json!({"taskId": task_id})));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
}

/// A `tasks/get` until `done` says the task got where the test waits for (within 30 s).
fn poll_task(gw: &Gateway, m: &Value, task: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let params = json!({"taskId": task, "_meta": m});
        let (_, _, got) = modern(gw, "tasks/get", params, Some(task), &[]);
        if done(&got["result"]) {
            return got["result"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never got there: {got}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_2026_client_runs_a_task_tool_of_server_everything_and_answers_its_question() {
    let ev = util::everything();
    let config = json!({ "ev": {"command": "node", "args": [ev]} });
    let gw = Gateway::start(&config);
    let tool = "ev__simulate-research-query";
    let mut m = meta();
    let call = |m: &Value| {
        let arguments = json!({"topic": "gateways", "ambiguous": true});
        let params = json!({"name": tool, "arguments": arguments, "_meta": m});
        modern(&gw, "tools/call", params, Some(tool), &[])
    };
    // The tool runs only as a task: a client that does not take tasks is told so.
    let (status, _, refused) = call(&m);
    assert_eq!(
        (status, refused["error"]["code"].as_i64()),
        (400, Some(-32021)),
        "{refused}"
    );
    let ext = &refused["error"]["data"]["requiredCapabilities"]["extensions"];
    assert!(
        ext.get("io.modelcontextprotocol/tasks").is_some(),
        "{refused}"
    );

    m["io.modelcontextprotocol/clientCapabilities"] =
        json!({"elicitation": {}, "extensions": {"io.modelcontextprotocol/tasks": {}}});
    let (_, _, created) = call(&m);
    let created = &created["result"];
    assert_eq!(created["resultType"], "task", "{created}");
    assert!(
        created["ttlMs"].as_u64().is_some() && created.get("task").is_none(),
        "{created}"
    );
    let task = created["taskId"].as_str().expect("a task id").to_string();

    // The backend's question (asked the 2025-11-25 way, on its tasks/result) waits in the
    // task; the answer goes back through tasks/update and the task runs to its end.
    let asked = poll_task(&gw, &m, &task, |r| r["status"] == "input_required");
    let inputs = asked["inputRequests"].as_object().expect("inputRequests");
    let (key, request) = inputs.iter().next().expect("one question");
    assert_eq!(request["method"], "elicitation/create", "{asked}");
    let answer = json!({"action": "accept", "content": {"interpretation": "network gateways"}});
    let params = json!({"taskId": task, "inputResponses": {key.as_str(): answer}, "_meta": m});
    let (_, _, ack) = modern(&gw, "tasks/update", params, Some(&task), &[]);
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    let done = poll_task(&gw, &m, &task, |r| r["status"] == "completed");
    let text = done["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("network gateways"),
        "the answer reached the backend: {done}"
    );

    // Another instance does not know the task, and says whose it is.
    let other = Gateway::start(&config);
    let params = json!({"taskId": task, "_meta": m});
    let (_, _, stranger) = modern(&other, "tasks/get", params, Some(&task), &[]);
    assert_eq!(stranger["error"]["code"], -32602, "{stranger}");
    let message = stranger["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("was made by gateway instance"),
        "{message}"
    );
}

#[test]
fn a_listen_stream_acknowledges_only_the_subscriptions_that_were_agreed() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let ack = listen(
        &gw,
        "sub-2",
        json!({"resourceSubscriptions": ["mem://shared", "nowhere://at/all"]}),
    )();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    // No backend serves the second URI: its subscription was refused, so it is not
    // acknowledged.
    assert_eq!(
        ack["params"]["notifications"],
        json!({"resourceSubscriptions": ["mem://shared"]}),
        "{ack}"
    );
}
