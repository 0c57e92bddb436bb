//! The front door under storms, floods, stalls and exhaustion: the gateway's own HTTP layer
//! (src/http/server.rs) keeps serving whatever clients do to it.

mod util;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use util::{Gateway, McpClient, SseClient, fixture, read_response, read_until_close};

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect to the gateway")
}

fn healthz(port: u16) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let (answer, _) = read_until_close(&mut s, Duration::from_secs(5));
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// A kept-alive connection for a client's POSTs, as SDK clients keep one (httpx, undici):
/// a server that parks such connections on its worker threads starves the others.
struct KeptAlive(BufReader<TcpStream>);

impl KeptAlive {
    fn open(port: u16) -> KeptAlive {
        let s = connect(port);
        s.set_read_timeout(Some(util::WAIT)).unwrap();
        KeptAlive(BufReader::new(s))
    }

    fn post(
        &mut self,
        path: &str,
        session: Option<&str>,
        body: &Value,
    ) -> (String, Vec<(String, String)>, String) {
        let body = body.to_string();
        let session = session
            .map(|s| format!("Mcp-Session-Id: {s}\r\n"))
            .unwrap_or_default();
        write!(
            self.0.get_mut(),
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{session}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write a request");
        read_response(&mut self.0)
    }
}

fn initialize_params() -> Value {
    json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "storm", "version": "1"}})
}

/// One legacy client: stream, then initialize and a call POSTed on one kept-alive
/// connection; returns what it holds open.
fn sse_client(port: u16, n: usize) -> Result<(SseClient, KeptAlive), String> {
    let c = SseClient::try_connect(port)?;
    let mut posts = KeptAlive::open(port);
    let mut send = |msg: Value| {
        let (status, _, body) = posts.post(&c.endpoint, None, &msg);
        (status == "HTTP/1.1 202 Accepted")
            .then_some(())
            .ok_or(format!("POST {msg}: {status} {body}"))
    };
    send(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params()}),
    )?;
    c.wait_response(&json!(0), util::WAIT)
        .ok_or("initialize: no answer")?;
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))?;
    let text = format!("sse {n}");
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fx__echo", "arguments": {"text": text}}}),
    )?;
    let r = c
        .wait_response(&json!(1), util::WAIT)
        .ok_or("call: no answer")?;
    if r["result"]["content"][0]["text"] != text {
        return Err(format!("call: {r}"));
    }
    Ok((c, posts))
}

/// One Streamable HTTP client: initialize and a call on one kept-alive connection, and a
/// GET stream held open.
fn mcp_client(port: u16, n: usize) -> Result<(KeptAlive, BufReader<TcpStream>), String> {
    let mut posts = KeptAlive::open(port);
    let init =
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params()});
    let (status, headers, body) = posts.post("/mcp", None, &init);
    if status != "HTTP/1.1 200 OK" {
        return Err(format!("initialize: {status} {body}"));
    }
    let session = headers
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .ok_or("initialize: no session id")?;
    let (status, _, _) = posts.post(
        "/mcp",
        Some(&session),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    if status != "HTTP/1.1 202 Accepted" {
        return Err(format!("notifications/initialized: {status}"));
    }
    let (status, stream) =
        util::raw_stream(port, "/mcp", &format!("Mcp-Session-Id: {session}\r\n"));
    if !status.contains(" 200 ") {
        return Err(format!("GET /mcp: {status}"));
    }
    let text = format!("mcp {n}");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fx__echo", "arguments": {"text": text}}});
    let (status, _, body) = posts.post("/mcp", Some(&session), &call);
    if status != "HTTP/1.1 200 OK" || !body.contains(&text) {
        return Err(format!("call: {status} {body}"));
    }
    Ok((posts, stream))
}

