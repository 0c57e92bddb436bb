//! Every transport pair, front × back: clients on `/sse` (HTTP+SSE) and `/mcp`
//! (Streamable HTTP) reaching `@modelcontextprotocol/server-everything` over stdio, over
//! legacy SSE (started by the gateway) and over Streamable HTTP; Streamable HTTP session
//! errors; remote backends that restart or never come up.

mod util;

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use util::{Gateway, McpClient, everything, root};

/// server-everything in its Streamable HTTP mode on a loopback port, stopped on drop.
struct HttpEverything {
    child: Child,
    port: u16,
}

impl HttpEverything {
    fn start_on(port: u16) -> HttpEverything {
        let child = Command::new("node")
            .arg(everything())
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server-everything");
        util::wait_listening(port);
        HttpEverything { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdio_spec() -> Value {
    json!({"type": "stdio", "command": "node", "args": [everything()]})
}

/// The gateway starts server-everything in SSE mode itself, then connects.
fn sse_spec() -> Value {
    let port = util::free_port();
    json!({"type": "sse", "url": format!("http://127.0.0.1:{port}/sse"),
           "command": "node", "args": [everything(), "sse"], "env": {"PORT": port.to_string()}})
}

fn http_spec(server: &HttpEverything) -> Value {
    json!({"type": "streamable-http", "url": server.url()})
}

/// Calls echo and a tool that reports progress through a raw SSE client.
fn check_over_sse(gw: &Gateway, backend: &str) {
    let c = gw.connect();
    c.initialize();
    let r = c.call(
        json!(1),
        &format!("{backend}__echo"),
        json!({"message": "over sse"}),
    );
    assert_eq!(r["result"]["content"][0]["text"], "Echo: over sse", "{r}");
    c.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": format!("{backend}__trigger-long-running-operation"), "arguments": {"duration": 0.2, "steps": 2},
        "_meta": {"progressToken": "p"}}}));
    let r = c.response(&json!(2));
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("completed"),
        "{r}"
    );
    let mut progress = 0;
    while let Some(m) = c.next_message(Duration::from_millis(100)) {
        if m["method"] == "notifications/progress" {
            assert_eq!(m["params"]["progressToken"], "p");
            progress += 1;
        }
    }
    assert_eq!(progress, 2);
}

/// The same through a raw Streamable HTTP client: progress comes on the POST's stream.
fn check_over_mcp(gw: &Gateway, backend: &str) {
    let c = McpClient::connect(gw.port);
    let r = c.call(
        json!(1),
        &format!("{backend}__echo"),
        json!({"message": "over mcp"}),
    );
    assert_eq!(r["result"]["content"][0]["text"], "Echo: over mcp", "{r}");
    let all = c.request(
        json!(2),
        "tools/call",
        json!({"name": format!("{backend}__trigger-long-running-operation"), "arguments": {"duration": 0.2, "steps": 2}, "_meta": {"progressToken": 9}}),
    );
    let progress: Vec<&Value> = all
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 2, "{all:?}");
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == 9));
    assert_eq!(all.last().unwrap()["id"], 2);
    // A reply with nothing before it comes back as plain JSON; one preceded by progress
    // on an SSE stream.
    let content_type = |body: Value| {
        let (status, headers, text) = McpClient::post(gw.port, Some(&c.session), &[], &body);
        assert_eq!(status, 200, "{text}");
        headers
            .into_iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v)
            .unwrap()
    };
    let echo = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": format!("{backend}__echo"), "arguments": {"message": "json"}}});
    assert_eq!(content_type(echo), "application/json");
    let long = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": format!("{backend}__trigger-long-running-operation"),
                   "arguments": {"duration": 0.2, "steps": 2}, "_meta": {"progressToken": 10}}});
    assert_eq!(content_type(long), "text/event-stream");
}

#[test]
fn sse_to_stdio() {
    check_over_sse(&Gateway::start(&json!({ "be": stdio_spec() })), "be");
}

#[test]
fn sse_to_sse() {
    check_over_sse(&Gateway::start(&json!({ "be": sse_spec() })), "be");
}

#[test]
fn sse_to_http() {
    let server = HttpEverything::start_on(util::free_port());
    check_over_sse(&Gateway::start(&json!({ "be": http_spec(&server) })), "be");
}

#[test]
fn mcp_to_stdio() {
    check_over_mcp(&Gateway::start(&json!({ "be": stdio_spec() })), "be");
}

#[test]
fn mcp_to_sse() {
    check_over_mcp(&Gateway::start(&json!({ "be": sse_spec() })), "be");
}

#[test]
fn mcp_to_http() {
    let server = HttpEverything::start_on(util::free_port());
    check_over_mcp(&Gateway::start(&json!({ "be": http_spec(&server) })), "be");
}

