//! The gateway as a user meets it: the real binary on a loopback port, real child
//! processes behind it, raw HTTP and SSE in front.

mod util;

use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use util::{Gateway, fixture, http};

fn one_fixture() -> Gateway {
    Gateway::start(&json!({ "fx": fixture(&[]) }))
}

#[test]
fn sse_client_gets_endpoint_event_then_initializes() {
    let gw = one_fixture();
    let c = gw.connect();
    assert!(
        c.endpoint.starts_with("/messages?sessionId="),
        "{}",
        c.endpoint
    );
    // <instance tag>.<32 random hex digits>
    let (_, secret) = c.session().rsplit_once('.').unwrap();
    assert_eq!(secret.len(), 32);
    let init = c.initialize();
    assert_eq!(init["protocolVersion"], "2025-06-18");
    assert_eq!(init["serverInfo"]["name"], "mcp-gateway");
    assert_eq!(init["capabilities"]["tools"]["listChanged"], true);
    let ping = c.request(json!(7), "ping", json!({}));
    assert_eq!(ping["result"], json!({}));
}

#[test]
fn initialize_answers_every_supported_version_and_offers_the_latest_otherwise() {
    let gw = one_fixture();
    let c = gw.connect();
    for (i, v) in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]
        .iter()
        .enumerate()
    {
        let r = c.request(json!(i), "initialize", json!({"protocolVersion": v, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}));
        assert_eq!(r["result"]["protocolVersion"], *v);
    }
    let r = c.request(
        json!(9),
        "initialize",
        json!({"protocolVersion": "1999-01-01", "capabilities": {}}),
    );
    assert_eq!(r["result"]["protocolVersion"], "2025-11-25");
}

#[test]
fn tools_list_is_prefixed_sorted_and_follows_every_page() {
    let gw = Gateway::start(&json!({
        "paged": fixture(&["--pages", "3"]),
        "alpha": fixture(&[]),
    }));
    let c = gw.connect();
    c.initialize();
    let names = c.tool_names();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "tools/list must be sorted");
    for backend in ["paged", "alpha"] {
        for tool in ["echo", "fail", "structured", "image", "sleep", "crash"] {
            let name = format!("{backend}__{tool}");
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        // 'dotted.name' is rewritten to the characters Claude and OpenAI accept.
        assert!(
            names.contains(&format!("{backend}__dotted_name")),
            "{names:?}"
        );
    }
    assert_eq!(names.len(), 34);
    assert!(
        gw.stdout()
            .contains("2 of 2 backend(s) ready, 34 tool(s) exposed"),
        "{}",
        gw.stdout()
    );
    let r = c.call(json!(1), "paged__dotted_name", json!({}));
    assert_eq!(r["result"]["content"][0]["text"], "dotted");
}

#[test]
fn tools_call_passes_results_through_verbatim() {
    let gw = one_fixture();
    let c = gw.connect();
    c.initialize();
    let r = c.call(json!(1), "fx__echo", json!({"text": "héllo \"world\"\n"}));
    assert_eq!(
        r["result"],
        json!({"content": [{"type": "text", "text": "héllo \"world\"\n"}]})
    );
    let r = c.call(json!(2), "fx__fail", json!({}));
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(r["result"]["content"][0]["text"], "it failed");
    let r = c.call(json!(3), "fx__structured", json!({}));
    assert_eq!(
        r["result"]["structuredContent"],
        json!({"n": 42, "nested": {"list": [1, 2, 3]}})
    );
    assert_eq!(r["result"]["_meta"], json!({"fixture/trace": "abc"}));
    let r = c.call(json!("img"), "fx__image", json!({}));
    assert_eq!(r["id"], "img");
    assert_eq!(
        r["result"]["content"][0],
        json!({"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"})
    );
    assert_eq!(
        r["result"]["content"][1]["resource"]["uri"],
        "file:///x.txt"
    );
}