#[test]
fn a_reconnect_storm_of_200_clients_is_served_in_every_round() {
    const CLIENTS: usize = 200;
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let port = gw.port;
    for round in 1..=3 {
        // All start at once, and all hold their streams until every one is done.
        let start = Arc::new(Barrier::new(CLIENTS));
        let done = Arc::new(Barrier::new(CLIENTS));
        let (report, results) = crossbeam_channel::unbounded();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| {
                let (start, done, report) = (start.clone(), done.clone(), report.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let outcome = std::panic::catch_unwind(|| {
                        if n % 2 == 0 {
                            sse_client(port, n).map(|c| Box::new(c) as Box<dyn std::any::Any>)
                        } else {
                            mcp_client(port, n).map(|c| Box::new(c) as Box<dyn std::any::Any>)
                        }
                    });
                    let outcome = match outcome {
                        Ok(Ok(held)) => Ok(held),
                        Ok(Err(e)) => Err(e),
                        Err(panic) => Err(panic
                            .downcast_ref::<String>()
                            .cloned()
                            .unwrap_or_else(|| "panicked".into())),
                    };
                    let _ = report.send(outcome.as_ref().err().map(|e| format!("client {n}: {e}")));
                    done.wait();
                })
            })
            .collect();
        // Every client answers within 60 s (its steps wait 20 s at most), or the round fails.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut failures = Vec::new();
        let mut answered = 0;
        while answered < CLIENTS {
            match results.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(outcome) => {
                    answered += 1;
                    failures.extend(outcome);
                }
                Err(_) => break,
            }
        }
        assert!(
            failures.is_empty() && answered == CLIENTS,
            "round {round}: {} of {CLIENTS} clients were not served, {} still waiting after 60 s: {:?}",
            failures.len(),
            CLIENTS - answered,
            &failures[..failures.len().min(5)]
        );
        for c in clients {
            c.join().expect("client threads catch their panics");
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    assert_eq!(healthz(port), Some(200));
}

#[test]
fn connections_over_the_cap_get_503_at_once_and_the_port_keeps_serving() {
    // 256 descriptors leave room for 256 - 64 - 8 = 184 connections.
    let gw = Gateway::start_full(&json!({ "fx": fixture(&[]) }), &[], &[], Some(256));
    let mut held: Vec<TcpStream> = (0..200).map(|_| connect(gw.port)).collect();
    // The last ones were turned away with a 503 naming the limit, without waiting.
    let mut refused = 0;
    for s in held.iter_mut().rev().take(16) {
        let (answer, closed) = read_until_close(s, Duration::from_secs(5));
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("too many connections"), "{answer}");
            refused += 1;
        } else {
            assert!(
                closed && answer.is_empty(),
                "neither a 503 nor a close: {answer:?}"
            );
        }
    }
    assert!(refused > 0, "no connection over the cap got a 503");
    util::eventually("the log names the refusals", || {
        gw.stderr()
            .contains("refused a connection: too many connections")
    });
    drop(held);
    util::eventually("/healthz answers after the clients left", || {
        healthz(gw.port) == Some(200)
    });
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "fx__echo", json!({"text": "after the flood"}));
    assert_eq!(r["result"]["content"][0]["text"], "after the flood");
}

#[test]
fn running_out_of_descriptors_never_closes_the_port() {
    // A cap above what 128 descriptors allow: accept itself fails with EMFILE.
    let gw = Gateway::start_full(
        &json!({ "fx": fixture(&[]) }),
        &["--max-connections", "1000"],
        &[],
        Some(128),
    );
    let held: Vec<TcpStream> = (0..150).map(|_| connect(gw.port)).collect();
    util::eventually("the accept error is logged", || {
        gw.stderr().contains("cannot accept connections")
    });
    // While exhausted, a new client is told so (or closed), not left hanging.
    let mut s = connect(gw.port);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (answer, closed) = read_until_close(&mut s, Duration::from_secs(10));
    assert!(
        answer.starts_with("HTTP/1.1 503") || (closed && answer.is_empty()),
        "a client during exhaustion got {answer:?} (closed: {closed})"
    );
    if answer.starts_with("HTTP/1.1 503") {
        assert!(answer.contains("out of file descriptors"), "{answer}");
    }
    drop(s);
    drop(held);
    util::eventually("/healthz answers once descriptors are free", || {
        healthz(gw.port) == Some(200)
    });
    util::eventually("the recovery is logged", || {
        gw.stderr().contains("accepting connections again")
    });
    assert_eq!(
        gw.stderr().matches("cannot accept connections").count(),
        1,
        "one line per episode:\n{}",
        gw.stderr()
    );
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "fx__echo", json!({"text": "still listening"}));
    assert_eq!(r["result"]["content"][0]["text"], "still listening");
}

