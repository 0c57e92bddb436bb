//! Operating the gateway: health, readiness and Prometheus metrics after known traffic.

mod util;

use serde_json::{Value, json};
use util::{Gateway, fixture, http};

#[test]
fn health_readiness_and_metrics_after_known_traffic() {
    let mut broken = fixture(&[]);
    broken["command"] = json!("/nonexistent/server");
    let gw = Gateway::start(&json!({ "fx": fixture(&[]), "broken": broken }));
    let c = gw.connect();
    c.initialize();
    // A call routes where it arrives only once the hub has handled what the session sent
    // before (here `notifications/initialized`, which gets no answer); a list answered by
    // the hub says it has, so the four calls below are all routed directly.
    c.tool_names();
    for i in 0..3 {
        c.call(json!(i), "fx__echo", json!({"text": "x"}));
    }
    c.call(json!("f"), "fx__crash", json!({}));
    assert!(gw.wait_stdout("ready again"), "{}", gw.stdout());
    let mcp = util::McpClient::connect(gw.port);
    let (status, _, body) = http(gw.port, "GET", "/healthz", &[], b"");
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _, body) = http(gw.port, "GET", "/readyz", &[], b"");
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    let state = |name: &str| {
        ready["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(state("fx")["state"], "ready");
    assert_eq!(state("fx")["restarts"], 1);
    // A program that is not there is a failure a retry will not fix (issue 27).
    assert_eq!(state("broken")["state"], "failed");
    assert!(
        state("broken")["reason"]
            .as_str()
            .unwrap()
            .contains("cannot start")
    );
    let (status, headers, metrics) = http(gw.port, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/plain"))
    );
    for line in [
        "mcp_gateway_requests_total{backend=\"fx\",method=\"tools/call\",outcome=\"ok\"} 3",
        "mcp_gateway_requests_total{backend=\"fx\",method=\"tools/call\",outcome=\"error\"} 1",
        "mcp_gateway_request_duration_seconds_count{backend=\"fx\"} 4",
        "mcp_gateway_requests_in_flight 0",
        // The three answers went from the backend's reader straight to the client.
        "mcp_gateway_replies_direct_total 3",
        // All four calls (the crash too) went from the connection's thread to the backend.
        "mcp_gateway_requests_routed_direct_total 4",
        "mcp_gateway_sessions{transport=\"sse\"} 1",
        "mcp_gateway_sessions{transport=\"streamable-http\"} 1",
        "mcp_gateway_backend_restarts_total{backend=\"fx\"} 1",
        "mcp_gateway_backend_ready{backend=\"fx\"} 1",
        "mcp_gateway_backend_ready{backend=\"broken\"} 0",
        "# TYPE mcp_gateway_request_duration_seconds histogram",
        "# TYPE mcp_gateway_backend_ready gauge",
        "# TYPE mcp_gateway_client_bytes_total counter",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing '{line}' in\n{metrics}"
        );
    }
    let bytes_in: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mcp_gateway_client_bytes_total{direction=\"in\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes_in > 0);
    drop(mcp);
}

#[test]
fn readiness_is_503_without_a_ready_backend_and_the_token_guards_the_details() {
    let mut broken = fixture(&[]);
    broken["command"] = json!("/nonexistent/server");
    let gw = Gateway::start_with(&json!({ "broken": broken }), &["--token", "t0ken"]);
    let (status, _, _) = http(gw.port, "GET", "/healthz", &[], b"");
    assert_eq!(status, 200, "healthz needs no token");
    // A probe without the token gets the verdict, and nothing about the backends.
    let (status, _, body) = http(gw.port, "GET", "/readyz", &[], b"");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, r#"{"draining":false,"ready":false}"#);
    let (status, _, _) = http(gw.port, "GET", "/metrics", &[], b"");
    assert_eq!(status, 401);
    let (status, _, body) = http(
        gw.port,
        "GET",
        "/readyz",
        &[("Authorization", "Bearer t0ken")],
        b"",
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"broken\"") && body.contains("nonexistent"),
        "{body}"
    );
    let (status, _, _) = http(
        gw.port,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer t0ken")],
        b"",
    );
    assert_eq!(status, 200);
}

