//! The built-in servers through the gateway: `bash`, and `cmd`, `PowerShell` and
//! `query_wmi` with stand-in interpreters (`tests/fixtures/standin/`), since Linux has no
//! cmd.exe, PowerShell or WMI.

mod util;

use serde_json::{Value, json};
use std::time::Duration;
use util::{Gateway, SseClient, root};

/// A built-in backend spec, with the stand-in interpreters in its environment.
fn builtin(server: &str, extra: Value) -> Value {
    let standin = root().join("tests/fixtures/standin");
    let mut spec = json!({"type": "builtin", "server": server, "env": {
        "MCP_GATEWAY_CMD": standin.join("cmd"),
        "MCP_GATEWAY_POWERSHELL": standin.join("pwsh"),
    }});
    for (k, v) in extra.as_object().unwrap() {
        if k == "env" {
            for (ek, ev) in v.as_object().unwrap() {
                spec["env"][ek] = ev.clone();
            }
        } else {
            spec[k] = v.clone();
        }
    }
    spec
}

fn text(r: &Value) -> String {
    r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text: {r}"))
        .to_string()
}

/// The command-tool checks every shell-like server must pass.
fn check_command_server(server: &str, tool: &str) {
    let dir = util::TempDir::new();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let spec = builtin(
        server,
        json!({"timeout": 30, "maxOutput": 1000, "cwd": work, "env": {"GREETING": "hello from env"}, "deny": ["*rm -rf*"]}),
    );
    let gw = Gateway::start(&json!({ "sh": spec }));
    let c = gw.connect();
    c.initialize();
    let name = format!("sh__{tool}");
    // Success, with the configured cwd and env.
    let r = c.call(
        json!(1),
        &name,
        json!({"command": "pwd; echo \"$GREETING\""}),
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert_eq!(
        r["result"]["structuredContent"]["stdout"],
        format!("{}\nhello from env\n", work.display())
    );
    // A per-call cwd.
    let r = c.call(
        json!(2),
        &name,
        json!({"command": "pwd", "cwd": dir.path()}),
    );
    assert_eq!(
        r["result"]["structuredContent"]["stdout"],
        format!("{}\n", dir.path().display())
    );
    // Failure.
    let r = c.call(json!(3), &name, json!({"command": "echo oops >&2; exit 5"}));
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(r["result"]["structuredContent"]["exitCode"], 5);
    assert_eq!(r["result"]["structuredContent"]["stderr"], "oops\n");
    // Output capping, with a note.
    let r = c.call(
        json!(4),
        &name,
        json!({"command": "printf 'x%.0s' $(seq 5000)"}),
    );
    let out = r["result"]["structuredContent"]["stdout"].as_str().unwrap();
    assert!(
        out.starts_with(&"x".repeat(1000))
            && out.contains("[output cut: 4000 more bytes not shown]"),
        "{out}"
    );
    // A denied command never runs.
    let r = c.call(
        json!(5),
        &name,
        json!({"command": "rm -rf /tmp/nothing-here"}),
    );
    assert_eq!(r["result"]["isError"], true);
    assert!(text(&r).contains("denied pattern '*rm -rf*'"), "{r}");
    assert!(
        gw.wait_stderr("refused \"rm -rf /tmp/nothing-here\""),
        "{}",
        gw.stderr()
    );
    // A timeout kills the command and what it started.
    let bg = dir.path().join("bg");
    let cmd = format!("sleep 30 & echo $! > '{}'; sleep 30", bg.display());
    let r = c.call(json!(6), &name, json!({"command": cmd, "timeout_ms": 1000}));
    assert_eq!(r["result"]["structuredContent"]["timedOut"], true, "{r}");
    assert!(text(&r).contains("timed out after 1 s"), "{r}");
    let pid = util::read_pid_file(&bg);
    util::eventually("a child of the timed-out command survived", || {
        !util::alive(pid)
    });
    // Every command is in the log with its duration and outcome.
    assert!(
        gw.wait_stderr(&format!(
            "[sh] {}: ran \"pwd\" in ",
            server_log_name(server)
        )),
        "{}",
        gw.stderr()
    );
    assert!(gw.stderr().contains("exit code 5"));
    check_cancellation(&c, &name, dir.path());
}

fn server_log_name(server: &str) -> &'static str {
    match server {
        "bash" => "mcp-gateway-bash",
        "cmd" => "mcp-gateway-cmd",
        "powershell" => "mcp-gateway-powershell",
        _ => "mcp-gateway-wmi",
    }
}