#[test]
fn unknown_tool_method_and_bad_params_get_json_rpc_errors() {
    let gw = one_fixture();
    let c = gw.connect();
    c.initialize();
    let r = c.call(json!(1), "fx__nope", json!({}));
    util::assert_error(&r, -32602, "unknown tool 'fx__nope'");
    let r = c.call(json!(2), "echo", json!({}));
    assert_eq!(
        r["error"]["code"], -32602,
        "unprefixed names do not route: {r}"
    );
    let r = c.request(json!(3), "no/such/method", json!({}));
    util::assert_error(&r, -32601, "no/such/method");
    let r = c.request(json!(4), "tools/call", json!({"arguments": {}}));
    assert_eq!(r["error"]["code"], -32602);
    let r = c.request(json!(5), "tools/list", json!({"cursor": "bogus"}));
    assert_eq!(r["error"]["code"], -32602);
}

#[test]
fn many_clients_with_the_same_ids_get_only_their_own_replies() {
    const CLIENTS: usize = 24;
    const CALLS: usize = 10;
    let gw = Gateway::start(&json!({ "a": fixture(&[]), "b": fixture(&[]) }));
    let port = gw.port;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|client| {
            std::thread::spawn(move || {
                let c = util::SseClient::connect(port);
                c.initialize();
                // Send every call first, so they are all in flight together, then collect.
                for id in 1..=CALLS {
                    let backend = if id % 2 == 0 { "a" } else { "b" };
                    let args = json!({"text": format!("{id}"), "tag": format!("client{client}"), "ms": (id % 3) * 20});
                    let tool = if id % 3 == 0 { "sleep" } else { "echo" };
                    let args = if tool == "sleep" { json!({"ms": 30, "text": format!("client{client}:{id}")}) } else { args };
                    c.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": format!("{backend}__{tool}"), "arguments": args}}));
                }
                let mut seen = HashSet::new();
                for id in 1..=CALLS {
                    let r = c.response(&json!(id));
                    let text = r["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{r}")).to_string();
                    assert_eq!(text, format!("client{client}:{id}"), "client {client} got someone else's reply");
                    seen.insert(id);
                }
                assert_eq!(seen.len(), CALLS);
                // Nothing else may arrive: every reply was ours and came once.
                assert!(c.next_message(Duration::from_millis(200)).is_none());
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn a_slow_backend_does_not_hold_up_another() {
    let gw = Gateway::start(&json!({ "slow": fixture(&[]), "fast": fixture(&[]) }));
    let c = gw.connect();
    c.initialize();
    c.send(&json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {"name": "slow__sleep", "arguments": {"ms": 3000}}}));
    c.send(&json!({"jsonrpc": "2.0", "id": "fast", "method": "tools/call", "params": {"name": "fast__echo", "arguments": {"text": "quick"}}}));
    let first = c.next_message(util::WAIT).expect("a reply");
    assert_eq!(
        first["id"], "fast",
        "the fast reply must not wait behind the slow one"
    );
    let second = c.next_message(util::WAIT).expect("the slow reply");
    assert_eq!(second["id"], "slow");
}

#[test]
fn unknown_or_missing_session_is_refused() {
    let gw = one_fixture();
    let (status, _, body) = http(
        gw.port,
        "POST",
        "/messages?sessionId=00000000000000000000000000000000",
        &[],
        b"{}",
    );
    assert_eq!(status, 404);
    assert!(body.contains("unknown session"), "{body}");
    let (status, _, _) = http(gw.port, "POST", "/messages", &[], b"{}");
    assert_eq!(status, 400);
    let (status, _, _) = http(gw.port, "GET", "/nowhere", &[], b"");
    assert_eq!(status, 404);
    let (status, headers, _) = http(gw.port, "POST", "/sse", &[], b"");
    assert_eq!(status, 405);
    assert!(
        headers.contains(&("allow".into(), "GET".into())),
        "{headers:?}"
    );
}

#[test]
fn older_clients_paths_and_parameter_names_work() {
    let gw = one_fixture();
    let c = gw.connect();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let path = format!("/messages/?session_id={}", c.session());
    let (status, _, _) = http(gw.port, "POST", &path, &[], body.as_bytes());
    assert_eq!(status, 202);
    assert_eq!(c.response(&json!(1))["result"], json!({}));
}

#[test]
fn malformed_bodies_get_400_with_a_json_rpc_error() {
    let gw = one_fixture();
    let c = gw.connect();
    let (status, body) = c.post_raw("{not json");
    assert_eq!(status, 400);
    let err: Value = serde_json::from_str(&body).expect("JSON-RPC error body");
    assert_eq!(err["error"]["code"], -32700);
    assert_eq!(err["id"], Value::Null);
    let (status, body) = c.post_raw(r#"{"jsonrpc":"2.0","id":5}"#);
    assert_eq!(status, 400);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], -32600);
    assert_eq!(err["id"], 5);
    // The session is unharmed.
    assert_eq!(c.request(json!(6), "ping", json!({}))["result"], json!({}));
}