#[test]
fn slow_heads_slow_bodies_and_idle_connections_are_closed_at_their_timeouts() {
    let gw = Gateway::start_with(
        &json!({ "fx": fixture(&[]) }),
        &[
            "--header-timeout",
            "2",
            "--body-timeout",
            "2",
            "--connection-idle",
            "2",
        ],
    );
    let c = McpClient::connect(gw.port);
    let limit = Duration::from_secs(10);

    // A head dribbled a byte every 300 ms never completes: 408, then closed.
    let mut slow_head = connect(gw.port);
    let dribble = slow_head.try_clone().unwrap();
    let dribbler = std::thread::spawn(move || {
        let mut w = dribble;
        for b in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
            .iter()
            .cycle()
            .take(60)
        {
            if w.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    // A body that stops after 10 of its 100 bytes: 408, then closed.
    let mut slow_body = connect(gw.port);
    slow_body
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
        .unwrap();
    // A connection that says nothing, and one kept alive after one request.
    let mut silent = connect(gw.port);
    let mut kept = connect(gw.port);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 17];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");

    // Meanwhile another client is served.
    let r = c.call(json!(1), "fx__echo", json!({"text": "unhindered"}));
    assert_eq!(r["result"]["content"][0]["text"], "unhindered");

    let (answer, closed) = read_until_close(&mut slow_head, limit);
    assert!(
        closed && answer.starts_with("HTTP/1.1 408"),
        "slow head: {answer:?}"
    );
    assert!(
        answer.contains("request head did not arrive within 2 s"),
        "{answer}"
    );
    let (answer, closed) = read_until_close(&mut slow_body, limit);
    assert!(
        closed && answer.starts_with("HTTP/1.1 408"),
        "slow body: {answer:?}"
    );
    assert!(
        answer.contains("request body did not arrive within 2 s"),
        "{answer}"
    );
    let (answer, closed) = read_until_close(&mut silent, limit);
    assert!(closed && answer.is_empty(), "silent: {answer:?}");
    let (rest, closed) = read_until_close(&mut kept, limit);
    assert!(closed && rest.ends_with("ok"), "kept-alive: {rest:?}");
    let _ = dribbler.join();

    let r = c.call(json!(2), "fx__echo", json!({"text": "still served"}));
    assert_eq!(r["result"]["content"][0]["text"], "still served");
    let metrics = util::http(gw.port, "GET", "/metrics", &[], b"").2;
    let timed_out: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mcp_gateway_http_connections_total{outcome=\"timed_out\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no timed_out count in\n{metrics}"));
    assert!(timed_out >= 2, "{metrics}");
}

#[test]
fn a_huge_content_length_gets_413_without_waiting_for_the_body() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let mut s = connect(gw.port);
    s.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 104857600\r\n\r\n0123456789")
        .unwrap();
    let (answer, closed) = read_until_close(&mut s, Duration::from_secs(10));
    assert!(closed, "the connection stays open after a 413: {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("over the 16777216-byte limit"), "{answer}");
    assert_eq!(healthz(gw.port), Some(200));
}

#[test]
fn chunked_bodies_expect_continue_and_pipelined_requests_are_served() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let s = connect(gw.port);
    s.set_read_timeout(Some(util::WAIT)).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
    .to_string();
    let (a, b) = init.split_at(init.len() / 2);
    // A chunked body in two chunks, with a chunk extension and a trailer.
    write!(
        w,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nX-Trailer: t\r\n\r\n",
        a.len(),
        b.len()
    )
    .unwrap();
    let (status, headers, body) = read_response(&mut r);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let session = headers
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .expect("a session id");
    let result: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        result["result"]["serverInfo"]["name"], "mcp-gateway",
        "{result}"
    );

    // Expect: 100-continue: the body goes only after the interim response.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "fx__echo", "arguments": {"text": "continued"}}})
    .to_string();
    write!(
        w,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        call.len()
    )
    .unwrap();
    let mut interim = String::new();
    r.read_line(&mut interim).unwrap();
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n");
    let mut blank = String::new();
    r.read_line(&mut blank).unwrap();
    w.write_all(call.as_bytes()).unwrap();
    let (status, _, body) = read_response(&mut r);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains("continued"), "{body}");

    // Two requests in one write: two answers, in order, on the same connection.
    w.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    )
    .unwrap();
    let (first, _, body) = read_response(&mut r);
    assert_eq!((first.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok"));
    let (second, _, _) = read_response(&mut r);
    assert_eq!(second, "HTTP/1.1 404 Not Found");

    // A malformed head gets 400 and the connection closes.
    w.write_all(b"GET /healthz HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n")
        .unwrap();
    let (status, headers, _) = read_response(&mut r);
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(
        headers.contains(&("connection".into(), "close".into())),
        "{headers:?}"
    );
}

#[test]
fn stdio_front_end_answers_bad_bytes_and_oversized_lines_and_serves_on() {
    let (mut child, _dir) =
        util::stdio_gateway(&json!({ "fx": fixture(&[]) }), std::process::Stdio::null());
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(
                b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"ping\", \"x\": \"\xff\xfe\"}\n",
            )
            .unwrap();
        let mut big = vec![b' '; 16 * 1024 * 1024 + 10];
        big.push(b'\n');
        stdin.write_all(&big).unwrap();
        stdin
            .write_all(b"{\"jsonrpc\": \"2.0\", \"id\": 2, \"method\": \"ping\"}\n")
            .unwrap();
        stdin // closed by the test once the answers are in
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut answers = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "stdout ended after {answers:?}"
        );
        answers.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    drop(writer.join().unwrap());
    assert_eq!(answers[0]["error"]["code"], -32700, "{answers:?}");
    assert!(
        answers[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not UTF-8"),
        "{answers:?}"
    );
    assert_eq!(answers[1]["error"]["code"], -32600, "{answers:?}");
    assert!(
        answers[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over the 16777216-byte limit"),
        "{answers:?}"
    );
    assert_eq!(answers[2], json!({"jsonrpc": "2.0", "id": 2, "result": {}}));
    let status = child.wait().unwrap();
    assert!(status.success(), "only the end of input ends it: {status}");
}

#[test]
fn a_legacy_client_that_hangs_up_has_its_call_cancelled_within_seconds() {
    // The default 15 s keep-alive: the hang-up must be noticed without a write.
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let c = gw.connect();
    c.initialize();
    let endpoint = c.endpoint.clone();
    c.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "fx__sleep", "arguments": {"ms": 30000}}}));
    let watcher = McpClient::connect(gw.port);
    let cancelled = || {
        let r = watcher.call(json!("s"), "fx__state", json!({}));
        util::fixture_state(&r)["cancelled"]
            .as_array()
            .map_or(0, Vec::len)
    };
    // Time for the call to reach the backend.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cancelled(), 0);
    c.close();
    let closed = Instant::now();
    let deadline = closed + Duration::from_secs(5);
    while cancelled() == 0 {
        assert!(
            Instant::now() < deadline,
            "the call was not cancelled within 5 s of the client hanging up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _, body) = util::http(gw.port, "POST", &endpoint, &[], b"{}");
    assert_eq!(status, 404, "a POST to the closed session: {body}");
}

/// A Streamable HTTP session that has sent only initialize; its id.
fn initialize_only(port: u16) -> Result<String, String> {
    let init =
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params()});
    let (status, headers, body) = McpClient::post(port, None, &[], &init);
    if status != 200 {
        return Err(format!("{status} {body}"));
    }
    Ok(headers
        .into_iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v)
        .expect("a session id"))
}