#[test]
fn official_sdks_over_both_transports_reach_all_three_backend_kinds() {
    let server = HttpEverything::start_on(util::free_port());
    let gw = Gateway::start(
        &json!({ "stdio": stdio_spec(), "sse": sse_spec(), "http": http_spec(&server) }),
    );
    let python = util::sdk_python();
    for url in [&gw.mcp_url, &gw.url] {
        for (program, script, who) in [
            (python.as_path(), "tests/python/sdk_transports.py", "python"),
            (
                Path::new("node"),
                "tests/node/sdk_transports.mjs",
                "typescript",
            ),
        ] {
            let seen = util::run_client(&gw, program, script, url, &["stdio", "sse", "http"]);
            for b in ["stdio", "sse", "http"] {
                assert_eq!(
                    seen[b],
                    format!("Echo: {who} via {b}"),
                    "{who} over {url}: {seen}"
                );
            }
        }
    }
}

#[test]
fn streamable_http_session_errors() {
    let gw = Gateway::start(&json!({ "be": stdio_spec() }));
    let port = gw.port;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let (status, _, body) = McpClient::post(port, None, &[], &ping);
    assert_eq!(status, 400, "no session header: {body}");
    assert!(
        !body.contains("jsonrpc"),
        "a plain 400, not a JSON-RPC error (modern clients then fall back): {body}"
    );
    let discover = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}});
    let (status, _, _) = McpClient::post(
        port,
        None,
        &[("MCP-Protocol-Version", "2025-11-25")],
        &discover,
    );
    assert_eq!(status, 400);
    let (status, _, _) =
        McpClient::post(port, Some("feedfacefeedfacefeedfacefeedface"), &[], &ping);
    assert_eq!(status, 404, "unknown session");
    let c = McpClient::connect(port);
    let (status, _, _) = McpClient::post(
        port,
        Some(&c.session),
        &[("MCP-Protocol-Version", "1999-01-01")],
        &ping,
    );
    assert_eq!(status, 400, "unsupported protocol version");
    let (status, _, body) = McpClient::post(
        port,
        Some(&c.session),
        &[("MCP-Protocol-Version", "2025-06-18")],
        &ping,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = McpClient::post(
        port,
        Some(&c.session),
        &[("Origin", "https://evil.example.com")],
        &ping,
    );
    assert_eq!(status, 403, "bad Origin");
    let (status, _, _) = McpClient::post(
        port,
        Some(&c.session),
        &[("Origin", "http://localhost:5173")],
        &ping,
    );
    assert_eq!(status, 200, "a loopback Origin is fine");
    let (status, _, _) = util::http(
        port,
        "GET",
        "/sse",
        &[("Origin", "http://evil.example.com")],
        b"",
    );
    assert_eq!(status, 403, "the legacy endpoint checks Origin too");
    // A Host that is not a loopback name (DNS rebinding): the raw request names it.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(s, "POST /mcp HTTP/1.1\r\nHost: evil.example.com\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let batch = json!([{"jsonrpc": "2.0", "id": 5, "method": "ping"}]);
    let (status, _, body) = McpClient::post(port, Some(&c.session), &[], &batch);
    assert_eq!(
        status, 400,
        "batches are for 2025-03-26 sessions only: {body}"
    );
    let (status, _, _) = util::http(
        port,
        "DELETE",
        "/mcp",
        &[("Mcp-Session-Id", &c.session)],
        b"",
    );
    assert_eq!(status, 200);
    let (status, _, _) = McpClient::post(port, Some(&c.session), &[], &ping);
    assert_eq!(status, 404, "a deleted session is gone");
}

#[test]
fn batches_work_in_a_2025_03_26_session() {
    let gw = Gateway::start(&json!({ "be": stdio_spec() }));
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}});
    let (status, headers, _) = McpClient::post(gw.port, None, &[], &init);
    assert_eq!(status, 200);
    let session = headers
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .unwrap()
        .1
        .clone();
    let batch = json!([
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "a", "method": "ping"},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "be__echo", "arguments": {"message": "batched"}}}
    ]);
    let (status, headers, body) = McpClient::post(gw.port, Some(&session), &[], &batch);
    assert_eq!(status, 200, "{body}");
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .unwrap()
        .1
        .clone();
    let answers = util::messages_in(&content_type, &body);
    let ids: Vec<&Value> = answers.iter().map(|m| &m["id"]).collect();
    assert!(
        ids.contains(&&json!("a")) && ids.contains(&&json!("b")),
        "{answers:?}"
    );
    let b = answers.iter().find(|m| m["id"] == "b").unwrap();
    assert_eq!(b["result"]["content"][0]["text"], "Echo: batched");
}

