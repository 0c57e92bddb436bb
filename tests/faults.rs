//! The fault suite: backends and clients misbehaving, and the gateway still answering
//! every request exactly once and leaking nothing (threads, descriptors, processes).

mod util;

use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use util::{Gateway, SseClient, fixture};

#[test]
fn a_backend_that_fails_at_start_recovers_once_fixed() {
    let dir = util::TempDir::new();
    let flag = dir.path().join("fixed");
    let gw = Gateway::start(
        &json!({ "fx": fixture(&["--require-file", flag.to_str().unwrap()]), "ok": fixture(&[]) }),
    );
    assert!(
        gw.stdout().contains("FAILED") && gw.stdout().contains("restarting in 1 s"),
        "{}",
        gw.stdout()
    );
    let c = gw.connect();
    c.initialize();
    assert!(c.tool_names().iter().all(|n| n.starts_with("ok__")));
    std::fs::write(&flag, "").unwrap();
    assert!(gw.wait_stdout("ready again"), "{}", gw.stdout());
    let note = c
        .next_message(util::WAIT)
        .expect("list_changed when it comes back");
    assert_eq!(note["method"], "notifications/tools/list_changed");
    let r = c.call(json!(1), "fx__echo", json!({"text": "recovered"}));
    assert_eq!(r["result"]["content"][0]["text"], "recovered");
}

#[test]
fn grandchildren_do_not_outlive_a_restart() {
    let dir = util::TempDir::new();
    let pidfile = dir.path().join("pids");
    let gw = Gateway::start(&json!({ "fx": fixture(&["--pidfile", pidfile.to_str().unwrap()]) }));
    let pids: Vec<u32> = std::fs::read_to_string(&pidfile)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let c = gw.connect();
    c.initialize();
    c.call(json!(1), "fx__crash", json!({}));
    assert!(gw.wait_stdout("ready again"), "{}", gw.stdout());
    for pid in pids {
        assert!(
            !util::alive(pid),
            "process {pid} of the crashed instance is still alive"
        );
    }
}

#[test]
fn a_client_that_never_reads_is_dropped_and_nobody_else_waits() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let port = gw.port;
    // A stream nobody reads: its socket buffers fill, then its queue.
    let mut stuck = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{BufRead, BufReader, Write};
    write!(stuck, "GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stuck.try_clone().unwrap());
    let mut endpoint = String::new();
    while !endpoint.contains("sessionId=") {
        endpoint.clear();
        reader.read_line(&mut endpoint).unwrap();
    }
    let path = endpoint.trim().trim_start_matches("data: ").to_string();
    let healthy = gw.connect();
    healthy.initialize();
    let mut dropped = false;
    for i in 0..2000 {
        let big = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "fx__big", "arguments": {"bytes": 65536}}}).to_string();
        let (status, _, _) = util::http(port, "POST", &path, &[], big.as_bytes());
        if status == 404 {
            dropped = true;
            break;
        }
        if i % 200 == 0 {
            let r = healthy.call(json!(i), "fx__echo", json!({"text": "unaffected"}));
            assert_eq!(r["result"]["content"][0]["text"], "unaffected");
        }
    }
    // The answers pile up as the backend produces them: wait for the gateway to give up.
    assert!(
        dropped || gw.wait_stderr("is not reading its stream"),
        "the client that never reads was never dropped\n{}",
        gw.stderr()
    );
    let (status, _, _) = util::http(port, "POST", &path, &[], b"{}");
    assert_eq!(status, 404, "its session is gone");
    let r = healthy.call(json!("after"), "fx__echo", json!({"text": "still fine"}));
    assert_eq!(r["result"]["content"][0]["text"], "still fine");
}