/// The status of a notification to a Streamable HTTP session: 202 while it lasts, 404
/// once ended (a notification is no request, so it does not make the session used).
fn notify_status(port: u16, session: &str) -> u16 {
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    McpClient::post(port, Some(session), &[], &note).0
}

#[test]
fn sessions_that_never_send_a_request_are_ended_and_make_room_at_the_cap() {
    // Unused sessions end after 8 s; at the cap, one unused for 2 s (a quarter) makes room.
    let gw = Gateway::start_with(
        &json!({ "fx": fixture(&[]) }),
        &["--session-unused", "8", "--max-sessions", "4"],
    );
    // In use: a request after initialize, on each transport.
    let used = McpClient::connect(gw.port);
    let r = used.call(json!(1), "fx__echo", json!({"text": "in use"}));
    assert_eq!(r["result"]["content"][0]["text"], "in use");
    let legacy_used = gw.connect();
    legacy_used.initialize();
    assert!(!legacy_used.tool_names().is_empty());
    // Unused: initialize only; then, 2.5 s later, a legacy stream that never initializes.
    let idle = initialize_only(gw.port).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let legacy_idle = gw.connect();
    let endpoint = legacy_idle.endpoint.clone();
    // At the cap (4), a new client is let in by ending the session unused for 2 s; the
    // younger unused one keeps its time.
    let newcomer = initialize_only(gw.port).expect("a new session at the cap");
    assert_eq!(notify_status(gw.port, &idle), 404);
    assert!(
        gw.wait_stderr("made room for a new client at the 4-session limit"),
        "{}",
        gw.stderr()
    );
    // A notification keeps the legacy stream's session open but does not make it used.
    let note = br#"{"jsonrpc": "2.0", "method": "notifications/initialized"}"#;
    assert_eq!(util::http(gw.port, "POST", &endpoint, &[], note).0, 202);
    // After --session-unused, unused sessions of both transports are ended.
    util::eventually("the unused sessions are ended", || {
        notify_status(gw.port, &newcomer) == 404
            && util::http(gw.port, "POST", &endpoint, &[], b"{}").0 == 404
    });
    assert!(
        gw.wait_stderr("no request but initialize in 8 s"),
        "{}",
        gw.stderr()
    );
    // Sessions in use stay; with every session in use, a new one gets 503.
    let r = used.call(json!(2), "fx__echo", json!({"text": "still in use"}));
    assert_eq!(r["result"]["content"][0]["text"], "still in use");
    let r = legacy_used.call(json!(3), "fx__echo", json!({"text": "legacy too"}));
    assert_eq!(r["result"]["content"][0]["text"], "legacy too");
    let more: Vec<McpClient> = (0..2).map(|_| McpClient::connect(gw.port)).collect();
    for (i, c) in more.iter().enumerate() {
        let r = c.call(json!(i), "fx__echo", json!({"text": "more"}));
        assert_eq!(r["result"]["content"][0]["text"], "more");
    }
    let refused = initialize_only(gw.port).expect_err("no room: every session is in use");
    assert!(refused.starts_with("503"), "{refused}");
}