fn audit_lines(gw: &Gateway, want: usize) -> Vec<Value> {
    let dir = gw.dir.path().join("logs");
    let deadline = std::time::Instant::now() + util::WAIT;
    loop {
        let lines: Vec<Value> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("audit_"))
            .flat_map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<Value>>()
            })
            .collect();
        if lines.len() >= want || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_last_calls_are_in_the_audit_log_when_the_gateway_stops() {
    // The writer gathers lines for a moment between writes; a stop right after a burst of
    // calls must still find every one of them on disk.
    // A built-in backend stops at once, so the gateway's stop is quick too.
    let mut gw = Gateway::start(&json!({ "sh": {"type": "builtin", "server": "bash"} }));
    let c = gw.connect();
    c.initialize();
    for i in 0..20 {
        c.call(json!(i), "sh__bash", json!({"command": "true"}));
    }
    let status = gw.signal_and_wait(libc::SIGTERM);
    assert!(status.success(), "{status:?}");
    assert_eq!(audit_lines(&gw, 20).len(), 20);
}

#[test]
fn every_tool_call_is_one_audit_line_without_its_arguments() {
    let mut spec = fixture(&[]);
    spec["toolTimeouts"] = json!({"sleep": 1});
    let gw = Gateway::start(&json!({ "fx": spec }));
    let c = gw.connect();
    c.send(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "auditor", "version": "2"}}}));
    c.response(&json!(0));
    c.call(json!(1), "fx__echo", json!({"text": "secret-argument"}));
    c.call(json!(2), "fx__fail", json!({}));
    c.call(json!(3), "fx__sleep", json!({"ms": 3000}));
    c.call(json!(4), "fx__nope", json!({})); // not routed: not a tool call of any backend
    let lines = audit_lines(&gw, 3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let echo = &lines[0];
    assert_eq!(echo["tool"], "fx__echo");
    assert_eq!(echo["original"], "echo");
    assert_eq!(echo["backend"], "fx");
    assert_eq!(echo["client"], "auditor 2");
    assert_eq!(echo["session"], c.session());
    assert_eq!(echo["isError"], false);
    assert!(echo["resultBytes"].as_u64().unwrap() > 10);
    assert!(echo["durationMs"].as_f64().is_some() && echo["time"].as_str().unwrap().ends_with('Z'));
    assert!(
        echo.get("arguments").is_none() && !echo.to_string().contains("secret-argument"),
        "{echo}"
    );
    assert_eq!(lines[1]["tool"], "fx__fail");
    assert_eq!(lines[1]["isError"], true);
    assert_eq!(lines[2]["tool"], "fx__sleep");
    assert_eq!(lines[2]["error"], "timed out");
}

#[test]
fn audit_arguments_are_recorded_only_when_asked() {
    let gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--audit-arguments"]);
    let c = gw.connect();
    c.initialize();
    c.call(json!(1), "fx__echo", json!({"text": "recorded"}));
    let lines = audit_lines(&gw, 1);
    assert_eq!(lines[0]["arguments"], json!({"text": "recorded"}));
}

#[test]
fn gateway_settings_come_from_the_config_and_flags_win() {
    // The config names a port that is taken: the harness's `--port 0` must win over it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let config = json!({
        "gateway": {"port": taken_port, "pageSize": 1, "logLevel": "debug", "auditArguments": true},
        "fx": fixture(&[]),
    });
    let gw = Gateway::start(&config);
    assert_ne!(gw.port, taken_port);
    let c = gw.connect();
    c.initialize();
    let page = c.request(json!(1), "tools/list", json!({}));
    assert_eq!(
        page["result"]["tools"].as_array().unwrap().len(),
        1,
        "{page}"
    );
    assert!(page["result"]["nextCursor"].is_string(), "{page}");
    c.call(json!(2), "fx__echo", json!({"text": "recorded"}));
    assert_eq!(
        audit_lines(&gw, 1)[0]["arguments"],
        json!({"text": "recorded"})
    );
    let logs: Vec<String> = std::fs::read_dir(gw.dir.path().join("logs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(logs.iter().any(|n| n.ends_with("_DEBUG.log")), "{logs:?}");
    drop(taken);
}

fn run_cli(args: &[&str], config: &Value) -> (i32, String) {
    let dir = util::TempDir::new();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(args)
        .arg("--config")
        .arg(&path)
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_bad_instance_id_is_a_usage_error() {
    let err = util::usage_error(&["--instance-id", "a.b"]);
    assert!(
        err.contains("--instance-id 'a.b': use 1 to 32 letters, digits and '-'"),
        "{err}"
    );
}

#[test]
fn check_exits_zero_only_when_every_backend_comes_up() {
    let (code, out) = run_cli(&["check"], &json!({ "fx": fixture(&[]) }));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("fx") && out.contains("ready") && out.contains("ok: 1 backend(s) ready"),
        "{out}"
    );
    let mut broken = fixture(&[]);
    broken["command"] = json!("/nonexistent/server");
    let (code, out) = run_cli(&["check"], &json!({ "fx": fixture(&[]), "broken": broken }));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("broken") && out.contains("cannot start '/nonexistent/server'"),
        "{out}"
    );
    let (code, _) = run_cli(&["check"], &json!({ "bad": {"type": "stdio"} }));
    assert_eq!(code, 2, "an invalid config is a usage error");
}

