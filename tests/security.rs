//! Who may use the gateway and what it gives away: bearer tokens, session limits,
//! duplicate request ids, and secrets kept out of the logs.

mod util;

use serde_json::json;
use std::io::BufRead;
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
fn at_the_session_limit_a_session_idle_without_a_stream_makes_room() {
    let gw = Gateway::start_with(
        &json!({ "fx": fixture(&[]) }),
        &["--max-sessions", "3", "--session-unused", "4"],
    );
    // Three sessions that each sent one ping: in use, and then quiet. One is a legacy
    // session, whose stream stays open.
    let legacy = gw.connect();
    legacy.initialize();
    legacy.request(json!(1), "ping", json!({}));
    let quiet: Vec<McpClient> = (0..2).map(|_| McpClient::connect(gw.port)).collect();
    for c in &quiet {
        c.request(json!(1), "ping", json!({}));
    }
    let newcomer = || McpClient::try_connect(gw.port);
    assert!(newcomer().is_err(), "a fourth session while all are fresh");
    // Idle for --session-unused with no stream open and nothing in flight, the quiet ones
    // make room, longest idle first; the legacy session, whose stream is open, stays.
    std::thread::sleep(Duration::from_millis(4500));
    let first = newcomer().expect("room made for a new client");
    let second = newcomer().expect("room made for another");
    assert!(newcomer().is_err(), "nothing idle left to make room");
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    for c in &quiet {
        let (status, _, body) = McpClient::post(gw.port, Some(&c.session), &[], &ping);
        assert_eq!(status, 404, "an evicted session: {body}");
    }
    assert_eq!(
        legacy.request(json!(2), "ping", json!({}))["result"],
        json!({})
    );
    for c in [&first, &second] {
        assert_eq!(
            c.request(json!(1), "ping", json!({}))[0]["result"],
            json!({})
        );
    }
    assert!(gw.wait_stderr("made room for a new client at the 3-session limit (idle for over 4 s"));
}

#[test]
fn a_duplicate_request_id_in_flight_is_refused() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let c = gw.connect();
    c.initialize();
    c.send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "fx__sleep", "arguments": {"ms": 500, "text": "first"}}}));
    c.send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "fx__echo", "arguments": {"text": "second"}}}));
    let first = c.next_message(util::WAIT).unwrap();
    util::assert_error(&first, -32600, "already in flight");
    let second = c.next_message(util::WAIT).unwrap();
    assert_eq!(second["result"]["content"][0]["text"], "first");
}

/// HTTPS on the front end, in a build with `--features tls` (tests/run runs this test that
/// way too).
#[cfg(feature = "tls")]
#[test]
fn tls_serves_https_with_the_given_certificate() {
    let dir = util::TempDir::new();
    let (cert, key) = util::self_signed_cert(dir.path(), "localhost", &[]);
    let gw = Gateway::start_with(
        &json!({ "fx": fixture(&[]) }),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        gw.stdout()
            .contains(&format!("https://127.0.0.1:{}/mcp", gw.port)),
        "{}",
        gw.stdout()
    );
    let tls = ureq::tls::TlsConfig::builder()
        .disable_verification(true)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .build()
        .into();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}});
    let mut response = agent
        .post(&format!("https://127.0.0.1:{}/mcp", gw.port))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .send(init.to_string())
        .expect("an HTTPS answer");
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["result"]["serverInfo"]["name"], "mcp-gateway");
}

#[cfg(not(feature = "tls"))]
#[test]
fn asking_for_tls_in_a_build_without_it_says_how_to_get_it() {
    let dir = util::TempDir::new();
    let config = dir.path().join("config.json");
    std::fs::write(&config, "{}").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args([
            "--port",
            "0",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--log-dir",
        ])
        .arg(dir.path().join("logs"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features tls"), "{err}");
}

#[test]
fn the_token_can_come_from_the_config() {
    let gw = Gateway::start(&json!({ "gateway": {"token": "config-token"}, "fx": fixture(&[]) }));
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}}});
    let (status, _, _) = McpClient::post(gw.port, None, &[], &init);
    assert_eq!(status, 401);
    let (status, _, _) = McpClient::post(
        gw.port,
        None,
        &[("Authorization", "Bearer config-token")],
        &init,
    );
    assert_eq!(status, 200);
}

