//! First contact: what a new user sees with the config they already have and the client
//! they already use: complete first lists on every front end, the original MCP-Gateway's
//! config and command line, the client-config shapes, readiness, and why a backend failed.

mod util;

use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::Duration;
use util::{Gateway, finish_within, fixture, root, run_client, sdk_python};

/// A backend that takes three seconds to start.
fn slow_config() -> Value {
    json!({"slow": fixture(&["--start-delay", "3"])})
}

/// The official Python SDK client that lists once right after initialize, over `target`.
fn first_list(gw: &Gateway, target: &str) -> Value {
    run_client(
        gw,
        &sdk_python(),
        "tests/python/sdk_first_list.py",
        target,
        &["slow__echo"],
    )
}

#[test]
fn the_first_tools_list_waits_for_backends_still_starting_on_every_front_end() {
    for front in ["sse", "mcp"] {
        let gw = Gateway::start_listening(&slow_config(), &[]);
        let url = if front == "sse" { &gw.url } else { &gw.mcp_url };
        let seen = first_list(&gw, url);
        let tools: Vec<&str> = seen["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(tools.contains(&"slow__echo"), "{front}: {seen}");
        assert_eq!(seen["call"], "first", "{front}: {seen}");
    }
    // --stdio, as Claude Desktop starts it.
    let dir = util::TempDir::new();
    let config = dir.path().join("config.json");
    std::fs::write(&config, slow_config().to_string()).unwrap();
    let logs = dir.path().join("logs");
    let child = Command::new(sdk_python())
        .arg(root().join("tests/python/sdk_first_list.py"))
        .args([
            "stdio",
            "slow__echo",
            env!("CARGO_BIN_EXE_mcp-gateway"),
            "--stdio",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--log-dir")
        .arg(&logs)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish_within(child, Duration::from_secs(60), "sdk_first_list.py", None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        seen["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("slow__echo")),
        "{seen}"
    );
    assert_eq!(seen["call"], "first", "{seen}");
    // A client that calls a tool it knows without listing first gets the call through too.
    let gw = Gateway::start_listening(&slow_config(), &[]);
    let c = util::McpClient::connect(gw.port);
    let r = c.call(json!(1), "slow__echo", json!({"text": "direct"}));
    assert_eq!(r["result"]["content"][0]["text"], "direct", "{r}");
    let r = c.call(json!(2), "nobody__echo", json!({}));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown tool"),
        "{r}"
    );
    // With --startup-wait 0 lists are answered at once: the client sees nothing yet.
    let gw = Gateway::start_listening(&slow_config(), &["--startup-wait", "0"]);
    let seen = first_list(&gw, &gw.mcp_url);
    assert_eq!(seen["tools"], json!([]), "{seen}");
    assert!(
        seen["call"].as_str().unwrap().contains("unknown tool"),
        "{seen}"
    );
}

/// The original MCP-Gateway's shipped config.json, byte for byte: `cmd` and `wmi` defined
/// twice, its four shell servers run as Python scripts this project does not have.
const ORIGINAL_CONFIG: &str = r#"{
  "bash": {
    "type": "stdio",
    "command": "uv",
    "args": [
      "run",
      "servers/bash_server.py"
    ]
  },
  "powershell": {
    "type": "stdio",
    "command": "python",
    "args": [
      "run",
      "servers/powershell_server.py"
    ]
  },
  "cmd": {
    "type": "stdio",
    "command": "uv",
    "args": [
      "run",
      "servers/cmd_server.py"
    ]
  },
  "wmi": {
    "type": "stdio",
    "command": "uv",
    "args": [
      "run",
      "servers/powershell_server.py"
    ]
  },
  "cmd": {
    "type": "stdio",
    "command": "python",
    "args": [
      "servers/cmd_server.py"
    ]
  },
  "wmi": {
    "type": "stdio",
    "command": "python",
    "args": [
      "servers/wmi_server.py"
    ]
  }
}
"#;

#[test]
fn the_original_projects_config_starts_ready_and_serves_bash_to_an_sdk_client() {
    // Its own command line: --host, --port, --log-level with its level names.
    let gw = Gateway::start_text(
        ORIGINAL_CONFIG,
        &["--host", "127.0.0.1", "--log-level", "warning"],
    );
    let out = gw.stdout();
    for (name, script, server) in [
        ("bash", "servers/bash_server.py", "bash"),
        ("powershell", "servers/powershell_server.py", "powershell"),
        ("cmd", "servers/cmd_server.py", "cmd"),
        ("wmi", "servers/wmi_server.py", "wmi"),
    ] {
        let note = format!(
            "note: backend '{name}': '{script}' (a script of the original MCP-Gateway) is not here; the built-in '{server}' server takes its place"
        );
        assert!(out.contains(&note), "{note}\n{out}");
    }
    assert!(out.contains("4 of 4 backend(s) ready"), "{out}");
    // Each name defined twice: a warning naming both definitions, the later one used.
    for warning in [
        "backend 'cmd' is defined twice (command 'uv run servers/cmd_server.py' and then command 'python servers/cmd_server.py'); the later definition is used",
        "backend 'wmi' is defined twice (command 'uv run servers/powershell_server.py' and then command 'python servers/wmi_server.py'); the later definition is used",
    ] {
        assert!(gw.stderr().contains(warning), "{warning}\n{}", gw.stderr());
    }
    let (status, _, body) = util::http(gw.port, "GET", "/readyz", &[], b"");
    assert_eq!(status, 200, "{body}");
    // The official Python SDK's legacy SSE client, on the address every user has.
    let seen = run_client(
        &gw,
        &sdk_python(),
        "tests/python/sdk_sse_client.py",
        &gw.url,
        &[],
    );
    assert!(
        seen["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("bash__bash")),
        "{seen}"
    );
    assert_eq!(seen["ok_structured"]["stdout"], "sdk-ok\n", "{seen}");
    drop(gw);
    // Its tools under their own names, as the original exposed them.
    let gw = Gateway::start_text(ORIGINAL_CONFIG, &["--no-prefix"]);
    let c = gw.connect();
    c.initialize();
    let mut names = c.tool_names();
    names.sort();
    assert_eq!(names, ["PowerShell", "bash", "cmd", "query_wmi"]);
    let r = c.call(json!(1), "bash", json!({"command": "echo own-name"}));
    assert_eq!(
        r["result"]["structuredContent"]["stdout"], "own-name\n",
        "{r}"
    );
}

#[test]
fn names_without_prefixes_clash_by_file_order_with_a_warning() {
    let gw = Gateway::start(&json!({
        "gateway": {"prefix": false},
        "first": fixture(&["--tag", "one"]),
        "second": fixture(&["--tag", "two"]),
    }));
    let c = gw.connect();
    c.initialize();
    let r = c.call(json!(1), "echo", json!({"text": "x", "tag": "t"}));
    assert_eq!(r["result"]["content"][0]["text"], "t:x");
    let names = c.tool_names();
    assert!(names.contains(&"echo".to_string()), "{names:?}");
    let clash = names.iter().find(|n| n.starts_with("echo") && *n != "echo");
    assert!(
        clash.is_some(),
        "the second 'echo' gets a unique name: {names:?}"
    );
    assert!(
        gw.stderr()
            .contains("tool 'echo' of backend 'second' is exposed as"),
        "{}",
        gw.stderr()
    );
}

/// Runs `mcp-gateway ARGS --config FILE` on a config file with this text, in its directory;
/// the exit code and what it printed (stdout and stderr).
fn run_in_dir(text: &str, args: &[&str]) -> (i32, String, util::TempDir) {
    let dir = util::TempDir::new();
    std::fs::write(dir.path().join("config.json"), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .current_dir(dir.path())
        .args(args)
        .args(["--log-dir", "logs", "--config", "config.json"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text, dir)
}

#[test]
fn vscode_mcp_json_runs_and_its_prompted_inputs_say_what_to_do() {
    let script = root().join("tests/fixtures/stdio_server.py");
    let vscode = json!({
        "inputs": [{"type": "promptString", "id": "api-key", "description": "The API key", "password": true}],
        "servers": {
            "fx": {"type": "stdio", "command": "python3", "args": [script, "--tag", "${env:FX_TAG}"]}
        }
    });
    let gw = Gateway::start_env(&vscode, &[], &[("FX_TAG", "vs")]);
    let c = gw.connect();
    c.initialize();
    let r = c.request(json!(1), "resources/read", json!({"uri": "mem://vs"}));
    assert!(r["result"]["contents"][0]["text"].is_string(), "{r}");
    let mut prompted = vscode.clone();
    prompted["servers"]["fx"]["env"] = json!({"KEY": "${input:api-key}"});
    let (code, out, dir) = run_in_dir(&prompted.to_string(), &["check"]);
    assert_eq!(code, 2, "{out}");
    let expected = format!(
        "{}: backend 'fx': field 'env.KEY': '${{input:api-key}}' asks VS Code to prompt for a value, which a gateway cannot do: put the value in an environment variable and write '${{env:NAME}}' (or '${{NAME}}') instead (the input 'api-key' is \"The API key\")",
        "config.json"
    );
    assert!(out.contains(&expected), "{out}");
    drop(dir);
}

#[test]
fn readiness_names_what_is_not_ready_and_only_required_backends_decide() {
    let broken = fixture(&["--require-file", "/nonexistent/setup-done"]);
    let gw = Gateway::start(&json!({"fx": fixture(&[]), "broken": broken}));
    let (status, _, body) = util::http(gw.port, "GET", "/readyz", &[], b"");
    assert_eq!(status, 200, "one healthy backend is enough: {body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["not_ready"], json!(["broken"]), "{body}");
    assert_eq!(ready["backends"][0]["name"], "broken", "{body}");
    let reason = ready["backends"][0]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        reason.contains("its stderr ends: fixture: /nonexistent/setup-done is missing; giving up"),
        "{reason}"
    );
    drop(gw);
    let mut broken = broken;
    broken["required"] = json!(true);
    let gw = Gateway::start(&json!({"fx": fixture(&[]), "broken": broken}));
    let (status, _, body) = util::http(gw.port, "GET", "/readyz", &[], b"");
    assert_eq!(status, 503, "a required backend is down: {body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["not_ready"], json!(["broken"]), "{body}");
    assert_eq!(ready["backends"][0]["name"], "broken", "{body}");
    assert_eq!(ready["backends"][0]["required"], true, "{body}");
}

#[test]
fn a_failed_backend_says_why_in_its_own_words() {
    // npx for a package that does not exist: the 404, not npm's "a complete log is in".
    let config = json!({
        "ghost": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-that-does-not-exist-15"],
                  "restart": "never"}
    });
    let (code, out, _dir) = run_in_dir(&config.to_string(), &["check"]);
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("ghost"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("404"), "{line}");
    assert!(!line.contains("A complete log"), "{line}");
    // A relative program: where it was looked for.
    let config = json!({"rel": {"command": "./bin/server", "restart": "never"}});
    let (code, out, dir) = run_in_dir(&config.to_string(), &["check"]);
    assert_eq!(code, 1, "{out}");
    let expected = format!(
        "cannot start './bin/server' (relative to {})",
        dir.path().canonicalize().unwrap().display()
    );
    assert!(out.contains(&expected), "{expected}\n{out}");
    let config = json!({"bare": {"command": "no-such-program-15", "restart": "never"}});
    let (_, out, _dir) = run_in_dir(&config.to_string(), &["check"]);
    assert!(
        out.contains("cannot start 'no-such-program-15' (not found on the PATH)"),
        "{out}"
    );
}

#[test]
fn refused_command_line_values_say_what_is_accepted() {
    for (args, expected) in [
        (
            &["--port", "abc"][..],
            "--port: expected a port number from 0 to 65535, got 'abc'",
        ),
        (
            &["--port", "70000"],
            "--port: expected a port number from 0 to 65535, got '70000'",
        ),
        (
            &["--startup-wait", "soon"],
            "--startup-wait: expected a whole number of seconds (0: lists do not wait), got 'soon'",
        ),
        (
            &["--init-timeout", "0"],
            "--init-timeout: expected a whole number of seconds, at least 1, got '0'",
        ),
        (
            &["--log-level", "verbose"],
            "--log-level: expected one of debug, info, warning (or warn), error, critical",
        ),
        (
            &["--trusted-proxy", "proxy"],
            "--trusted-proxy: expected an IP address",
        ),
    ] {
        let err = util::usage_error(args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// A name two backends contest is a warning when it arises and a note in the start-up
/// summary; where both are read in one place (a terminal, `2>&1`, the journal) it is said
/// once, and the summary counts it.
#[test]
fn a_contested_resource_is_said_once_where_stdout_and_stderr_are_one() {
    let dir = util::TempDir::new();
    let config = json!({"a": fixture(&["--tag", "a"]), "b": fixture(&["--tag", "b"])});
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let exe = env!("CARGO_BIN_EXE_mcp-gateway");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec '{exe}' --config config.json --port 0 2>&1"))
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let done = line.starts_with("Connect MCP clients");
            let _ = tx.send(line);
            if done {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !lines
        .last()
        .is_some_and(|l: &String| l.starts_with("Connect MCP clients"))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    let said =
        "resource 'mem://shared' of backend 'b' is exposed as 'mcp-gateway://b/mem://shared'";
    assert_eq!(text.matches(said).count(), 1, "{text}");
    assert!(
        text.contains("name(s) rewritten or contested: see the warnings above"),
        "{text}"
    );
}