/// 50 clients × 10 calls over two backends while one of them is crashed three times;
/// every call gets exactly one answer. Returns the gateway's threads and descriptors once
/// things have settled.
fn round(gw: &Gateway) -> (usize, usize) {
    const CLIENTS: usize = 50;
    const CALLS: usize = 10;
    let port = gw.port;
    let stop = Arc::new(AtomicBool::new(false));
    let crasher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let c = SseClient::connect(port);
            c.initialize();
            let mut crashes = 0;
            while !stop.load(Ordering::SeqCst) && crashes < 3 {
                c.send(&json!({"jsonrpc": "2.0", "id": format!("crash{crashes}"), "method": "tools/call", "params": {"name": "fx__crash", "arguments": {}}}));
                let _ = c.response(&json!(format!("crash{crashes}")));
                crashes += 1;
                std::thread::sleep(Duration::from_millis(700));
            }
            c.close();
            crashes
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            std::thread::spawn(move || {
                let c = SseClient::connect(port);
                c.initialize();
                let mut answered = HashSet::new();
                for i in 0..CALLS {
                    let backend = if i % 2 == 0 { "fx" } else { "other" };
                    let r = c.call(
                        json!(i),
                        &format!("{backend}__echo"),
                        json!({"text": format!("{n}-{i}")}),
                    );
                    match (&r["result"], &r["error"]) {
                        (Value::Object(res), _) => {
                            assert_eq!(res["content"][0]["text"], format!("{n}-{i}"))
                        }
                        (_, Value::Object(e)) => {
                            assert!(backend == "fx", "only the crashing backend may fail: {e:?}")
                        }
                        _ => panic!("neither result nor error: {r}"),
                    }
                    assert!(answered.insert(i), "two answers for call {i}");
                }
                assert!(
                    c.next_message(Duration::from_millis(200)).is_none(),
                    "an extra answer arrived"
                );
                c.close();
                answered.len()
            })
        })
        .collect();
    let total: usize = clients.into_iter().map(|t| t.join().expect("client")).sum();
    stop.store(true, Ordering::SeqCst);
    assert!(crasher.join().unwrap() >= 1);
    assert_eq!(total, CLIENTS * CALLS, "every call got exactly one answer");
    // Back up, and every closed client noticed (two 1 s keep-alive periods).
    let c = gw.connect();
    c.initialize();
    util::eventually("fx never came back", || {
        !c.call(json!("up"), "fx__echo", json!({"text": "up"}))["result"].is_null()
    });
    c.close();
    std::thread::sleep(Duration::from_millis(2500));
    util::resources(gw.pid())
}

#[test]
fn fifty_clients_calling_while_a_backend_keeps_crashing_each_get_one_answer_per_call() {
    // A 1 s keep-alive notices closed clients quickly, for the leak check.
    let gw = Gateway::start_with(
        &json!({ "fx": fixture(&[]), "other": fixture(&[]) }),
        &["--sse-keepalive", "1"],
    );
    let first = round(&gw);
    let second = round(&gw);
    // Steady state: a second round of the same load leaves no more threads or descriptors
    // than the first (a leak per client or call would be hundreds).
    util::settles_to(gw.pid(), (first.0 + 2, first.1 + 2))
        .unwrap_or_else(|e| panic!("leaked after round two ({second:?}): {e}"));
}

#[test]
fn a_client_that_vanishes_mid_call_has_its_calls_cancelled() {
    let gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--sse-keepalive", "1"]);
    let c = gw.connect();
    c.initialize();
    c.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "fx__sleep", "arguments": {"ms": 5000}}}));
    c.close();
    let watcher = gw.connect();
    watcher.initialize();
    let mut state = Value::Null;
    let cancelled = util::poll(|| {
        state = serde_json::from_str(
            watcher.call(json!("s"), "fx__state", json!({}))["result"]["content"][0]["text"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        state["cancelled"].as_array().is_some_and(|c| c.len() == 1)
    });
    assert!(
        cancelled,
        "the vanished client's call was never cancelled: {state}"
    );
}

#[test]
fn sessions_beyond_the_open_file_limit_get_503_and_the_gateway_lives_on() {
    // 160 descriptors: (160 - 64 reserved - 8 for the one backend) / 4 per session = 22.
    let gw = Gateway::start_full(
        &json!({ "fx": fixture(&[]) }),
        &["--sse-keepalive", "1"],
        &[],
        Some(160),
    );
    assert!(
        gw.wait_stderr("serving at most 22 sessions, not 10000: the open-file limit is 160"),
        "{}",
        gw.stderr()
    );
    let open_stream = || util::raw_sse(gw.port, "");
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let (status, r) = open_stream();
        if status.contains(" 200 ") {
            open.push(r);
        } else {
            assert!(status.contains(" 503 "), "{status}");
            refused += 1;
        }
    }
    assert_eq!((open.len(), refused), (22, 38));
    drop(open);
    // Still serving, and sessions are free again once those streams closed (each writer
    // notices at its next keep-alive).
    util::eventually("a session can be opened again", || {
        open_stream().0.contains(" 200 ")
    });
    let c = SseClient::connect(gw.port);
    c.initialize();
    let r = c.call(json!(1), "fx__echo", json!({"text": "alive"}));
    assert_eq!(r["result"]["content"][0]["text"], "alive");
}