#[test]
fn a_backend_that_fails_to_start_is_reported_and_the_others_serve() {
    let gw = Gateway::start_with(
        &json!({
            "broken": {"type": "stdio", "command": "/nonexistent/mcp-server"},
            "hangs": fixture(&["--hang-init"]),
            "legacy": {"type": "sse", "url": "http://127.0.0.1:1/sse"},
            "ok": fixture(&[]),
        }),
        &["--init-timeout", "2"],
    );
    let out = gw.stdout();
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{out}"))
            .to_string()
    };
    assert!(
        line("broken").contains("FAILED")
            && line("broken").contains("cannot start '/nonexistent/mcp-server'"),
        "{out}"
    );
    assert!(
        line("hangs").contains("did not finish initializing within 2 s"),
        "{out}"
    );
    assert!(
        line("legacy").contains("cannot connect to http://127.0.0.1:1/sse"),
        "{out}"
    );
    assert!(
        line("ok ").contains("ready") && line("ok ").contains("17 tools"),
        "{out}"
    );
    assert!(out.contains("1 of 4 backend(s) ready"), "{out}");
    let c = gw.connect();
    c.initialize();
    assert!(c.tool_names().iter().all(|n| n.starts_with("ok__")));
    let r = c.call(json!(1), "ok__echo", json!({"text": "fine"}));
    assert_eq!(r["result"]["content"][0]["text"], "fine");
}

fn crash(c: &util::SseClient) {
    let r = c.call(json!(1), "fx__crash", json!({}));
    let msg = util::error_message(&r);
    assert_eq!(r["error"]["code"], -32603);
    assert!(
        msg.contains("backend 'fx'") && msg.contains("exit status: 3"),
        "{msg}"
    );
    assert!(
        msg.contains("crashing on purpose"),
        "the last stderr line explains it: {msg}"
    );
}

#[test]
fn a_backend_that_dies_mid_call_answers_with_an_error_and_is_restarted() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]), "other": fixture(&[]) }));
    let c = gw.connect();
    c.initialize();
    crash(&c);
    assert!(gw.wait_stdout("restarting in 1 s"), "{}", gw.stdout());
    let r = c.call(json!(2), "other__echo", json!({"text": "alive"}));
    assert_eq!(
        r["result"]["content"][0]["text"], "alive",
        "the others never noticed"
    );
    assert!(gw.wait_stdout("ready again (restart 1)"), "{}", gw.stdout());
    // Its tools stayed listed; the same list came back, so no list_changed was needed.
    assert!(c.tool_names().contains(&"fx__echo".to_string()));
    let r = c.call(json!(3), "fx__echo", json!({"text": "back"}));
    assert_eq!(r["result"]["content"][0]["text"], "back");
    // A second crash soon after waits twice as long.
    crash(&c);
    assert!(gw.wait_stdout("restarting in 2 s"), "{}", gw.stdout());
    let r = c.call(json!(4), "fx__echo", json!({"text": "too soon"}));
    let msg = util::error_message(&r);
    assert!(
        msg.contains("backend 'fx' is restarting") && msg.contains("next attempt in"),
        "{r}"
    );
    // What a client can act on, beside the message.
    assert_eq!(r["error"]["code"], -32603, "{r}");
    assert_eq!(r["error"]["data"]["backend"], "fx", "{r}");
    assert_eq!(r["error"]["data"]["state"], "restarting", "{r}");
    assert!(
        r["error"]["data"]["retryAfterSeconds"]
            .as_u64()
            .is_some_and(|s| s <= 2),
        "{r}"
    );
}

