//! Real third-party software on both sides of the real gateway: the official MCP Python
//! and TypeScript SDK clients in front, `@modelcontextprotocol/server-everything` behind.

mod util;

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use util::{Gateway, root};
use wait_timeout::ChildExt;

/// server-everything, installed by `tests/run` into tests/node/node_modules.
fn everything() -> PathBuf {
    let path = root()
        .join("tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run tests/run, which installs it",
        path.display()
    );
    path
}

/// Runs a client program (bounded to 90 s) and returns the JSON line it printed.
fn run_client(gw: &Gateway, program: &str, args: &[PathBuf]) -> Value {
    let mut child = Command::new(program)
        .args(args)
        .arg(&gw.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if child
        .wait_timeout(Duration::from_secs(90))
        .unwrap()
        .is_none()
    {
        let _ = child.kill();
        panic!(
            "the client did not finish within 90 s\ngateway stderr:\n{}",
            gw.stderr()
        );
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client failed: {}\nstdout:\n{stdout}\nstderr:\n{}\ngateway stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        gw.stderr()
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn everything_gateway() -> Gateway {
    let ev = everything();
    Gateway::start(&json!({
        "ev": {"command": "node", "args": [ev]},
        "evs": {"command": "node", "args": [ev], "scope": "session"},
    }))
}

#[test]
fn python_sdk_uses_everything_server_features_through_the_gateway() {
    let gw = everything_gateway();
    let seen = run_client(
        &gw,
        sdk_python().to_str().unwrap(),
        &[root().join("tests/python/sdk_everything.py")],
    );
    assert_eq!(seen["has_tools"], true, "{seen}");
    assert_eq!(seen["resources"], 14, "{seen}");
    assert_eq!(seen["read_uri"], "demo://resource/dynamic/text/1");
    assert_eq!(
        seen["updated"], "demo://resource/dynamic/text/1",
        "subscription update: {seen}"
    );
    assert_eq!(
        seen["prompts"],
        json!([
            "ev__args-prompt",
            "ev__completable-prompt",
            "ev__resource-prompt",
            "ev__simple-prompt"
        ])
    );
    assert_eq!(seen["prompt_text"], "What's weather in Paris, TX?");
    assert_eq!(seen["completion"], json!(["Engineering"]));
    assert_eq!(seen["progress"], json!([1.0, 2.0, 3.0]));
    assert_eq!(seen["sampling"], 1);
    assert_eq!(
        seen["sampling_result"], true,
        "the sampled text reached the server: {seen}"
    );
    assert_eq!(seen["elicitation"], 1);
    assert_eq!(seen["elicitation_result"], true, "{seen}");
    assert_eq!(seen["logs"], true, "{seen}");
    assert_eq!(seen["roots"], 1, "{seen}");
    assert_eq!(seen["roots_seen_by_server"], true, "{seen}");
}

#[test]
fn typescript_sdk_uses_resources_prompts_and_sampling_through_the_gateway() {
    let gw = everything_gateway();
    let seen = run_client(&gw, "node", &[root().join("tests/node/sdk_everything.mjs")]);
    assert_eq!(seen["server"], "mcp-gateway");
    assert_eq!(seen["resources"], 7, "{seen}");
    assert_eq!(seen["read_ok"], true, "{seen}");
    assert_eq!(
        seen["templates"],
        json!([
            "demo://resource/dynamic/blob/{resourceId}",
            "demo://resource/dynamic/text/{resourceId}"
        ])
    );
    assert_eq!(seen["prompts"].as_array().unwrap().len(), 8, "{seen}");
    assert_eq!(seen["prompt_text"], "What's weather in Lisbon?");
    assert_eq!(seen["sampling_requests"], 1);
    assert_eq!(seen["sampling_result"], true, "{seen}");
}

/// The Python in the venv that `tests/run` creates with the official `mcp` package.
fn sdk_python() -> std::path::PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/run, which installs the official MCP Python SDK into .venv",
        python.display()
    );
    python
}

#[test]
fn python_sdk_sse_client_calls_builtin_bash_on_the_shipped_config() {
    let shipped: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("config.json")).unwrap())
            .unwrap();
    let gw = Gateway::start(&shipped);
    let mut child = Command::new(sdk_python())
        .arg(root().join("tests/python/sdk_sse_client.py"))
        .arg(&gw.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if child
        .wait_timeout(Duration::from_secs(60))
        .unwrap()
        .is_none()
    {
        let _ = child.kill();
        panic!(
            "the Python SDK client did not finish within 60 s\ngateway stderr:\n{}",
            gw.stderr()
        );
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK client failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(seen["server"], "mcp-gateway");
    assert_eq!(seen["protocol"], "2025-11-25");
    assert_eq!(seen["tools"], serde_json::json!(["bash__bash"]));
    assert_eq!(seen["ok_text"], "[exit code 0]\nsdk-ok\n");
    assert_eq!(seen["ok_is_error"], false);
    assert_eq!(seen["ok_structured"]["stdout"], "sdk-ok\n");
    assert_eq!(seen["bad_is_error"], true);
    assert_eq!(seen["bad_structured"]["exitCode"], 4);
    assert_eq!(seen["bad_structured"]["stderr"], "nope\n");
}
