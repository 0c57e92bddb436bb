//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, all server
//! scenarios) against the gateway's Streamable HTTP endpoint, with a conformance backend
//! behind it over stdio, exposed without a prefix so the suite finds its tool names.

mod util;

use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;
use util::{Gateway, root};

/// Every server scenario of conformance 0.1.16 (`conformance list`).
const SCENARIOS: usize = 32;

#[test]
fn conformance_suite_passes_through_the_gateway() {
    let node_modules = root().join("tests/node/node_modules");
    let node22 = node_modules.join(".bin/node");
    let suite = node_modules.join("@modelcontextprotocol/conformance/dist/index.js");
    assert!(
        node22.exists() && suite.exists(),
        "the conformance suite or Node 22 is missing: run tests/run, which installs both into tests/node"
    );
    let backend = root().join("tests/fixtures/conformance_server.py");
    let gw =
        Gateway::start(&json!({ "conf": {"command": "python3", "args": [backend], "prefix": ""} }));
    let results = util::TempDir::new();
    let child = Command::new(&node22)
        .arg(&suite)
        .args(["server", "--url", &gw.mcp_url, "--suite", "all"])
        .current_dir(results.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the conformance suite");
    let out = util::finish_within(
        child,
        Duration::from_secs(300),
        "the conformance suite",
        Some(&gw),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.split("=== SUMMARY ===").nth(1).unwrap_or_default();
    let passed: Vec<&str> = summary.lines().filter(|l| l.starts_with('✓')).collect();
    let failed: Vec<&str> = summary.lines().filter(|l| l.starts_with('✗')).collect();
    assert!(
        out.status.success() && failed.is_empty() && passed.len() == SCENARIOS,
        "conformance: {} of {SCENARIOS} scenarios passed; failed: {failed:#?}\n{summary}\nstderr:\n{}\ngateway stderr:\n{}",
        passed.len(),
        String::from_utf8_lossy(&out.stderr),
        gw.stderr()
    );
    println!("{summary}");
}