#[test]
fn a_backend_that_may_not_restart_is_withdrawn() {
    let mut spec = fixture(&[]);
    spec["restart"] = json!("never");
    let gw = Gateway::start(&json!({ "fx": spec, "other": fixture(&[]) }));
    let c = gw.connect();
    c.initialize();
    crash(&c);
    let note = c.next_message(util::WAIT).expect("list_changed");
    assert_eq!(note["method"], "notifications/tools/list_changed");
    assert!(c.tool_names().iter().all(|n| n.starts_with("other__")));
    let r = c.call(json!(2), "fx__echo", json!({}));
    assert_eq!(r["error"]["code"], -32602);
}

#[test]
fn backend_stderr_goes_to_the_log_tagged_with_its_name() {
    let gw = one_fixture();
    assert!(gw.wait_stderr("[fx] fixture: started"), "{}", gw.stderr());
    assert!(
        gw.wait_stderr("backend 'fx': skipped a stdout line that is not JSON-RPC"),
        "{}",
        gw.stderr()
    );
    let files: Vec<_> = std::fs::read_dir(gw.dir.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // One log file per run; the audit log of tool calls comes with the first call, so a
    // run without any leaves no empty file (issue 28).
    let logs: Vec<&String> = files.iter().filter(|f| f.starts_with("log_")).collect();
    assert_eq!(logs.len(), 1, "{files:?}");
    assert!(!files.iter().any(|f| f.starts_with("audit_")), "{files:?}");
    let name = logs[0];
    assert!(
        name.starts_with("log_")
            && name.ends_with("_INFO.log")
            && name.len() == "log_20260101_120000_INFO.log".len(),
        "{name}"
    );
    let text = std::fs::read_to_string(gw.dir.path().join("logs").join(name)).unwrap();
    assert!(text.contains("[fx] fixture: started"), "{text}");
}

#[test]
fn the_log_file_is_named_by_its_level_as_the_original_named_it() {
    for (given, name) in [
        ("warning", "WARNING"),
        ("warn", "WARNING"),
        ("critical", "CRITICAL"),
    ] {
        let gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--log-level", given]);
        let files: Vec<String> = std::fs::read_dir(gw.dir.path().join("logs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            files
                .iter()
                .any(|f| f.starts_with("log_") && f.ends_with(&format!("_{name}.log"))),
            "{given}: {files:?}"
        );
    }
}

#[test]
fn a_closed_client_is_cleaned_up() {
    let gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--sse-keepalive", "1"]);
    let c = gw.connect();
    let session = c.session().to_string();
    c.initialize();
    c.close();
    assert!(
        gw.wait_stderr(&format!("session {session}: closed")),
        "{}",
        gw.stderr()
    );
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let (status, _, _) = http(
        gw.port,
        "POST",
        &format!("/messages?sessionId={session}"),
        &[],
        body.as_bytes(),
    );
    assert_eq!(status, 404);
}

#[test]
fn ctrl_c_stops_every_backend_and_its_children() {
    let dir = util::TempDir::new();
    let pidfile = dir.path().join("pids");
    let gw_config = json!({ "fx": fixture(&["--pidfile", pidfile.to_str().unwrap()]), "sh": {"type": "builtin", "server": "bash"} });
    let mut gw = Gateway::start(&gw_config);
    let pids: Vec<u32> = std::fs::read_to_string(&pidfile)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| util::alive(p)));
    // A long command running in the built-in shell must go too.
    let c = gw.connect();
    c.initialize();
    c.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sh__bash", "arguments": {"command": "echo $$ > '{}'/sleeper; exec sleep 300".replace("{}", dir.path().to_str().unwrap())}}}));
    let sleeper_file = dir.path().join("sleeper");
    let sleeper = util::read_pid_file(&sleeper_file);
    assert!(util::alive(sleeper));
    let status = gw.signal_and_wait(libc::SIGINT);
    assert!(status.success(), "exit status {status:?}\n{}", gw.stderr());
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids.iter().chain([&sleeper]) {
        assert!(!util::alive(*pid), "process {pid} outlived the gateway");
    }
    assert!(gw.stdout().contains("shutting down"));
}

#[test]
fn sigterm_shuts_down_cleanly_too() {
    let mut gw = one_fixture();
    let status = gw.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
}