/// `notifications/cancelled` kills the command's whole tree, and the call gets no answer.
fn check_cancellation(c: &SseClient, name: &str, dir: &std::path::Path) {
    let pidfile = dir.join("cancel-pid");
    let cmd = format!("echo $$ > '{}'; sleep 30", pidfile.display());
    c.send(&json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call", "params": {"name": name, "arguments": {"command": cmd}}}));
    let pid = util::read_pid_file(&pidfile);
    c.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "long"}}));
    util::eventually("the cancelled command kept running", || !util::alive(pid));
    assert!(
        c.next_message(Duration::from_millis(500)).is_none(),
        "a cancelled call got an answer"
    );
}

#[test]
fn bash_server_runs_times_out_cancels_caps_and_refuses() {
    check_command_server("bash", "bash");
}

#[test]
fn cmd_server_with_a_stand_in_interpreter() {
    check_command_server("cmd", "cmd");
}

#[test]
fn powershell_server_with_a_stand_in_interpreter() {
    check_command_server("powershell", "PowerShell");
}

#[test]
fn long_commands_report_progress_with_their_latest_output() {
    let gw = Gateway::start(&json!({ "sh": builtin("bash", json!({})) }));
    let c = gw.connect();
    c.initialize();
    c.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "sh__bash", "arguments": {"command": "for i in 1 2 3; do echo line $i; sleep 0.8; done"},
        "_meta": {"progressToken": "p"}}}));
    let r = c.response(&json!(1));
    assert_eq!(
        r["result"]["structuredContent"]["stdout"],
        "line 1\nline 2\nline 3\n"
    );
    let mut messages = Vec::new();
    while let Some(m) = c.next_message(Duration::from_millis(200)) {
        assert_eq!(m["method"], "notifications/progress", "{m}");
        messages.push(m["params"]["message"].as_str().unwrap().to_string());
    }
    assert!(!messages.is_empty(), "no progress from a 2.4 s command");
    assert!(
        messages.iter().any(|m| m.contains("line 1")),
        "{messages:?}"
    );
}

#[test]
fn query_wmi_validates_names_and_passes_the_filter_as_data() {
    let gw = Gateway::start(&json!({ "w": builtin("wmi", json!({})) }));
    let c = gw.connect();
    c.initialize();
    assert_eq!(c.tool_names(), ["w__query_wmi"]);
    let hostile = "Name = 'x'\"; Remove-Item -Recurse C:\\ ; $(calc)";
    let r = c.call(json!(1), "w__query_wmi", json!({"wmi_class": "Win32_Process", "properties": ["Name", "ProcessId"], "filter": hostile}));
    assert_eq!(r["result"]["isError"], false, "{r}");
    let seen: Value = serde_json::from_str(
        r["result"]["structuredContent"]["stdout"]
            .as_str()
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(seen["class"], "Win32_Process");
    assert_eq!(seen["properties"], "Name,ProcessId");
    assert_eq!(
        seen["filter"], hostile,
        "the filter arrives unchanged, as data"
    );
    let script = seen["script"].as_str().unwrap();
    assert!(
        script.contains("Get-CimInstance")
            && !script.contains("Remove-Item")
            && !script.contains("Win32_Process"),
        "the script is fixed: {script}"
    );
    for (id, args) in [
        (2, json!({"wmi_class": "Win32_Process; Remove-Item x"})),
        (
            3,
            json!({"wmi_class": "Win32_Process", "properties": ["Name", "$(calc)"]}),
        ),
        (4, json!({})),
    ] {
        let r = c.call(json!(id), "w__query_wmi", args);
        assert_eq!(r["result"]["isError"], true, "{r}");
    }
}

#[test]
fn a_missing_interpreter_is_a_tool_error_and_the_server_still_starts() {
    // No stand-in: this machine has no cmd.exe.
    let gw = Gateway::start(&json!({ "c": {"type": "builtin", "server": "cmd"} }));
    let c = gw.connect();
    c.initialize();
    let r = c.call(json!(1), "c__cmd", json!({"command": "echo hi"}));
    assert_eq!(r["result"]["isError"], true);
    assert!(
        text(&r).contains("cmd.exe is not available on this system"),
        "{r}"
    );
}