#[test]
fn tools_prints_the_catalogue_as_a_table_or_json() {
    let (code, out) = run_cli(&["tools", "--json"], &json!({ "fx": fixture(&[]) }));
    assert_eq!(code, 0);
    let tools: Vec<Value> =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let echo = tools.iter().find(|t| t["name"] == "fx__echo").unwrap();
    assert_eq!(echo["backend"], "fx");
    assert_eq!(echo["original"], "echo");
    let (code, out) = run_cli(&["tools"], &json!({ "fx": fixture(&[]) }));
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().starts_with("TOOL"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("fx__echo") && l.contains(" echo ")),
        "{out}"
    );
}

/// The pid a fixture tool `recall` reports, and the value it kept.
fn recall(c: &util::SseClient, id: &str, tool: &str) -> Value {
    let r = c.call(json!(id), tool, json!({}));
    let text = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    serde_json::from_str(text).unwrap()
}

#[test]
fn hot_reload_applies_the_difference_while_calls_on_an_unchanged_backend_continue() {
    let keep = fixture(&["--tag", "keep"]);
    let v1 = json!({
        "keep": keep, "gone": fixture(&[]), "change": fixture(&["--tag", "one"]), "view": fixture(&[]),
    });
    let gw = Gateway::start(&v1);
    let c = gw.connect();
    c.initialize();
    c.call(json!("r"), "keep__remember", json!({"value": "before"}));
    let changed_pid = recall(&c, "p1", "change__recall")["pid"].clone();
    // A call in flight across the reload, and a stream of calls during it.
    let slow = gw.connect();
    slow.initialize();
    slow.send(
        &json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call",
        "params": {"name": "keep__sleep", "arguments": {"ms": 3000, "text": "survived"}}}),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = gw.port;
    let flag = stop.clone();
    let caller = std::thread::spawn(move || {
        let m = util::McpClient::connect(port);
        let (mut ok, mut failed) = (0, Vec::new());
        let deadline = std::time::Instant::now() + util::WAIT;
        for i in 0..5000 {
            if flag.load(std::sync::atomic::Ordering::Relaxed)
                || std::time::Instant::now() > deadline
            {
                break;
            }
            let r = m.call(json!(i), "keep__echo", json!({"text": "x"}));
            if r["result"]["content"][0]["text"] == "x" {
                ok += 1;
            } else {
                failed.push(r);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        (ok, failed)
    });

    let mut view = fixture(&[]);
    view["tools"] = json!({"allow": ["echo"]});
    view["descriptions"] = json!({"echo": "Echo, reloaded."});
    let v2 = json!({
        "keep": keep, "change": fixture(&["--tag", "two"]), "view": view, "added": fixture(&[]),
    });
    std::fs::write(gw.dir.path().join("config.json"), v2.to_string()).unwrap();
    assert!(
        // (json! writes keys in alphabetical order: that is the file order here.)
        gw.wait_stdout(
            "config reloaded: removed 'gone', added 'added', restarting 'change' (changed), updated 'view'"
        ),
        "{}",
        gw.stdout()
    );
    util::eventually("the new catalogue", || {
        let names = c.tool_names();
        names.contains(&"added__echo".to_string())
            && names.contains(&"change__recall".to_string())
            && !names.iter().any(|n| n.starts_with("gone__"))
            && names.iter().filter(|n| n.starts_with("view__")).count() == 1
    });
    let list = c.request(json!("l"), "tools/list", json!({}));
    let view_echo = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "view__echo")
        .unwrap()
        .clone();
    assert_eq!(view_echo["description"], "Echo, reloaded.");
    let hidden = c.call(json!("h"), "view__fail", json!({}));
    assert!(hidden.get("error").is_some(), "{hidden}");
    let mut changed_notice = false;
    while let Some(m) = c.next_message(std::time::Duration::from_millis(200)) {
        changed_notice |= m["method"] == "notifications/tools/list_changed";
    }
    assert!(changed_notice, "sessions are told their list changed");
    // The changed backend runs in a new process; the unchanged one is the same process.
    assert_ne!(recall(&c, "p2", "change__recall")["pid"], changed_pid);
    assert_eq!(recall(&c, "k", "keep__recall")["value"], "before");
    let slow_reply = slow.response(&json!("slow"));
    assert_eq!(
        slow_reply["result"]["content"][0]["text"], "survived",
        "{slow_reply}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = caller.join().unwrap();
    assert!(ok > 0 && failed.is_empty(), "{ok} ok, failed: {failed:#?}");

    // An invalid config is refused and the running one stays.
    std::fs::write(
        gw.dir.path().join("config.json"),
        r#"{"keep": {"command": 5}}"#,
    )
    .unwrap();
    assert!(gw.wait_stdout("config reload REJECTED"), "{}", gw.stdout());
    assert!(
        gw.stdout()
            .contains("config.json: backend 'keep': field 'command': expected a string"),
        "{}",
        gw.stdout()
    );
    assert!(c.tool_names().contains(&"added__echo".to_string()));
    let r = c.call(json!("after"), "keep__echo", json!({"text": "still"}));
    assert_eq!(r["result"]["content"][0]["text"], "still");

    // A config that is gone (an editor's rename dance, a bad deploy) is said once, not
    // applied; the gateway serves on.
    std::fs::remove_file(gw.dir.path().join("config.json")).unwrap();
    assert!(
        gw.wait_stdout("config reload: cannot read"),
        "{}",
        gw.stdout()
    );
    let r = c.call(json!("gone"), "keep__echo", json!({"text": "on"}));
    assert_eq!(r["result"]["content"][0]["text"], "on");
    assert_eq!(gw.stdout().matches("config reload: cannot read").count(), 1);
}

#[test]
fn sighup_reloads_even_with_polling_off() {
    let mut gw = Gateway::start_with(&json!({ "a": fixture(&[]) }), &["--reload-interval", "0"]);
    let v2 = json!({ "a": fixture(&[]), "b": fixture(&[]) });
    std::fs::write(gw.dir.path().join("config.json"), v2.to_string()).unwrap();
    gw.signal(libc::SIGHUP);
    assert!(
        gw.wait_stdout("config reloaded: added 'b'"),
        "{}",
        gw.stdout()
    );
    let c = gw.connect();
    c.initialize();
    util::eventually("b's tools", || {
        c.tool_names().contains(&"b__echo".to_string())
    });
    // SIGHUP again with nothing changed: nothing restarts, and the gateway keeps running.
    gw.signal(libc::SIGHUP);
    assert!(gw.wait_stdout("config reloaded: no backend changed"));
    assert!(util::alive(gw.pid()));
    assert!(gw.signal_and_wait(libc::SIGTERM).success());
}

#[test]
fn startup_shows_progress_of_a_slow_backend_then_a_table() {
    let script = util::root().join("tests/fixtures/stdio_server.py");
    let slow = json!({"command": "sh", "args": ["-c", format!("sleep 11; exec python3 '{}'", script.display())]});
    let gw = Gateway::start(&json!({ "quick": fixture(&[]), "slow": slow }));
    let out = gw.stdout();
    let lines: Vec<&str> = out.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no '{needle}' in\n{out}"))
    };
    // Not a terminal: plain lines, one per backend every 10 s while it starts.
    let progress = at("slow             stdio           starting (10 s so far)");
    let header =
        at("BACKEND          TYPE            STATE      TOOLS PROMPTS RESOURCES TEMPLATES");
    assert!(progress < header, "{out}");
    let row: Vec<&str> = lines[header + 2].split_whitespace().collect();
    assert_eq!(
        row[..7],
        ["slow", "stdio", "ready", "17", "1", "2", "1"],
        "{out}"
    );
    let ms: f64 = row[7].parse().unwrap();
    assert!(ms >= 11_000.0, "{out}");
    assert!(
        !out.contains('\x1b'),
        "no terminal escapes when stdout is a pipe:\n{out}"
    );
}