#[test]
fn get_stream_resumes_from_last_event_id() {
    let gw = Gateway::start(&json!({ "fx": util::fixture(&[]) }));
    let c = McpClient::connect(gw.port);
    // Resource updates belong to no request: they go to the GET stream, or wait for one.
    c.request(json!(1), "resources/subscribe", json!({"uri": "mem://fx"}));
    for i in 0..3 {
        c.call(
            json!(format!("touch{i}")),
            "fx__touch",
            json!({"uri": "mem://fx"}),
        );
    }
    let read_get = |last: Option<&str>| -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        use std::io::{Read, Write};
        let resume = last
            .map(|l| format!("Last-Event-ID: {l}\r\n"))
            .unwrap_or_default();
        write!(s, "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: {}\r\n{resume}\r\n", c.session).unwrap();
        let mut buf = vec![0; 65536];
        let mut text = String::new();
        while let Ok(n @ 1..) = s.read(&mut buf) {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        text
    };
    let first = read_get(None);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let ids: Vec<u64> = first
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|i| i.trim().parse().unwrap())
        .collect();
    assert!(
        !ids.is_empty(),
        "the buffered log message arrives when the GET stream opens: {first}"
    );
    // Reconnecting with the first id replays what came after it, and nothing before.
    let again = read_get(Some(&ids[0].to_string()));
    let replayed: Vec<u64> = again
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|i| i.trim().parse().unwrap())
        .collect();
    assert!(
        replayed.iter().all(|&i| i > ids[0]),
        "{replayed:?} after {}",
        ids[0]
    );
    assert_eq!(
        &replayed[..ids.len() - 1],
        &ids[1..],
        "the rest is replayed in order"
    );
    c.call(json!(3), "be__toggle-simulated-logging", json!({}));
}

#[test]
fn a_restarted_remote_backend_is_reconnected_transparently() {
    let port = util::free_port();
    let server = HttpEverything::start_on(port);
    let gw = Gateway::start(&json!({ "be": http_spec(&server) }));
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "be__echo", json!({"message": "before"}));
    assert_eq!(r["result"]["content"][0]["text"], "Echo: before");
    drop(server); // its sessions vanish with it
    let _server = HttpEverything::start_on(port);
    let r = c.call(json!(2), "be__echo", json!({"message": "after"}));
    assert_eq!(r["result"]["content"][0]["text"], "Echo: after", "{r}");
    assert!(gw.wait_stderr("no longer knows session"), "{}", gw.stderr());
}

#[test]
fn a_slow_local_sse_server_is_waited_for_and_a_failing_one_is_reported() {
    let port = util::free_port();
    let slow = json!({"type": "sse", "url": format!("http://127.0.0.1:{port}/sse"),
        "command": "bash", "args": ["-c", format!("sleep 1.5; exec node '{}' sse", everything().display())],
        "env": {"PORT": port.to_string()}});
    let broken = json!({"type": "sse", "url": format!("http://127.0.0.1:{}/sse", util::free_port()),
        "command": "bash", "args": ["-c", "echo 'cannot bind: address in use' >&2; exit 3"]});
    let never = json!({"type": "sse", "url": format!("http://127.0.0.1:{}/sse", util::free_port()),
        "command": "sleep", "args": ["30"], "startupTimeout": 1});
    let gw = Gateway::start(&json!({ "slow": slow, "broken": broken, "never": never }));
    let out = gw.stdout();
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("slow").contains("ready"), "{out}");
    assert!(
        line("broken").contains("its command exited (exit status: 3) before listening")
            && line("broken").contains("cannot bind: address in use"),
        "{out}"
    );
    assert!(
        line("never").contains("did not start listening") && line("never").contains("within 1 s"),
        "{out}"
    );
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "slow__echo", json!({"message": "late but fine"}));
    assert_eq!(r["result"]["content"][0]["text"], "Echo: late but fine");
}