#[test]
fn payloads_no_backend_can_read_are_answered_at_once() {
    let gw = Gateway::start(&json!({
        "fx": fixture(&[]),
        "strict": fixture(&["--max-depth", "20"]),
    }));
    let c = McpClient::connect(gw.port);
    let post = |body: &str| {
        let headers = [
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Mcp-Session-Id", c.session.as_str()),
        ];
        let (status, _, text) = util::http(gw.port, "POST", "/mcp", &headers, body.as_bytes());
        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (status, answer)
    };
    let call = |id: u32, tool: &str, args: &str| {
        format!(
            r#"{{"jsonrpc": "2.0", "id": {id}, "method": "tools/call", "params": {{"name": "{tool}", "arguments": {args}}}}}"#
        )
    };
    // A lone surrogate: refused by the gateway, naming it, with the request's id.
    let (status, answer) = post(&call(1, "fx__echo", r#"{"text": "\ud800"}"#));
    assert_eq!(
        (status, &answer["id"], &answer["error"]["code"]),
        (400, &json!(1), &json!(-32700)),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lone surrogate escape \\ud800"),
        "{answer}"
    );
    // Nesting past the documented 100 levels.
    let deep = format!(
        r#"{{"text": "x", "deep": {}{}}}"#,
        "[".repeat(150),
        "]".repeat(150)
    );
    let (status, answer) = post(&call(2, "fx__echo", &deep));
    assert_eq!(
        (status, &answer["id"], &answer["error"]["code"]),
        (400, &json!(2), &json!(-32602)),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deeper than 100 levels"),
        "{answer}"
    );
    // Within the gateway's limit but past the backend's: its id-less parse error reaches the
    // one request in flight on it at once, not at the 120 s timeout.
    let nested = format!(
        r#"{{"text": "x", "deep": {}{}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    let started = Instant::now();
    let (status, answer) = post(&call(3, "strict__echo", &nested));
    assert_eq!(
        (status, &answer["id"], &answer["error"]["code"]),
        (200, &json!(3), &json!(-32700)),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nested deeper than 20"),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered after {:?}",
        started.elapsed()
    );
    // A pair is a character: it goes through.
    let r = c.call(json!(4), "fx__echo", json!({"text": "\u{1F600}"}));
    assert_eq!(r["result"]["content"][0]["text"], "\u{1F600}");
    let (status, answer) = post(&call(5, "fx__echo", r#"{"text": "\ud83d\ude00"}"#));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "\u{1F600}");
}

#[test]
fn a_client_that_never_reads_is_dropped_at_its_byte_budget() {
    const CALLS: usize = 60;
    const SIZE: usize = 4 * 1024 * 1024;
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let before = util::rss_kib(gw.pid());
    assert!(before > 0, "the gateway's VmRSS is read from /proc");
    // A legacy stream read only as far as its endpoint, then never again.
    let (stream, endpoint) = util::raw_sse_endpoint(gw.port, "");
    let post =
        |msg: Value| util::http(gw.port, "POST", &endpoint, &[], msg.to_string().as_bytes()).0;
    let init =
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params()});
    assert_eq!(post(init), 202);
    // 60 calls of 4 MiB each (240 MiB) for a client that reads nothing.
    let mut accepted = 0;
    for id in 1..=CALLS {
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "fx__big", "arguments": {"bytes": SIZE}}});
        match post(call) {
            202 => accepted += 1,
            404 => break, // dropped: its session takes no more POSTs
            other => panic!("POST {id}: {other}"),
        }
    }
    util::eventually("the client is dropped", || {
        gw.stderr()
            .contains("is not reading its stream (its queue is full, by count or by bytes)")
    });
    // The backend answers every call taken; the gateway drops what is for the gone client.
    std::thread::sleep(Duration::from_secs(3));
    let grown = util::rss_kib(gw.pid()).saturating_sub(before);
    // Its budget (16 + 4 MiB), the message being written and the socket buffers, not 240 MiB.
    assert!(grown < 100 * 1024, "RSS grew by {grown} KiB");
    eprintln!("{accepted} calls of {SIZE} bytes taken; RSS grew by {grown} KiB");
    drop(stream);
    // Everyone else is served.
    let c = McpClient::connect(gw.port);
    let r = c.call(json!(1), "fx__echo", json!({"text": "unaffected"}));
    assert_eq!(r["result"]["content"][0]["text"], "unaffected");
}