#[test]
fn a_huge_header_gets_an_error_and_harms_nobody() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let c = McpClient::connect(gw.port);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(util::WAIT)).unwrap();
    use std::io::{Read, Write};
    let big = "a".repeat(1024 * 1024);
    let _ = write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {big}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    let r = c.call(json!(1), "fx__echo", json!({"text": "unharmed"}));
    assert_eq!(r["result"]["content"][0]["text"], "unharmed");
}

#[test]
fn forwarded_client_addresses_are_logged_only_from_trusted_proxies() {
    let sse_from = |gw: &Gateway| {
        let (status, stream) = util::raw_sse(
            gw.port,
            "X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\nX-Forwarded-Proto: https\r\n",
        );
        assert!(status.contains(" 200 "), "{status}");
        stream
    };
    let trusting = Gateway::start_with(
        &json!({ "fx": util::fixture(&[]) }),
        &["--trusted-proxy", "127.0.0.1"],
    );
    let _stream = sse_from(&trusting);
    assert!(
        trusting.wait_stderr("stream opened by 203.0.113.7 (https via 127.0.0.1:"),
        "{}",
        trusting.stderr()
    );
    // Not a trusted proxy: the header is anybody's claim; the peer address is logged.
    let wary = Gateway::start(&json!({ "fx": util::fixture(&[]) }));
    let _stream = sse_from(&wary);
    assert!(
        wary.wait_stderr("stream opened by 127.0.0.1:"),
        "{}",
        wary.stderr()
    );
    assert!(!wary.stderr().contains("203.0.113.7"), "{}", wary.stderr());
}

#[test]
fn a_trusted_proxy_can_put_a_path_prefix_before_the_legacy_endpoint() {
    let endpoint = |gw: &Gateway, prefix: &str| {
        let (status, mut stream) =
            util::raw_sse(gw.port, &format!("X-Forwarded-Prefix: {prefix}\r\n"));
        assert!(status.contains(" 200 "), "{status}");
        let mut line = String::new();
        while !line.starts_with("data: ") {
            line.clear();
            assert!(
                stream.read_line(&mut line).unwrap() > 0,
                "no endpoint event"
            );
        }
        line["data: ".len()..].trim().to_string()
    };
    let trusting = Gateway::start_with(
        &json!({ "fx": util::fixture(&[]) }),
        &["--trusted-proxy", "127.0.0.1"],
    );
    let e = endpoint(&trusting, "/team-a/gw/");
    assert!(e.starts_with("/team-a/gw/messages?sessionId="), "{e}");
    // What is not a plain path is ignored.
    for bad in ["team-a", "/a b", "/x\"><script>", "//evil.example", "/"] {
        let e = endpoint(&trusting, bad);
        assert!(e.starts_with("/messages?sessionId="), "{bad}: {e}");
    }
    // From anyone else the header is ignored.
    let wary = Gateway::start(&json!({ "fx": util::fixture(&[]) }));
    let e = endpoint(&wary, "/team-a/gw");
    assert!(e.starts_with("/messages?sessionId="), "{e}");
}

/// The environment of each process the gateway started directly (its backends).
fn children_environments(pid: u32) -> Vec<Vec<String>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the gateway's threads");
    let mut children: Vec<String> = Vec::new();
    for task in tasks.flatten() {
        let listed = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(listed.split_whitespace().map(String::from));
    }
    children
        .iter()
        .filter_map(|child| std::fs::read(format!("/proc/{child}/environ")).ok())
        .map(|env| {
            env.split(|b| *b == 0)
                .filter(|v| !v.is_empty())
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect()
        })
        .collect()
}