#[test]
fn the_printed_schema_accepts_good_configs_and_rejects_bad_ones() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .arg("--print-config-schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = util::TempDir::new();
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, &out.stdout).unwrap();
    let shipped: Value =
        serde_json::from_str(&std::fs::read_to_string(util::root().join("config.json")).unwrap())
            .unwrap();
    let good = [
        shipped,
        json!({
            "gateway": {"host": "0.0.0.0", "port": 9000, "token": "${T}", "logLevel": "debug",
                        "maxSessions": 10, "sessionIdle": 60, "allowOrigins": ["https://x"]},
            "fs": {"type": "stdio", "command": "npx", "args": ["-y", "x"], "env": {"A": "b"},
                   "tools": {"allow": ["read_*"], "deny": ["*delete*"]}, "descriptions": {"read": "R"},
                   "prefix": "", "scope": "session", "idleTimeout": 60, "timeout": 5,
                   "toolTimeouts": {"slow": 600}, "restart": "never", "maxConcurrent": 2},
            "legacy": {"type": "sse", "url": "http://127.0.0.1:8000/sse", "command": "srv", "startupTimeout": 5},
            "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer ${K}"}},
            "sh": {"type": "builtin", "server": "bash", "timeout": 30, "allow": ["git *"], "enabled": false},
        }),
        json!({"$schema": "./config.schema.json", "mcpServers": {"gh": {"command": "github-mcp-server"}, "web": {"url": "http://h/sse", "transport": "sse"}}}),
        // VS Code's shape, and the original MCP-Gateway's names and settings.
        json!({"inputs": [{"type": "promptString", "id": "key", "description": "Key", "password": true}],
               "servers": {"gh": {"type": "http", "url": "https://api.example.com/mcp/"},
                           "files": {"type": "stdio", "command": "npx", "args": ["${env:HOME}"]}}}),
        json!({"gateway": {"profiles": {
                   "coding": {"description": "the agent", "backends": ["gh"], "tools": {"allow": ["gh__*"]},
                              "descriptions": {"gh__search": "Search"}},
                   "read-only": {"tools": {"deny": ["*write*"]}, "prompts": {"deny": ["*"]},
                                 "resources": {"allow": ["file:///*"]}}}},
               "gh": {"command": "github-mcp-server"}}),
        json!({"gateway": {"prefix": false, "startupWait": 0},
               "enscan_go": {"type": "sse", "url": "http://127.0.0.1:8001/sse", "command": "uv", "required": true}}),
    ];
    let bad = [
        (json!({"gateway": {"port": 70000}}), "70000"),
        (
            json!({"gateway": {"profiles": {"a b": {}}}}),
            "does not match",
        ),
        (
            json!({"a": {"type": "stdio"}}),
            "'command' is a required property",
        ),
        (
            json!({"a": {"type": "telnet", "command": "x"}}),
            "'telnet' is not one of",
        ),
        (json!({"a b": {"command": "x"}}), "'a b'"),
        (
            json!({"a": {"command": "x", "scope": "global"}}),
            "'global' is not one of",
        ),
        (json!({"a": {"server": "zsh"}}), "'zsh' is not one of"),
        (
            json!({"a": {"args": ["x"]}}),
            "is not valid under any of the given schemas",
        ),
        (json!({"gateway": {"tokn": "x"}}), "'tokn' was unexpected"),
        (
            json!({"servers": {"a": {"type": "stdio"}}, "inputs": []}),
            "'command' is a required property",
        ),
        (
            json!({"inputs": [{"type": "promptString"}], "servers": {}}),
            "'id' is a required property",
        ),
        (json!({"a_": {"command": "x"}}), "'a_'"),
        (
            json!({"a": {"command": "x", "required": "yes"}}),
            "'yes' is not of type 'boolean'",
        ),
    ];
    let cases: Vec<&Value> = good.iter().chain(bad.iter().map(|(c, _)| c)).collect();
    let mut child = std::process::Command::new(util::sdk_python())
        .arg(util::root().join("tests/fixtures/validate_schema.py"))
        .arg(&schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        serde_json::to_string(&cases).unwrap().as_bytes(),
    )
    .unwrap();
    let out = util::finish_within(child, util::WAIT, "the jsonschema validator", None);
    let results: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    for (config, errors) in good.iter().zip(&results) {
        assert!(errors.is_empty(), "{config}: {errors:?}");
    }
    for ((config, needle), errors) in bad.iter().zip(&results[good.len()..]) {
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{config}: expected an error with '{needle}', got {errors:?}"
        );
    }
}