#[test]
fn builtin_bash_reports_exit_codes_and_kills_on_timeout() {
    let gw = Gateway::start(&json!({ "sh": {"type": "builtin", "server": "bash", "timeout": 1} }));
    let c = gw.connect();
    c.initialize();
    assert_eq!(c.tool_names(), ["sh__bash"]);
    let r = c.call(
        json!(1),
        "sh__bash",
        json!({"command": "echo out; echo err >&2"}),
    );
    let res = &r["result"];
    assert_eq!(res["isError"], false);
    assert_eq!(
        res["structuredContent"],
        json!({"exitCode": 0, "stdout": "out\n", "stderr": "err\n", "timedOut": false})
    );
    let r = c.call(json!(2), "sh__bash", json!({"command": "exit 7"}));
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(r["result"]["structuredContent"]["exitCode"], 7);
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("exit code 7")
    );
    // The timeout kills the whole process group, background children included.
    let dir = util::TempDir::new();
    let cmd = format!(
        "sleep 30 & echo $! > '{}/bg'; sleep 30",
        dir.path().display()
    );
    let r = c.call(json!(3), "sh__bash", json!({"command": cmd}));
    let res = &r["result"];
    assert_eq!(res["isError"], true);
    assert_eq!(res["structuredContent"]["timedOut"], true);
    assert!(
        res["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("timed out after 1 s"),
        "{res}"
    );
    let bg = util::read_pid_file(&dir.path().join("bg"));
    util::eventually(
        &format!("background child {bg} survived the timeout"),
        || !util::alive(bg),
    );
    let r = c.call(json!(4), "sh__bash", json!({}));
    assert_eq!(
        r["result"]["isError"], true,
        "a missing argument is a tool error: {r}"
    );
}