#[test]
fn the_gateways_token_never_reaches_a_backends_environment() {
    let mut given = fixture(&[]);
    given["env"] =
        json!({"MCP_GATEWAY_TOKEN": "${MCP_GATEWAY_TOKEN}", "GW_SECRET": "${GW_SECRET}"});
    let config = json!({"gateway": {"token": "${GW_SECRET}"}, "fx": fixture(&[]), "given": given});
    let gw = Gateway::start_env(
        &config,
        &[],
        &[
            ("MCP_GATEWAY_TOKEN", "tok-from-env"),
            ("GW_SECRET", "tok-from-config"),
            ("GW_PLAIN", "kept"),
        ],
    );
    let envs = children_environments(gw.pid());
    assert_eq!(envs.len(), 2, "two backends: {envs:?}");
    let has = |env: &Vec<String>, var: &str| env.iter().any(|v| v == var);
    // Both keep the rest of the gateway's environment.
    assert!(envs.iter().all(|e| has(e, "GW_PLAIN=kept")), "{envs:?}");
    // Only the backend whose own env names them gets the secrets.
    let with_secrets = envs
        .iter()
        .filter(|e| has(e, "MCP_GATEWAY_TOKEN=tok-from-env") && has(e, "GW_SECRET=tok-from-config"))
        .count();
    let without = envs
        .iter()
        .filter(|e| {
            !e.iter()
                .any(|v| v.starts_with("MCP_GATEWAY_TOKEN=") || v.starts_with("GW_SECRET="))
        })
        .count();
    assert_eq!((with_secrets, without), (1, 1), "{envs:?}");
    // The token still guards the gateway.
    let (status, _, _) = util::http(gw.port, "GET", "/metrics", &[], b"");
    assert_eq!(status, 401);
    let (status, _, _) = util::http(
        gw.port,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer tok-from-env")],
        b"",
    );
    assert_eq!(status, 200);
}

/// initialize (declaring elicitation) and notifications/initialized on a legacy stream.
fn initialize_asking(c: &util::SseClient) {
    c.request(
        json!(0),
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
               "clientInfo": {"name": "asked", "version": "1"}}),
    );
    c.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
}

/// The next `elicitation/create` a client is sent within a second, if any.
fn question_for(c: &util::SseClient) -> Option<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while let Some(m) =
        c.next_message(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        if m["method"] == "elicitation/create" {
            return Some(m);
        }
    }
    None
}

#[test]
fn a_backends_question_never_reaches_another_sessions_client() {
    let gw = Gateway::start(&json!({ "shared": fixture(&["--asks"]) }));
    let alice = util::SseClient::connect(gw.port);
    let bob = util::SseClient::connect(gw.port);
    initialize_asking(&alice);
    initialize_asking(&bob);
    let ask = |c: &util::SseClient, id: u64, args: serde_json::Value, token: Option<&str>| {
        let mut params = json!({"name": "shared__ask", "arguments": args});
        if let Some(t) = token {
            params["_meta"] = json!({"progressToken": t});
        }
        c.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}));
    };
    // Both call the shared backend; Alice's question comes while Bob's call is in flight
    // too, and nothing in it says whose it is: nobody is asked, the backend is refused.
    ask(
        &alice,
        1,
        json!({"text": "ALICE-SALARY", "delay_ms": 300}),
        None,
    );
    bob.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                     "params": {"name": "shared__sleep", "arguments": {"ms": 1200}}}));
    let r = alice.response(&json!(1));
    let text = r["result"]["content"][0]["text"].as_str().unwrap_or("");
    assert!(
        text.starts_with("refused: ") && text.contains("does not say whose"),
        "{r}"
    );
    assert_eq!(
        bob.response(&json!(1))["result"]["content"][0]["text"],
        "slept"
    );
    assert!(
        question_for(&bob).is_none(),
        "Bob was asked Alice's question"
    );
    assert!(question_for(&alice).is_none());
    assert!(gw.wait_stderr("does not say whose it is"));
    // A question that names its call (the progress token the gateway gave the call) goes
    // to that call's client, however many are in flight.
    ask(
        &alice,
        2,
        json!({"text": "ALICE-SALARY", "delay_ms": 300, "name_call": true}),
        Some("a"),
    );
    ask(
        &bob,
        2,
        json!({"text": "BOB-BONUS", "name_call": true}),
        Some("b"),
    );
    for (c, mine) in [(&bob, "BOB-BONUS"), (&alice, "ALICE-SALARY")] {
        let q = question_for(c).unwrap_or_else(|| panic!("{mine}: not asked"));
        assert_eq!(
            q["params"]["message"],
            format!("question about {mine}"),
            "{q}"
        );
        c.send(&json!({"jsonrpc": "2.0", "id": q["id"],
                       "result": {"action": "accept", "content": {"answer": mine}}}));
    }
    for (c, mine) in [(&alice, "ALICE-SALARY"), (&bob, "BOB-BONUS")] {
        let r = c.response(&json!(2));
        assert_eq!(
            r["result"]["content"][0]["text"],
            format!("answered: {{\"answer\": \"{mine}\"}}"),
            "{r}"
        );
    }
    // A client that has not answered yet is not taken for the asker of a new question
    // while another session's call is in flight: that one is.
    ask(&alice, 4, json!({"text": "ALICE-SLOW"}), None);
    let slow = question_for(&alice).expect("Alice asked");
    std::thread::sleep(Duration::from_millis(200));
    ask(&bob, 4, json!({"text": "BOB-FAST"}), None);
    let q = question_for(&bob).expect("Bob asked");
    assert_eq!(q["params"]["message"], "question about BOB-FAST", "{q}");
    for (c, q) in [(&bob, &q), (&alice, &slow)] {
        c.send(&json!({"jsonrpc": "2.0", "id": q["id"], "result": {"action": "decline"}}));
        assert!(
            c.response(&json!(4))["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("answered")
        );
    }
    // One call in flight: its question goes to its client, as always.
    ask(&bob, 3, json!({"text": "BOB-ALONE"}), None);
    let q = question_for(&bob).expect("asked");
    bob.send(&json!({"jsonrpc": "2.0", "id": q["id"], "result": {"action": "decline"}}));
    let r = bob.response(&json!(3));
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("answered")
    );
}

