//! Real third-party clients against the real gateway: the official MCP Python SDK.

mod util;

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use util::{Gateway, root};
use wait_timeout::ChildExt;

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