/// A `/sse` reply is written by the thread that receives it from the backend while the
/// stream's writer is idle, without waiting for the client: what the socket does not take
/// at once is left to the writer, which writes it before anything queued after it. A
/// client that reads nothing for a while, then everything, gets every event whole, once,
/// and in the order the backend answered.
#[test]
fn replies_a_full_socket_does_not_take_at_once_arrive_whole_and_in_order() {
    const CALLS: u64 = 44;
    let gw = Gateway::start(&json!({ "fx": fixture(&["--sequential"]) }));
    let (mut stream, endpoint) = util::raw_sse_endpoint(gw.port, "");
    let mut line = String::new();
    let post =
        |msg: Value| util::http(gw.port, "POST", &endpoint, &[], msg.to_string().as_bytes()).0;
    let init =
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params()});
    assert_eq!(post(init), 202);
    assert_eq!(
        post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
        202
    );
    // Four replies of 1 MiB among small ones, while the client reads nothing.
    for id in 1..=CALLS {
        let (name, args) = match id % 11 {
            0 => ("fx__big", json!({"bytes": 1 << 20})),
            _ => ("fx__echo", json!({"text": format!("call {id}")})),
        };
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": args}});
        assert_eq!(post(call), 202, "POST {id}");
    }
    std::thread::sleep(Duration::from_millis(500));
    stream
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut ids = Vec::new();
    while ids.last() != Some(&CALLS) {
        line.clear();
        assert!(stream.read_line(&mut line).unwrap() > 0, "the stream ended");
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let msg: Value = serde_json::from_str(data.trim_end()).unwrap_or_else(|e| {
            panic!(
                "an event that is not whole JSON ({e}): {}",
                &data[..80.min(data.len())]
            )
        });
        let id = msg["id"].as_u64().expect("a reply");
        let text = msg["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        match id % 11 {
            _ if id == 0 => {}
            0 => assert_eq!(text.len(), 1 << 20, "reply {id}"),
            _ => assert_eq!(text, format!("call {id}"), "reply {id}"),
        }
        ids.push(id);
    }
    assert_eq!(
        ids,
        (0..=CALLS).collect::<Vec<_>>(),
        "every reply once, in order"
    );
}