#[test]
fn what_clients_and_backends_name_cannot_forge_log_lines_or_reach_the_terminal() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let forged =
        "evil\n12:00:00 [WARN] FORGED: config reloaded by admin\u{1b}]0;owned\u{7}\u{1b}[2J";
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": forged, "version": "1\r\n2"}}});
    let (status, _, _) = McpClient::post(gw.port, None, &[], &init);
    assert_eq!(status, 200);
    // A tool name and a URI the client makes up reach the log too (as unknown ones).
    let c = McpClient::connect(gw.port);
    c.request(
        json!(1),
        "tools/call",
        json!({"name": "x\n[ERROR] FORGED", "arguments": {}}),
    );
    c.request(
        json!(2),
        "resources/read",
        json!({"uri": "mem://\u{1b}[31mred"}),
    );
    assert!(gw.wait_stderr("initialize from 'evil\\n12:00:00"));
    let logs: String = std::fs::read_dir(gw.dir.path().join("logs"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    for (what, text) in [("stderr", gw.stderr()), ("the log file", logs)] {
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "an escape reached {what}"
        );
        assert!(
            text.lines()
                .all(|l| !l.starts_with("12:00:00") && !l.starts_with("[ERROR] FORGED")),
            "a line was forged in {what}:\n{text}"
        );
    }
}

#[test]
fn one_backends_secret_is_not_every_backends() {
    let mut keyed = fixture(&["--tag", "keyed"]);
    keyed["env"] = json!({"API_KEY": "${MY_SECRET}"});
    let mut narrow = fixture(&["--tag", "narrow"]);
    narrow["inheritEnv"] = json!(["GW_KEEP_*"]);
    let config = json!({
        "keyed": keyed,
        "other": fixture(&["--tag", "other"]),
        "narrow": narrow,
        "sh": {"type": "builtin", "server": "bash"},
    });
    let gw = Gateway::start_env(
        &config,
        &[],
        &[
            ("MY_SECRET", "my-secret-value"),
            ("GW_KEEP_ME", "kept"),
            ("GW_OTHER", "plain"),
        ],
    );
    let envs = children_environments(gw.pid());
    assert_eq!(envs.len(), 4, "four backends: {envs:?}");
    let has = |env: &Vec<String>, var: &str| env.iter().any(|v| v == var);
    let named = |var: &str| envs.iter().filter(|e| has(e, var)).count();
    // The secret reaches only the backend that names it, under the name it gives it.
    assert_eq!(named("API_KEY=my-secret-value"), 1, "{envs:?}");
    assert!(
        envs.iter()
            .all(|e| !e.iter().any(|v| v.starts_with("MY_SECRET="))),
        "{envs:?}"
    );
    // inheritEnv: the narrow backend gets the basic variables and what it names, nothing
    // else; the others inherit the rest of the gateway's environment.
    assert_eq!(named("GW_KEEP_ME=kept"), 4, "{envs:?}");
    assert_eq!(named("GW_OTHER=plain"), 3, "{envs:?}");
    assert!(
        envs.iter()
            .all(|e| e.iter().any(|v| v.starts_with("PATH=")))
    );
    // A command the built-in shell runs does not see the secret either.
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "sh__bash", json!({"command": "env"}));
    let out = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(out.contains("GW_OTHER=plain"), "{r}");
    assert!(!out.contains("my-secret-value"), "{out}");
}