#[test]
fn an_invalid_config_exits_2_naming_backend_and_field() {
    let dir = util::TempDir::new();
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        r#"{"fs": {"type": "stdio", "args": "x"}, "a__b": {"command": "y"}}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(["--port", "0", "--log-dir"])
        .arg(dir.path().join("logs"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.json: backend 'fs': field 'command' is required"),
        "{err}"
    );
    assert!(
        err.contains("config.json: backend 'fs': field 'args': expected a list of strings"),
        "{err}"
    );
    assert!(err.contains("backend name 'a__b'"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(["--config", "/nonexistent/config.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read '/nonexistent/config.json'")
    );
}

#[test]
fn a_port_already_taken_fails_at_once_naming_the_address_and_starts_no_backend() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = util::TempDir::new();
    let marker = dir.path().join("started");
    let config = dir.path().join("config.json");
    let spec = json!({"be": {"command": "bash", "args": ["-c", format!("touch '{}'; sleep 30", marker.display())]}});
    std::fs::write(&config, spec.to_string()).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(["--port", &port.to_string(), "--log-dir"])
        .arg(dir.path().join("logs"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = util::finish_within(child, util::WAIT, "the gateway on a taken port", None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let said = format!("cannot listen on 127.0.0.1:{port}");
    assert!(err.contains(&format!("error: {said}")), "{err}");
    assert_eq!(err.matches(&said).count(), 1, "said once: {err}");
    let log = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect::<String>();
    assert!(log.contains(&said), "the log file has it too: {log}");
    assert!(
        !marker.exists(),
        "a backend was started before the listener"
    );
}

#[test]
fn unknown_config_fields_are_warned_about() {
    let mut spec = fixture(&[]);
    spec["colour"] = json!("red");
    let gw = Gateway::start(&json!({ "fx": spec }));
    assert!(
        gw.wait_stderr("backend 'fx': unknown field 'colour'"),
        "{}",
        gw.stderr()
    );
}

#[test]
fn claude_desktop_config_shape_works() {
    let mut spec = fixture(&[]);
    spec.as_object_mut().unwrap().remove("type");
    let gw = Gateway::start(&json!({ "mcpServers": { "desk": spec } }));
    let c = gw.connect();
    c.initialize();
    assert!(c.tool_names().contains(&"desk__echo".to_string()));
}

#[test]
fn cli_help_version_and_bad_flags() {
    let exe = env!("CARGO_BIN_EXE_mcp-gateway");
    let out = std::process::Command::new(exe)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config FILE"));
    let out = std::process::Command::new(exe).arg("-V").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("mcp-gateway {}", env!("CARGO_PKG_VERSION"))
    );
    let out = std::process::Command::new(exe)
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}

#[test]
fn a_request_that_takes_too_long_is_answered_with_an_error_and_cancelled() {
    let mut spec = fixture(&[]);
    spec["toolTimeouts"] = json!({"sleep": 1});
    let gw = Gateway::start(&json!({ "fx": spec }));
    let c = gw.connect();
    c.initialize();
    let r = c.call(json!(1), "fx__sleep", json!({"ms": 2500, "text": "late"}));
    util::assert_error(
        &r,
        -32001,
        "backend 'fx' did not answer tools/call 'sleep' within 1 s",
    );
    // The late reply is dropped, and the backend was told to stop.
    let r = c.call(json!(2), "fx__sleep", json!({"ms": 2000, "text": "x"}));
    assert_eq!(r["error"]["code"], -32001);
    let state: Value = serde_json::from_str(
        c.call(json!(3), "fx__state", json!({}))["result"]["content"][0]["text"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(state["cancelled"].as_array().unwrap().len(), 2, "{state}");
    assert!(
        c.next_message(Duration::from_millis(2500)).is_none(),
        "a late reply reached the client"
    );
}

#[test]
fn progress_extends_a_requests_time() {
    let mut spec = fixture(&[]);
    spec["timeout"] = json!(1);
    let gw = Gateway::start(&json!({ "fx": spec }));
    let c = gw.connect();
    c.initialize();
    // Five steps of 400 ms: 2 s in all, twice the timeout, with progress all along.
    c.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "fx__progress", "arguments": {"steps": 5, "delay_ms": 400, "tag": "t"}, "_meta": {"progressToken": "p"}}}));
    let r = c.response(&json!(1));
    assert_eq!(r["result"]["content"][0]["text"], "done t", "{r}");
    // Without a progress token the same work times out.
    let r = c.call(
        json!(2),
        "fx__progress",
        json!({"steps": 5, "delay_ms": 400}),
    );
    assert_eq!(r["error"]["code"], -32001, "{r}");
}

#[test]
fn a_backend_that_stops_answering_pings_is_restarted() {
    let gw = Gateway::start_with(
        &json!({ "fx": fixture(&[]) }),
        &["--ping-interval", "1", "--ping-timeout", "1"],
    );
    let c = gw.connect();
    c.initialize();
    let r = c.call(json!(1), "fx__freeze", json!({}));
    assert_eq!(r["result"]["content"][0]["text"], "frozen");
    assert!(
        gw.wait_stdout("did not answer a ping within 1 s"),
        "{}",
        gw.stdout()
    );
    assert!(gw.wait_stdout("ready again"), "{}", gw.stdout());
    let r = c.call(json!(2), "fx__echo", json!({"text": "alive"}));
    assert_eq!(r["result"]["content"][0]["text"], "alive");
}

#[test]
fn an_oversized_or_garbled_message_fails_only_its_own_request() {
    let mut small = fixture(&[]);
    small["maxMessageSize"] = json!(100_000);
    let gw = Gateway::start(&json!({ "small": small, "fx": fixture(&[]) }));
    let c = gw.connect();
    c.initialize();
    let r = c.call(json!(1), "small__big", json!({"bytes": 200_000}));
    assert!(
        util::error_message(&r).contains("over the 100000-byte limit"),
        "{r}"
    );
    let r = c.call(json!(2), "small__echo", json!({"text": "still here"}));
    assert_eq!(r["result"]["content"][0]["text"], "still here");
    // 20 MiB against the default 16 MiB limit.
    let r = c.call(json!(3), "fx__big", json!({"bytes": 20 * 1024 * 1024}));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("over the 16777216-byte limit"),
        "{}",
        &r.to_string()[..200.min(r.to_string().len())]
    );
    let r = c.call(json!(4), "fx__big", json!({"bytes": 1024 * 1024}));
    assert_eq!(
        r["result"]["content"][0]["text"].as_str().unwrap().len(),
        1024 * 1024,
        "1 MiB is fine"
    );
    let r = c.call(json!(5), "fx__garbage", json!({}));
    assert_eq!(r["result"]["content"][0]["text"], "survived");
    assert!(
        gw.wait_stderr("skipped a stdout line that is not UTF-8"),
        "{}",
        gw.stderr()
    );
    let r = c.call(json!(6), "fx__echo", json!({"text": "fine"}));
    assert_eq!(r["result"]["content"][0]["text"], "fine");
}

#[test]
fn calls_in_flight_at_ctrl_c_are_answered_before_the_gateway_exits() {
    let mut gw = one_fixture();
    let legacy = gw.connect();
    legacy.initialize();
    legacy.send(&json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {"name": "fx__sleep", "arguments": {"ms": 10000}}}));
    let port = gw.port;
    let streamable = std::thread::spawn(move || {
        let c = util::McpClient::connect(port);
        c.call(json!("slow2"), "fx__sleep", json!({"ms": 10000}))
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(gw.signal_and_wait(libc::SIGINT).success());
    let r = legacy.response(&json!("slow"));
    assert!(util::error_message(&r).contains("shutting down"), "{r}");
    let r = streamable.join().unwrap();
    assert!(util::error_message(&r).contains("shutting down"), "{r}");
}

#[test]
fn max_concurrent_queues_requests_instead_of_failing_them() {
    let mut spec = fixture(&[]);
    spec["maxConcurrent"] = json!(1);
    let gw = Gateway::start(&json!({ "one": spec, "many": fixture(&[]) }));
    let c = gw.connect();
    c.initialize();
    for b in ["one", "many"] {
        c.send(&json!({"jsonrpc": "2.0", "id": format!("{b}-slow"), "method": "tools/call", "params": {"name": format!("{b}__sleep"), "arguments": {"ms": 600}}}));
        c.send(&json!({"jsonrpc": "2.0", "id": format!("{b}-fast"), "method": "tools/call", "params": {"name": format!("{b}__echo"), "arguments": {"text": "quick"}}}));
    }
    let order: Vec<String> = (0..4)
        .map(|_| {
            c.next_message(util::WAIT).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let pos = |id: &str| order.iter().position(|o| o == id).unwrap();
    assert!(
        pos("many-fast") < pos("many-slow"),
        "without a limit the quick call overtakes: {order:?}"
    );
    assert!(
        pos("one-slow") < pos("one-fast"),
        "with maxConcurrent 1 it waits its turn: {order:?}"
    );
}

#[test]
fn a_busy_backend_is_not_pinged_to_death() {
    // This backend answers nothing while a call runs, pings included.
    let gw = Gateway::start_with(
        &json!({ "fx": fixture(&["--sequential"]) }),
        &["--ping-interval", "1", "--ping-timeout", "1"],
    );
    let c = gw.connect();
    c.initialize();
    let r = c.call(
        json!(1),
        "fx__sleep",
        json!({"ms": 3500, "text": "finished"}),
    );
    assert_eq!(r["result"]["content"][0]["text"], "finished", "{r}");
    assert!(
        !gw.stdout().contains("did not answer a ping"),
        "{}",
        gw.stdout()
    );
}

#[test]
fn tool_filters_descriptions_and_disabled_backends() {
    let mut spec = fixture(&[]);
    spec["tools"] = json!({"allow": ["echo", "s*"], "deny": ["sleep"]});
    spec["descriptions"] = json!({"echo": "Says it back."});
    let mut off = fixture(&[]);
    off["enabled"] = json!(false);
    let gw = Gateway::start(&json!({ "fx": spec, "off": off }));
    assert!(
        gw.stdout().contains("off") && gw.stdout().contains("disabled"),
        "{}",
        gw.stdout()
    );
    let c = gw.connect();
    c.initialize();
    let r = c.request(json!("l"), "tools/list", json!({}));
    let tools = r["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fx__echo", "fx__state", "fx__structured"]);
    assert_eq!(tools[0]["description"], "Says it back.");
    let r = c.call(json!(1), "fx__sleep", json!({"ms": 1}));
    assert_eq!(
        r["error"]["code"], -32602,
        "a filtered tool cannot be called: {r}"
    );
    let r = c.call(json!(2), "fx__echo", json!({"text": "shown"}));
    assert_eq!(r["result"]["content"][0]["text"], "shown");
}
