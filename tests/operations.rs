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
    assert_eq!(state("broken")["state"], "restarting");
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
fn readiness_is_503_without_a_ready_backend_and_the_token_guards_all_but_healthz() {
    let mut broken = fixture(&[]);
    broken["command"] = json!("/nonexistent/server");
    let gw = Gateway::start_with(&json!({ "broken": broken }), &["--token", "t0ken"]);
    let (status, _, _) = http(gw.port, "GET", "/healthz", &[], b"");
    assert_eq!(status, 200, "healthz needs no token");
    let (status, _, _) = http(gw.port, "GET", "/readyz", &[], b"");
    assert_eq!(status, 401);
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