#[test]
fn a_drain_refuses_new_sessions_and_lets_calls_in_flight_finish() {
    let mut gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--drain-timeout", "20"]);
    let c = gw.connect();
    c.initialize();
    let m = util::McpClient::connect(gw.port);
    let (status, mut get_stream) = util::raw_stream(
        gw.port,
        "/mcp",
        &format!("Mcp-Session-Id: {}\r\n", m.session),
    );
    assert!(status.contains(" 200 "), "{status}");
    c.send(
        &json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call",
        "params": {"name": "fx__sleep", "arguments": {"ms": 1500, "text": "finished"}}}),
    );
    in_flight(&gw, 1);
    gw.signal(libc::SIGTERM);
    assert!(
        gw.wait_stdout("draining: new sessions get 503"),
        "{}",
        gw.stdout()
    );
    let (status, _, body) = util::http(gw.port, "GET", "/sse", &[], b"");
    assert_eq!(status, 503, "{body}");
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "late", "version": "1"}}});
    let (status, _, _) = util::McpClient::post(gw.port, None, &[], &init);
    assert_eq!(status, 503);
    let (status, _, body) = util::http(gw.port, "GET", "/readyz", &[], b"");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"draining\":true"), "{body}");
    // An open session takes no new request (404: start a new session elsewhere), but
    // still takes notifications and responses, which a call in flight may be waiting for.
    let (status, body) = c.post_raw(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "fx__echo", "arguments": {"text": "late"}}})
        .to_string(),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("draining"), "{body}");
    let (status, body) = c.post_raw(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "nothing"}})
            .to_string(),
    );
    assert_eq!(status, 202, "{body}");
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "fx__echo", "arguments": {"text": "late"}}});
    let (status, _, body) = util::McpClient::post(gw.port, Some(&m.session), &[], &call);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("draining"), "{body}");
    // Without a session it is the usual 400, draining or not.
    let (status, _, body) = util::McpClient::post(gw.port, None, &[], &call);
    assert_eq!(status, 400, "{body}");
    // The call in flight finishes normally, then the gateway stops by itself.
    let r = c.response(&json!("slow"));
    assert_eq!(r["result"]["content"][0]["text"], "finished", "{r}");
    assert!(gw.wait_exit().success());
    // Streams end with a hint to reconnect after a second.
    let mut rest = String::new();
    let _ = get_stream.read_to_string(&mut rest);
    assert!(rest.contains("retry: 1000"), "{rest}");
    // The console says what the drain turned away: /sse and initialize, and a call on
    // each transport.
    assert!(
        gw.stdout().contains(
            "drained: no call in flight; refused meanwhile: 2 new session(s), 2 new request(s) in open sessions"
        ),
        "{}",
        gw.stdout()
    );
}

#[test]
fn a_second_signal_ends_a_drain_at_once() {
    let mut gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--drain-timeout", "60"]);
    let c = gw.connect();
    c.initialize();
    c.send(
        &json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
        "params": {"name": "fx__sleep", "arguments": {"ms": 30000}}}),
    );
    in_flight(&gw, 1);
    gw.signal(libc::SIGTERM);
    assert!(gw.wait_stdout("draining:"), "{}", gw.stdout());
    assert!(gw.signal_and_wait(libc::SIGTERM).success());
    assert!(
        gw.stdout().contains("second signal: stopping now"),
        "{}",
        gw.stdout()
    );
    // The call still in flight is answered, not dropped.
    let r = c.response(&json!("long"));
    assert!(util::error_message(&r).contains("shutting down"), "{r}");
}