#[test]
fn a_flood_of_log_lines_is_limited_and_log_files_rotate() {
    let fx = util::root().join("tests/fixtures/stdio_server.py");
    // A backend that writes 5,000 lines of junk before it starts speaking the protocol.
    let junk = json!({"type": "stdio", "command": "bash",
        "args": ["-c", format!("yes junk | head -5000; exec python3 {}", fx.display())]});
    let gw = Gateway::start_with(
        &json!({ "junk": junk, "fx": fixture(&[]) }),
        &[
            "--log-level",
            "debug",
            "--log-max-size",
            "1",
            "--log-keep",
            "2",
        ],
    );
    let c = McpClient::connect(gw.port);
    // Debug lines carry whole messages: 8 results of 300 KB fill several MiB of log.
    for id in 0..8 {
        let r = c.call(json!(id), "fx__big", json!({"bytes": 300_000}));
        assert!(r["result"].is_object(), "{r}");
    }
    assert!(
        gw.wait_stderr("line(s) from src/backend/"),
        "no count of held-back lines in:\n{}",
        &gw.stderr()[..2000.min(gw.stderr().len())]
    );
    let junk_lines = gw
        .stderr()
        .matches("backend 'junk': skipped a stdout line")
        .count();
    assert!(junk_lines <= 40, "{junk_lines} junk warnings written");
    let logs = gw.dir.path().join("logs");
    let names: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("log_"))
        .collect();
    let has = |suffix: &str| names.iter().any(|n| n.ends_with(suffix));
    assert!(has(".log") && has(".log.1") && has(".log.2"), "{names:?}");
    assert!(!has(".log.3"), "more kept than --log-keep 2: {names:?}");
    for name in &names {
        let size = std::fs::metadata(logs.join(name)).unwrap().len();
        assert!(size < 1024 * 1024 + 400_000, "{name}: {size} bytes");
    }
}