#[test]
fn in_a_terminal_sighup_stops_the_gateway_and_its_backends() {
    use std::io::BufRead;
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills in two descriptors; the slave becomes the child's stdin.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0);
    let dir = util::TempDir::new();
    let config = dir.path().join("config.json");
    std::fs::write(&config, json!({ "fx": fixture(&[]) }).to_string()).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(["--port", "0", "--config"])
        .arg(&config)
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .stdin(unsafe { std::process::Stdio::from_raw_fd(slave) })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("Connect MCP clients to ")
                .map(|r| r.split_whitespace().next().unwrap().to_string())
        })
        .expect("the gateway's URL");
    let port: u16 = url
        .trim_end_matches("/mcp")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let c = util::SseClient::connect(port);
    c.initialize();
    let backend_pid = recall(&c, "p", "fx__recall")["pid"].as_u64().unwrap() as u32;
    unsafe {
        libc::kill(child.id() as i32, libc::SIGHUP);
    }
    let status = util::finish_within(child, util::WAIT, "the gateway after SIGHUP", None).status;
    assert!(status.success(), "{status:?}");
    assert!(
        lines.map_while(Result::ok).any(|l| l == "shutting down"),
        "a graceful shutdown"
    );
    util::eventually("the backend to be gone", || !util::alive(backend_pid));
    unsafe {
        libc::close(master);
    }
}

