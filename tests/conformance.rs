//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, all server
//! scenarios) against the gateway's Streamable HTTP endpoint, with a conformance backend
//! behind it over stdio, exposed without a prefix so the suite finds its tool names. The
//! backend speaks only the legacy revisions, so every 2026-07-28 scenario that passes
//! (the suite's pre-release, `conformance-2026`) passes through the gateway's translation.

mod util;

use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;
use util::{Gateway, root};

/// Every server scenario of conformance 0.1.16 (`conformance list`).
const SCENARIOS: usize = 32;

/// Runs a conformance suite (`package` under tests/node/node_modules) with `args` against
/// a gateway in front of the conformance backend; the gateway, whether the suite exited
/// well, its summary and its stderr.
fn run_suite(package: &str, args: &[&str], limit: Duration) -> (Gateway, bool, String, String) {
    let node_modules = root().join("tests/node/node_modules");
    let node22 = node_modules.join(".bin/node");
    let suite = node_modules.join(package).join("dist/index.js");
    assert!(
        node22.exists() && suite.exists(),
        "{package} or Node 22 is missing: run tests/run, which installs both into tests/node"
    );
    let backend = root().join("tests/fixtures/conformance_server.py");
    let gw =
        Gateway::start(&json!({ "conf": {"command": "python3", "args": [backend], "prefix": ""} }));
    let results = util::TempDir::new();
    let child = Command::new(&node22)
        .arg(&suite)
        .args(["server", "--url", &gw.mcp_url])
        .args(args)
        .current_dir(results.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the conformance suite");
    let out = util::finish_within(child, limit, package, Some(&gw));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .split("=== SUMMARY ===")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (gw, out.status.success(), summary, stderr)
}

#[test]
fn conformance_suite_passes_through_the_gateway() {
    let (gw, exited_well, summary, stderr) = run_suite(
        "@modelcontextprotocol/conformance",
        &["--suite", "all"],
        Duration::from_secs(300),
    );
    let passed: Vec<&str> = summary.lines().filter(|l| l.starts_with('✓')).collect();
    let failed: Vec<&str> = summary.lines().filter(|l| l.starts_with('✗')).collect();
    assert!(
        exited_well && failed.is_empty() && passed.len() == SCENARIOS,
        "conformance: {} of {SCENARIOS} scenarios passed; failed: {failed:#?}\n{summary}\nstderr:\n{stderr}\ngateway stderr:\n{}",
        passed.len(),
        gw.stderr()
    );
    println!("{summary}");
}

/// The 2026-07-28 scenario the gateway does not pass, for the reason docs/clients.md's
/// Conformance section gives: `input-required-result-basic-elicitation` wants the input's
/// key to be `user_name`, a name a legacy backend has no way to give (the gateway names
/// the inputs it asks for).
const NOT_YET_2026: &[&str] = &["input-required-result-basic-elicitation"];

#[test]
fn the_2026_07_28_suite_passes_through_the_gateway_but_for_the_known_gaps() {
    let (gw, _, summary, _) = run_suite(
        "conformance-2026",
        &["--requirements", "2026-07-28"],
        Duration::from_secs(600),
    );
    let name = |line: &str| {
        line.trim_start_matches(['✓', '✗', ' '])
            .split([':', ' '])
            .next()
            .unwrap_or_default()
            .to_string()
    };
    // The extension (tasks) and pending scenarios are listed again under "Not scored";
    // they do not count for the revision, but the gateway passes them all the same.
    let all = summary.split("Not scored").next().unwrap_or_default();
    let marked = |mark: char| -> Vec<String> {
        all.lines()
            .filter(|l| l.starts_with(mark))
            .map(name)
            .collect()
    };
    let (passed, failed) = (marked('✓'), marked('✗'));
    let tasks = passed.iter().filter(|n| n.starts_with("tasks-")).count();
    let unexpected: Vec<&String> = failed
        .iter()
        .filter(|f| !NOT_YET_2026.contains(&f.as_str()))
        .collect();
    assert!(
        passed.len() >= 49 && tasks == 10 && unexpected.is_empty(),
        "2026-07-28: {} scenarios passed ({tasks} of the tasks extension's 10); failing beyond the known gaps: {unexpected:#?}\n{summary}\ngateway stderr:\n{}",
        passed.len(),
        gw.stderr()
    );
    println!("{summary}");
}