#[test]
fn configured_headers_reach_a_remote_backend_and_client_credentials_never_do() {
    let port = util::free_port();
    let _server = Killed(
        Command::new("python3")
            .arg(root().join("tests/fixtures/http_headers_server.py"))
            .arg(port.to_string())
            .spawn()
            .unwrap(),
    );
    util::wait_listening(port);
    let gw = Gateway::start(
        &json!({ "h": {"type": "http", "url": format!("http://127.0.0.1:{port}/mcp"),
        "headers": {"X-Api-Key": "${MCP_GATEWAY_TEST_UNSET_KEY:-configured-secret}"}} }),
    );
    let c = McpClient::connect(gw.port);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "h__headers", "arguments": {}}});
    let (status, headers, text) = McpClient::post(
        gw.port,
        Some(&c.session),
        &[("Authorization", "Bearer client-token")],
        &body,
    );
    assert_eq!(status, 200, "{text}");
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .unwrap()
        .1
        .clone();
    let reply = util::messages_in(&content_type, &text).pop().unwrap();
    let seen: Value =
        serde_json::from_str(reply["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(seen["x-api-key"], "configured-secret", "{seen}");
    assert!(
        seen.get("authorization").is_none(),
        "the client's Authorization reached the backend: {seen}"
    );
    assert!(!seen.to_string().contains("client-token"), "{seen}");
    assert_eq!(seen["mcp-protocol-version"], "2025-11-25", "{seen}");
}

#[test]
fn an_https_backend_is_trusted_through_the_ca_bundle_named_by_ssl_cert_file() {
    let dir = util::TempDir::new();
    // Its own trust anchor, but not a CA: webpki refuses a CA certificate as a server's.
    let (cert, key) = util::self_signed_cert(
        dir.path(),
        "127.0.0.1",
        &[
            "subjectAltName=IP:127.0.0.1",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    let port = util::free_port();
    let _server = Killed(
        Command::new("python3")
            .arg(root().join("tests/fixtures/http_headers_server.py"))
            .arg(port.to_string())
            .arg("--tls")
            .args([&cert, &key])
            .spawn()
            .unwrap(),
    );
    util::wait_listening(port);
    let config = json!({ "h": {"type": "http", "url": format!("https://127.0.0.1:{port}/mcp"), "restart": "never"} });
    // Trusted: the certificate is the whole bundle named by SSL_CERT_FILE.
    let gw = Gateway::start_env(&config, &[], &[("SSL_CERT_FILE", cert.to_str().unwrap())]);
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "h__headers", json!({}));
    let text = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}\n{}\n{}", gw.stdout(), gw.stderr()));
    let seen: Value = serde_json::from_str(text).unwrap();
    assert_eq!(seen["host"], format!("127.0.0.1:{port}"), "{seen}");
    drop(gw);
    // Not trusted by the system's bundle: the backend fails, saying why.
    let gw = Gateway::start(&config);
    let out = gw.stdout();
    let line = out
        .lines()
        .find(|l| l.contains("FAILED"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.to_lowercase().contains("certificate"), "{out}");
}

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn idle_streamable_sessions_expire() {
    let gw = Gateway::start_with(
        &json!({ "fx": util::fixture(&[]) }),
        &["--session-idle", "1"],
    );
    let c = McpClient::connect(gw.port);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let (status, _, _) = McpClient::post(gw.port, Some(&c.session), &[], &ping);
    assert_eq!(status, 200);
    // Watch the log, not the session: a request would keep it alive.
    assert!(gw.wait_stderr("ended: idle for 1 s"), "{}", gw.stderr());
    let (status, _, _) = McpClient::post(gw.port, Some(&c.session), &[], &ping);
    assert_eq!(status, 404, "an expired session is gone");
}

#[test]
fn a_local_sse_server_stops_with_the_gateway() {
    let spec = sse_spec();
    let port: u16 = spec["env"]["PORT"].as_str().unwrap().parse().unwrap();
    let mut gw = Gateway::start(&json!({ "be": spec }));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(gw.signal_and_wait(libc::SIGTERM).success());
    util::eventually("the SSE server the gateway started outlived it", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
}

#[test]
fn session_ids_carry_the_instance_tag_and_another_instances_get_404() {
    let gw = Gateway::start_with(
        &json!({ "be": util::fixture(&[]) }),
        &["--instance-id", "gw-a"],
    );
    let legacy = gw.connect();
    let mcp = McpClient::connect(gw.port);
    for id in [legacy.session(), mcp.session.as_str()] {
        let (tag, secret) = id.split_once('.').unwrap_or_else(|| panic!("{id}"));
        assert_eq!(tag, "gw-a");
        assert!(
            secret.len() == 32 && secret.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }
    // A session another instance minted (as after a restart, or a balancer's mistake): 404,
    // so the client starts over with a new session.
    let elsewhere = format!("gw-b.{}", &mcp.session["gw-a.".len()..]);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let (status, _, _) = McpClient::post(gw.port, Some(&elsewhere), &[], &ping);
    assert_eq!(status, 404);
    let path = format!(
        "/messages?sessionId=gw-b.{}",
        &legacy.session()["gw-a.".len()..]
    );
    let (status, _, body) = util::http(gw.port, "POST", &path, &[], ping.to_string().as_bytes());
    assert_eq!(status, 404, "{body}");
    // Without --instance-id the tag is the host name and the port.
    let gw = Gateway::start(&json!({ "be": util::fixture(&[]) }));
    let mcp = McpClient::connect(gw.port);
    let tag = mcp.session.split_once('.').unwrap().0.to_string();
    assert!(tag.ends_with(&format!("-{}", gw.port)), "{tag}");
}
