//! What a client can make the gateway hold, and for how long: answers nobody reads, a
//! stdio client that reads late, and the tables one client token could fill for all.

mod util;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use util::{Gateway, McpClient, fixture};

/// A POST of `body` to the session on a connection of its own, its receive buffer small,
/// never read.
fn unread_post(port: u16, session: &str, body: &Value) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A small receive buffer (the kernel's loopback buffers would take 8 MiB otherwise).
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt on an open socket with a pointer to a c_int of the size given.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let body = body.to_string();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         Connection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    (&s).write_all(head.as_bytes()).unwrap();
    (&s).write_all(body.as_bytes()).unwrap();
    s
}

#[test]
fn answers_nobody_reads_are_held_within_a_budget_and_not_for_long() {
    // Writes must make progress every 3 s (the idle timeout, when under 10 s).
    let gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--connection-idle", "3"]);
    let c = McpClient::connect(gw.port);
    let pid = gw.pid();
    let idle = util::rss_kib(pid);
    // 40 connections each ask for an 8 MiB result and never read a byte of it.
    let big = |i: u64| {
        json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
               "params": {"name": "fx__big", "arguments": {"bytes": 8 << 20}}})
    };
    let sent = Instant::now();
    let unread: Vec<TcpStream> = (1..=40)
        .map(|i| unread_post(gw.port, &c.session, &big(i)))
        .collect();
    // What the gateway holds while they sit there: about the answers' budget (64 MiB),
    // not 40 answers of 8 MiB (before: 989 MB).
    let mut peak = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        peak = peak.max(util::rss_kib(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        peak < idle + 200 * 1024,
        "RSS rose from {idle} KiB to {peak} KiB with 40 unread 8 MiB answers"
    );
    // Meanwhile others are served.
    let r = c.call(json!("other"), "fx__echo", json!({"text": "served"}));
    assert_eq!(r["result"]["content"][0]["text"], "served", "{r}");
    // A write that makes no progress for a period ends its connection: the gateway lets go
    // of every unread answer (the connections' count goes back down) without a byte read.
    let open = || {
        let (_, _, text) = util::http(gw.port, "GET", "/metrics", &[], b"");
        text.lines()
            .find_map(|l| l.strip_prefix("mcp_gateway_http_connections "))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    };
    // The answers within the budget are still being written (the rest were refused).
    let now_open = open();
    assert!((5..=12).contains(&now_open), "{now_open} connections open");
    let deadline = sent + Duration::from_secs(60);
    while open() > 2 {
        assert!(
            Instant::now() < deadline,
            "{} connections still open a minute after their answers stopped moving (3 s)",
            open()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(unread);
    // Those whose answers did not fit the budget got a short error instead.
    assert!(
        gw.wait_stderr("was not sent: answers of"),
        "no answer was refused by the budget"
    );
}

#[test]
fn a_stdio_client_that_reads_late_loses_no_answer_and_keeps_its_session() {
    let (mut child, _dir) =
        util::stdio_gateway(&json!({ "fx": fixture(&[]) }), std::process::Stdio::null());
    let mut stdin = child.stdin.take().unwrap();
    // It writes 3,000 pings and a call that sends 3,000 progress notifications before it
    // reads anything, and then reads nothing for two seconds.
    let writer = std::thread::spawn(move || {
        let mut lines = vec![
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "late-reader", "version": "1"}}}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ];
        lines.extend((1..=3000).map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "ping"})));
        lines.push(
            json!({"jsonrpc": "2.0", "id": "call", "method": "tools/call", "params": {
            "name": "fx__progress", "arguments": {"steps": 3000, "delay_ms": 0},
            "_meta": {"progressToken": "t"}}}),
        );
        lines.push(json!({"jsonrpc": "2.0", "id": "last", "method": "ping"}));
        for l in lines {
            stdin.write_all(format!("{l}\n").as_bytes()).unwrap();
        }
        stdin
    });
    std::thread::sleep(Duration::from_secs(2));
    // A gateway that stopped answering would leave the reads below waiting: it is killed
    // after a minute, which ends them.
    let pid = child.id() as i32;
    let finished = std::sync::Arc::new(std::sync::Mutex::new(false));
    let watch = finished.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        // Under the lock the test takes before reaping the child, so the pid is its own.
        let done = watch.lock().unwrap();
        if !*done {
            // SAFETY: a plain kill(2) of the child this test started and has not reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut pings, mut call, mut progress, mut last) = (0, None, 0, false);
    let started = Instant::now();
    while call.is_none() || !last {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "stdout ended after {pings} ping answers"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
        let m: Value = serde_json::from_str(&line).unwrap();
        match &m["id"] {
            Value::Number(n) if n.as_u64() != Some(0) => pings += 1,
            Value::String(s) if s == "call" => call = Some(m.clone()),
            Value::String(s) if s == "last" => last = true,
            _ if m["method"] == "notifications/progress" => progress += 1,
            _ => {}
        }
    }
    assert_eq!(pings, 3000, "every ping was answered");
    let call = call.expect("the call was answered");
    assert_eq!(call["result"]["content"][0]["text"], "done ", "{call}");
    assert!(progress <= 3000);
    // The session is still there: another call is answered, and the end of input ends it.
    let mut stdin = writer.join().unwrap();
    let again = json!({"jsonrpc": "2.0", "id": "again", "method": "tools/call",
                       "params": {"name": "fx__echo", "arguments": {"text": "still here"}}});
    stdin.write_all(format!("{again}\n").as_bytes()).unwrap();
    let mut line = String::new();
    while !line.contains("\"again\"") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0);
    }
    assert!(line.contains("still here"), "{line}");
    drop(stdin);
    *finished.lock().unwrap() = true;
    assert!(child.wait().unwrap().success());
}