/// Waits until the gateway's metrics show `n` requests in flight.
fn in_flight(gw: &Gateway, n: usize) {
    util::eventually(&format!("{n} request(s) in flight"), || {
        util::http(gw.port, "GET", "/metrics", &[], b"")
            .2
            .contains(&format!("mcp_gateway_requests_in_flight {n}"))
    });
}

/// A POST that may meet a stopping gateway: Err when it cannot connect (it was never let
/// in), else the status and body (status 0: the connection closed without a response).
fn post_while_stopping(
    port: u16,
    path: &str,
    headers: &str,
    body: &str,
) -> Result<(u16, String), String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let sent = write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if sent.is_err() {
        return Err("the connection closed before the request was sent".into());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, text))
}

#[test]
fn a_sigterm_under_load_answers_every_request_that_was_let_in() {
    for trial in 0..3 {
        let mut gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
        let port = gw.port;
        let call = |id: usize| {
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": "fx__sleep", "arguments": {"ms": 10}}})
            .to_string()
        };
        // Legacy clients: every POST answered 202 must get its answer on the stream.
        let legacy: Vec<_> = (0..6)
            .map(|_| {
                std::thread::spawn(move || -> Result<usize, String> {
                    let c = SseClient::connect(port);
                    c.initialize();
                    for i in 1.. {
                        match post_while_stopping(port, &c.endpoint, "", &call(i)) {
                            Ok((202, _)) => {}
                            Ok((0, _)) => {
                                return Err(format!("POST {i}: closed without a response"));
                            }
                            Ok(_) | Err(_) => return Ok(i - 1),
                        }
                        if c.wait_response(&json!(i), Duration::from_secs(15))
                            .is_none()
                        {
                            return Err(format!("call {i} was let in (202) but never answered"));
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        // Streamable HTTP clients: every POST gets a response (an answer, or a refusal).
        let modern: Vec<_> = (0..6)
            .map(|_| {
                std::thread::spawn(move || -> Result<usize, String> {
                    let c = util::McpClient::connect(port);
                    let session = format!("Mcp-Session-Id: {}\r\n", c.session);
                    for i in 1.. {
                        match post_while_stopping(port, "/mcp", &session, &call(i)) {
                            Ok((200, text)) if text.contains(&format!("\"id\":{i}")) => {}
                            Ok((0, text)) => {
                                return Err(format!(
                                    "call {i}: closed without a response: {text:?}"
                                ));
                            }
                            Ok((200, text)) => return Err(format!("call {i}: {text}")),
                            Ok(_) | Err(_) => return Ok(i - 1),
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(800));
        gw.signal(libc::SIGTERM);
        assert!(gw.wait_exit().success());
        let mut calls = 0;
        for (kind, t) in legacy
            .into_iter()
            .map(|t| ("legacy", t))
            .chain(modern.into_iter().map(|t| ("/mcp", t)))
        {
            match t.join().expect("the client thread did not panic") {
                Ok(n) => calls += n,
                Err(e) => panic!("trial {trial}, a {kind} client: {e}\n{}", gw.stderr()),
            }
        }
        assert!(
            calls > 20,
            "trial {trial}: only {calls} calls before the signal"
        );
    }
}

#[test]
fn a_signal_to_every_process_at_once_warns_of_no_backend_exit() {
    // As systemd stops a unit: SIGTERM to the gateway and every backend at the same moment.
    // The backends ended by it are not failures, and the log says nothing of them above
    // debug (before: `[WARN] backend 'fx': exited (signal: 15 (SIGTERM))` for each).
    let mut gw = Gateway::start(&json!({
        "fx": fixture(&[]),
        "sh": {"type": "builtin", "server": "bash"},
    }));
    let mut all: Vec<u32> = util::descendants(gw.pid()).iter().map(|d| d.0).collect();
    assert!(all.len() >= 2, "{all:?}");
    all.push(gw.pid());
    for pid in all {
        // SAFETY: a signal to processes this test started.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    assert!(gw.wait_exit().success());
    let stderr = gw.stderr();
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("exited") && !l.starts_with("[DEBUG]")),
        "{stderr}"
    );
}