#[test]
fn a_default_start_warns_of_nothing_and_the_original_log_levels_work() {
    // The shipped config on this machine: the session cap the open-file limit sets is
    // information, not a warning, when nobody asked for more sessions.
    let shipped: Value =
        serde_json::from_str(&std::fs::read_to_string(util::root().join("config.json")).unwrap())
            .unwrap();
    let gw = Gateway::start(&shipped);
    assert!(!gw.stderr().contains("[WARN]"), "{}", gw.stderr());
    drop(gw);
    // Asked for and not possible: a warning.
    let gw = Gateway::start_full(&shipped, &["--max-sessions", "10000"], &[], Some(256));
    assert!(gw.wait_stderr("[WARN] serving at most"), "{}", gw.stderr());
    drop(gw);
    // The original gateway's level names.
    for level in ["warning", "critical", "WARNING"] {
        let gw = Gateway::start_with(&shipped, &["--log-level", level]);
        assert!(gw.stdout().contains("Connect MCP clients"), "{level}");
    }
    let err = util::usage_error(&["--log-level", "loud"]);
    assert!(
        err.contains("--log-level: expected one of debug, info, warning (or warn), error, critical, off, trace, got 'loud'"),
        "{err}"
    );
    // No config.json where it was looked for: where that was, and how to get one.
    let dir = util::TempDir::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let looked = format!(
        "cannot read 'config.json' (relative to {})",
        dir.path().display()
    );
    assert!(err.contains(&looked), "{err}");
    assert!(
        err.contains("--print-config-schema") && err.contains("--config FILE"),
        "{err}"
    );
}

/// The file's `"prefix": false` is the file's: a reload that takes it out brings the
/// prefixes back. Only `--no-prefix` on the command line holds across reloads.
#[test]
fn a_reload_that_drops_the_files_prefix_setting_brings_prefixes_back() {
    let backend = fixture(&[]);
    let gw = Gateway::start(&json!({"gateway": {"prefix": false}, "fx": backend}));
    let c = gw.connect();
    c.initialize();
    assert!(
        c.tool_names().contains(&"echo".to_string()),
        "{:?}",
        c.tool_names()
    );
    let v2 = json!({"fx": backend});
    std::fs::write(gw.dir.path().join("config.json"), v2.to_string()).unwrap();
    util::eventually("prefixed names after the reload", || {
        c.tool_names().contains(&"fx__echo".to_string())
    });
}