#[test]
fn concurrent_large_bodies_are_bounded_in_memory() {
    const MAX: usize = 16 * 1024 * 1024;
    let gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--body-timeout", "20"]);
    let head = |len: usize| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    // Four bodies of the largest size, all but their last byte sent: 64 MiB being read.
    let held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = connect(gw.port);
            s.write_all(head(MAX).as_bytes()).unwrap();
            s.write_all(&vec![b' '; MAX - 1]).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // A fifth large body finds no room: 503 at once, not another 2 MiB held.
    let mut s = connect(gw.port);
    s.write_all(head(2 * 1024 * 1024).as_bytes()).unwrap();
    let _ = s.write_all(&vec![b' '; 2 * 1024 * 1024]);
    let (answer, _) = read_until_close(&mut s, Duration::from_secs(10));
    assert!(
        answer.starts_with("HTTP/1.1 503"),
        "{:?}",
        &answer[..answer.len().min(200)]
    );
    assert!(
        answer.contains("too many large requests at once"),
        "{answer}"
    );
    // Small requests still pass, and once the large ones are gone so do large ones.
    assert_eq!(healthz(gw.port), Some(200));
    drop(held);
    let init =
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": initialize_params()});
    let mut padded = init.to_string();
    padded.push_str(&" ".repeat(2 * 1024 * 1024));
    util::eventually("a large body is read again", || {
        let headers = [
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        util::http(gw.port, "POST", "/mcp", &headers, padded.as_bytes()).0 == 200
    });
}

#[test]
fn a_2026_client_that_closes_its_connection_has_its_call_cancelled_within_seconds() {
    // The default 15 s keep-alive: the close must be noticed without a write.
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "fx__sleep", "arguments": {"ms": 30000},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let mut s = connect(gw.port);
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: tools/call\r\nMcp-Name: fx__sleep\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let watcher = McpClient::connect(gw.port);
    let cancelled = || {
        let r = watcher.call(json!("s"), "fx__state", json!({}));
        util::fixture_state(&r)["cancelled"]
            .as_array()
            .map_or(0, Vec::len)
    };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(cancelled(), 0);
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cancelled() == 0 {
        assert!(
            Instant::now() < deadline,
            "the call was not cancelled within 5 s of the client closing its connection"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn connections_that_say_nothing_cannot_lock_out_clients_at_the_cap() {
    let gw = Gateway::start_with(
        &json!({ "fx": fixture(&[]) }),
        &["--max-connections", "20", "--token", "cap-test-token-value"],
    );
    // Twenty anonymous connections take every place and say nothing.
    let mut silent: Vec<TcpStream> = (0..20).map(|_| connect(gw.port)).collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(healthz(gw.port), Some(200), "a place while all are fresh");
    // Once they have held their places for a moment without a request, a client with a
    // request gets in: the oldest silent one makes room.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(healthz(gw.port), Some(200));
    let auth = [("Authorization", "Bearer cap-test-token-value")];
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let (status, _, body) = McpClient::post(gw.port, None, &auth, &init);
    assert_eq!(status, 200, "{body}");
    let (answer, closed) = read_until_close(&mut silent[0], Duration::from_secs(5));
    assert!(
        closed && answer.is_empty(),
        "the oldest silent one: {answer:?}"
    );
    // A client without the token is answered 401 and its connection closed: it holds no
    // place either.
    let mut s = connect(gw.port);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (answer, closed) = read_until_close(&mut s, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(closed && answer.contains("Connection: close"), "{answer}");
}

#[test]
fn a_slow_body_gets_its_timeout_once_and_a_stream_says_it_closes() {
    let gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--body-timeout", "2"]);
    // 10 of a small body's 100 bytes, to an endpoint that reads it and to one that does
    // not: each connection is answered and closed when the one body deadline passes (it
    // was given a second one while the unread rest was drained).
    for (path, status) in [("/mcp", "HTTP/1.1 408"), ("/nowhere", "HTTP/1.1 404")] {
        let mut s = connect(gw.port);
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{{\"jsonrpc\""
        )
        .unwrap();
        let sent = Instant::now();
        let (answer, closed) = read_until_close(&mut s, Duration::from_secs(10));
        assert!(answer.starts_with(status) && closed, "{path}: {answer:?}");
        assert!(
            sent.elapsed() < Duration::from_millis(3500),
            "{path}: closed after {:?}, not at the 2 s body deadline",
            sent.elapsed()
        );
    }
    // A stream's head says the connection closes with it.
    let (status, mut r) = util::raw_sse(gw.port, "");
    assert!(status.contains(" 200 "), "{status}");
    let headers = util::read_headers(&mut r);
    assert!(
        headers.contains(&("connection".into(), "close".into())),
        "{headers:?}"
    );
}
