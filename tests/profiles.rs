//! Profiles: named views of the catalogue at their own endpoints (`/p/NAME/mcp`,
//! `/p/NAME/sse`, `--stdio --profile NAME`), through the real binary.

mod util;

use serde_json::{Value, json};
use util::{Gateway, McpClient, SseClient, fixture};

/// Two fixture backends and the built-in bash server; a coding profile (one backend, its
/// echo-like tools, a description of its own), a read-only one (both backends' `state`
/// tools only, no prompts), and an admin profile that names bash.
fn gateway() -> Gateway {
    Gateway::start(&json!({
        "gateway": {"profiles": {
            "coding": {"backends": ["code"], "tools": {"allow": ["code__*"], "deny": ["code__crash", "code__freeze"]},
                       "descriptions": {"code__echo": "Echo, for the coding agent"}},
            "readonly": {"tools": {"allow": ["*__state"]}, "prompts": {"deny": ["*"]},
                         "resources": {"allow": ["mem://shared"]}},
            "admin": {"backends": ["code", "ops", "sh"]}
        }},
        "code": fixture(&["--tag", "code"]),
        "ops": fixture(&["--tag", "ops"]),
        "sh": {"type": "builtin", "server": "bash"},
    }))
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list["result"][field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field}: {list}"))
        .iter()
        .filter_map(|t| t["name"].as_str().map(String::from))
        .collect()
}

#[test]
fn two_profiles_over_both_transports_see_and_call_only_their_own() {
    let gw = gateway();
    let last = |answers: Vec<Value>| answers.last().cloned().unwrap_or_default();
    // The start-up summary names each profile, its tool count and its endpoints.
    let said = gw.stdout();
    assert!(
        said.contains("profile readonly: 2 tool(s) at /p/readonly/mcp and /p/readonly/sse"),
        "{said}"
    );

    // Streamable HTTP at the coding profile: its backend's tools, minus the denied ones.
    let coding = McpClient::try_connect_at(gw.port, "/p/coding/mcp").unwrap();
    let list = last(coding.request(json!(1), "tools/list", json!({})));
    let tools = names(&list, "tools");
    assert!(tools.contains(&"code__echo".to_string()), "{tools:?}");
    assert!(tools.iter().all(|t| t.starts_with("code__")), "{tools:?}");
    assert!(!tools.contains(&"code__crash".to_string()), "{tools:?}");
    let echo = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "code__echo")
        .unwrap();
    assert_eq!(echo["description"], "Echo, for the coding agent");
    let called = coding.call(json!(2), "code__echo", json!({"text": "hi"}));
    assert_eq!(called["result"]["content"][0]["text"], "hi", "{called}");
    // Another backend's tool, and a denied one, are as unknown as a missing one.
    for tool in ["ops__echo", "code__crash", "sh__run"] {
        let refused = coding.call(json!(3), tool, json!({}));
        assert_eq!(refused["error"]["code"], -32602, "{tool}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("unknown tool"), "{message}");
    }
    // Its session is not another endpoint's.
    let (status, _, _) = McpClient::post(
        gw.port,
        Some(&coding.session),
        &[],
        &json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {}}),
    );
    assert_eq!(status, 404, "a profile's session at /mcp");

    // HTTP+SSE at the read-only profile: the state tools of both backends (not bash's,
    // which a profile must name), no prompts, one resource.
    let readonly = SseClient::try_connect_at(gw.port, "/p/readonly/sse").unwrap();
    readonly.initialize();
    let tools = names(
        &readonly.request(json!(1), "tools/list", json!({})),
        "tools",
    );
    assert_eq!(tools, ["code__state", "ops__state"]);
    let prompts = names(
        &readonly.request(json!(2), "prompts/list", json!({})),
        "prompts",
    );
    assert!(prompts.is_empty(), "{prompts:?}");
    let resources = readonly.request(json!(3), "resources/list", json!({}));
    let uris: Vec<&str> = resources["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert_eq!(uris, ["mem://shared"], "{resources}");
    let state = readonly.call(json!(4), "code__state", json!({}));
    assert!(state["result"]["content"].is_array(), "{state}");
    let refused = readonly.call(json!(5), "code__echo", json!({"text": "x"}));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let unread = readonly.request(json!(6), "resources/read", json!({"uri": "mem://code"}));
    assert_eq!(unread["error"]["code"], -32002, "{unread}");
    let prompt = readonly.request(
        json!(7),
        "prompts/get",
        json!({"name": "code__greet", "arguments": {"who": "x"}}),
    );
    assert_eq!(prompt["error"]["code"], -32602, "{prompt}");

    // The endpoints without a profile serve everything, bash included, as before.
    let all = McpClient::connect(gw.port);
    let tools = names(
        &last(all.request(json!(1), "tools/list", json!({}))),
        "tools",
    );
    assert!(tools.iter().any(|t| t.starts_with("sh__")), "{tools:?}");
    assert!(tools.contains(&"ops__echo".to_string()), "{tools:?}");
    // The admin profile names bash, so it has it.
    let admin = McpClient::try_connect_at(gw.port, "/p/admin/mcp").unwrap();
    let tools = names(
        &last(admin.request(json!(1), "tools/list", json!({}))),
        "tools",
    );
    assert!(tools.iter().any(|t| t.starts_with("sh__")), "{tools:?}");

    // An unknown profile is 404 naming the ones there are.
    let (status, _, body) = McpClient::post_at(
        gw.port,
        "/p/nope/mcp",
        None,
        &[],
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}),
    );
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("admin, coding, readonly"), "{body}");
}

#[test]
fn a_list_change_reaches_only_the_sessions_whose_view_changed() {
    let gw = gateway();
    let coding = SseClient::try_connect_at(gw.port, "/p/coding/sse").unwrap();
    coding.initialize();
    let readonly = SseClient::try_connect_at(gw.port, "/p/readonly/sse").unwrap();
    readonly.initialize();
    let whole = gw.connect();
    whole.initialize();
    // `code` gains the tool `code__extra`: in the coding view and the whole catalogue, not
    // in the read-only one (state tools only).
    let added = whole.call(json!(1), "code__add_tool", json!({}));
    assert!(added["result"].is_object(), "{added}");
    let changed = |c: &SseClient, wait: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match c.next_message(left) {
                Some(m) if m["method"] == "notifications/tools/list_changed" => return true,
                Some(_) => continue,
                None => break,
            }
        }
        false
    };
    assert!(changed(&coding, 10), "the coding session heard of it");
    assert!(
        changed(&whole, 10),
        "the whole catalogue's session heard of it"
    );
    assert!(
        !changed(&readonly, 2),
        "the read-only session's view did not change"
    );
    let tools = names(&coding.request(json!(2), "tools/list", json!({})), "tools");
    assert!(tools.contains(&"code__extra".to_string()), "{tools:?}");
}

#[test]
fn a_2026_request_at_a_profiles_endpoint_sees_its_view() {
    let gw = gateway();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/list"),
    ];
    let (status, _, text) = McpClient::post_at(gw.port, "/p/readonly/mcp", None, &headers, &body);
    assert_eq!(status, 200, "{text}");
    let answer = util::last_message(&text);
    assert_eq!(names(&answer, "tools"), ["code__state", "ops__state"]);
}

#[test]
fn stdio_serves_the_profile_it_is_given_and_refuses_an_unknown_one() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let config = json!({
        "gateway": {"profiles": {"coding": {"backends": ["code"]}}},
        "code": fixture(&["--tag", "code"]),
        "ops": fixture(&["--tag", "ops"]),
    });
    let dir = util::TempDir::new();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let bin = env!("CARGO_BIN_EXE_mcp-gateway");
    let wrong = Command::new(bin)
        .args(["--stdio", "--profile", "nope", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2), "a usage error");
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("no such profile") && said.contains("coding"),
        "{said}"
    );

    // `tools --profile` prints what the profile's sessions reach.
    let listed = Command::new(bin)
        .args(["tools", "--json", "--profile", "coding", "--log-dir"])
        .arg(dir.path().join("logs"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let tools: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let tools = tools.as_array().unwrap();
    assert!(!tools.is_empty(), "{tools:?}");
    assert!(tools.iter().all(|t| t["backend"] == "code"), "{tools:?}");
    let said = String::from_utf8_lossy(&listed.stderr);
    assert!(
        said.contains(&format!("profile coding: {} tool(s)", tools.len())),
        "{said}"
    );

    let mut child = Command::new(bin)
        .args(["--stdio", "--profile", "coding", "--log-dir"])
        .arg(dir.path().join("logs"))
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for msg in [
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
    ] {
        writeln!(stdin, "{msg}").unwrap();
    }
    let mut listed = Value::Null;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        let msg: Value = serde_json::from_str(&line).unwrap_or_default();
        line.clear();
        if msg["id"] == 1 {
            listed = msg;
            break;
        }
    }
    let tools = names(&listed, "tools");
    assert!(
        !tools.is_empty() && tools.iter().all(|t| t.starts_with("code__")),
        "{tools:?}"
    );
    drop(stdin);
    let _ = child.wait();
}

/// Every line of every file in the gateway's log directory.
fn logged(gw: &Gateway) -> String {
    let dir = gw.dir.path().join("logs");
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

#[test]
fn a_client_token_opens_only_its_profiles_and_the_audit_names_its_label() {
    let secrets = util::TempDir::new();
    let file = secrets.path().join("dashboard.token");
    std::fs::write(&file, "dash-secret-4d1f\n").unwrap();
    let gw = Gateway::start_env(
        &json!({
            "gateway": {
                "token": "admin-secret-9b2c",
                "tokens": {
                    "coding-agent": {"token": "${AGENT_TOKEN}", "profiles": ["coding"]},
                    "dashboard": {"tokenFile": file, "profiles": ["readonly"]}
                },
                "profiles": {
                    "coding": {"backends": ["code"]},
                    "readonly": {"tools": {"allow": ["*__state"]}},
                    "admin": {"backends": ["code", "ops", "sh"]}
                }
            },
            "code": fixture(&["--tag", "code"]),
            "ops": fixture(&["--tag", "ops"]),
            "sh": {"type": "builtin", "server": "bash"},
        }),
        &[],
        &[("AGENT_TOKEN", "agent-secret-7e3a")],
    );
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "agent", "version": "1"}}});
    let post = |path: &str, token: &str| {
        let auth = format!("Bearer {token}");
        McpClient::post_at(gw.port, path, None, &[("Authorization", &auth)], &init)
    };
    // The agent's token opens its profile, and nothing else: not another profile, not the
    // whole catalogue (where bash is).
    let (status, headers, _) = post("/p/coding/mcp", "agent-secret-7e3a");
    assert_eq!(status, 200);
    for path in [
        "/p/readonly/mcp",
        "/p/admin/mcp",
        "/mcp",
        "/sse",
        "/metrics",
    ] {
        let (status, _, body) = post(path, "agent-secret-7e3a");
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body.contains("the token 'coding-agent' opens the profiles coding"),
            "{body}"
        );
    }
    // An unknown profile's 404 names only the profiles the token opens.
    let (status, _, body) = post("/p/nope/mcp", "agent-secret-7e3a");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("(profiles: coding)"), "{body}");
    assert!(
        !body.contains("admin") && !body.contains("readonly"),
        "{body}"
    );
    // The dashboard's token, read from its file, opens its own.
    assert_eq!(post("/p/readonly/mcp", "dash-secret-4d1f").0, 200);
    assert_eq!(post("/p/coding/mcp", "dash-secret-4d1f").0, 403);
    // The gateway's own token opens everything; no token, or a wrong one, is 401.
    assert_eq!(post("/mcp", "admin-secret-9b2c").0, 200);
    assert_eq!(post("/p/coding/mcp", "admin-secret-9b2c").0, 200);
    // Bash is in the admin profile, which only the gateway's own token opens here.
    let (status, admin_headers, _) = post("/p/admin/mcp", "admin-secret-9b2c");
    assert_eq!(status, 200);
    let admin_session = admin_headers
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .unwrap();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let admin_auth = [("Authorization", "Bearer admin-secret-9b2c")];
    let (_, _, body) = McpClient::post_at(
        gw.port,
        "/p/admin/mcp",
        Some(&admin_session),
        &admin_auth,
        &list,
    );
    assert!(body.contains("sh__"), "{body}");
    assert_eq!(post("/p/coding/mcp", "nope").0, 401);

    // A call through the agent's session: the audit line names the token's label and the
    // profile, and no secret is written anywhere.
    let session = headers
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .unwrap();
    let auth = [("Authorization", "Bearer agent-secret-7e3a")];
    let send = |body: Value, auth: &[(&str, &str)]| {
        McpClient::post_at(gw.port, "/p/coding/mcp", Some(&session), auth, &body)
    };
    send(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        &auth,
    );
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "code__echo", "arguments": {"text": "hi"}}});
    let (status, _, body) = send(call.clone(), &auth);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"hi\""), "{body}");
    // The session is the agent's: the dashboard's token cannot use it.
    let (status, _, _) = send(call, &[("Authorization", "Bearer dash-secret-4d1f")]);
    assert_eq!(status, 403);
    let deadline = std::time::Instant::now() + util::WAIT;
    let line = loop {
        let text = logged(&gw);
        if let Some(l) = text.lines().find(|l| l.contains("\"tool\":\"code__echo\"")) {
            break l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audit line:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let record: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["token"], "coding-agent", "{record}");
    assert_eq!(record["profile"], "coding", "{record}");
    // The start names each client token by label and what it opens.
    let said = gw.stdout();
    assert!(
        said.contains("client token 'coding-agent' opens the profiles coding"),
        "{said}"
    );
    assert!(
        said.contains("client token 'dashboard' opens the profiles readonly"),
        "{said}"
    );
    let everything = format!("{}{}{}", logged(&gw), gw.stderr(), gw.stdout());
    for secret in ["agent-secret-7e3a", "dash-secret-4d1f", "admin-secret-9b2c"] {
        assert!(
            !everything.contains(secret),
            "{secret} was written somewhere"
        );
    }
}

#[test]
fn a_client_token_too_short_to_be_secret_stops_the_start() {
    let (code, said) = util::start_refused(&json!({
        "gateway": {"tokens": {"ci": {"token": "x", "profiles": ["p"]}}, "profiles": {"p": {}}},
        "a": fixture(&[])}));
    assert_eq!(code, Some(2));
    assert!(
        said.contains("token 'ci': a client token must be at least 12 characters (this one has 1)"),
        "{said}"
    );
}

#[test]
fn a_token_naming_a_missing_profile_or_an_unreadable_file_stops_the_start() {
    for (config, expected) in [
        (
            json!({"gateway": {"tokens": {"ci": {"token": "t", "profiles": ["nope"]}}}, "a": fixture(&[])}),
            "token 'ci': field 'profiles': no profile is named 'nope'",
        ),
        (
            json!({"gateway": {"tokens": {"ci": {"tokenFile": "/nonexistent/t", "profiles": ["p"]}},
                               "profiles": {"p": {}}}, "a": fixture(&[])}),
            "token 'ci': field 'tokenFile': cannot read '/nonexistent/t'",
        ),
    ] {
        let (code, said) = util::start_refused(&config);
        assert!(code != Some(0), "{expected}: {said}");
        assert!(said.contains(expected), "{expected}: {said}");
    }
}

/// A profile in catalogue mode over a backend with 300 generated tools (and the fixture's
/// own), and the whole catalogue beside it.
fn catalogue_gateway() -> Gateway {
    Gateway::start(&json!({
        "gateway": {"profiles": {"agent": {"catalogue": true, "tools": {"deny": ["big__crash"]}}}},
        "big": fixture(&["--many", "300"]),
    }))
}

#[test]
fn catalogue_mode_lets_the_sdks_find_and_call_one_tool_among_300() {
    let gw = catalogue_gateway();
    let url = format!("http://127.0.0.1:{}/p/agent/mcp", gw.port);
    let three = json!(["call_tool", "describe_tool", "search_tools"]);

    let seen = util::run_client(
        &gw,
        &util::sdk_python(),
        "tests/python/sdk_catalogue.py",
        &url,
        &["kw137x"],
    );
    assert_eq!(seen["tools"], three, "{seen}");
    assert_eq!(seen["found"], json!(["big__gen_137"]), "{seen}");
    assert_eq!(seen["total"], 1, "{seen}");
    assert!(
        seen["described"]
            .as_str()
            .unwrap_or_default()
            .contains("kw137x"),
        "{seen}"
    );
    assert_eq!(seen["called"], "gen_137 ran with {\"n\": 7}", "{seen}");
    // The backend's structuredContent comes through as it sent it.
    assert_eq!(
        seen["structured"],
        json!({"tool": "gen_137", "arguments": {"n": 7}}),
        "{seen}"
    );
    assert_eq!(seen["missing_is_error"], true, "{seen}");

    let node = std::path::Path::new("node");
    let seen = util::run_client(&gw, node, "tests/node/sdk_catalogue.mjs", &url, &["kw42x"]);
    assert_eq!(seen["tools"], three, "{seen}");
    assert_eq!(seen["found"], json!(["big__gen_042"]), "{seen}");
    assert_eq!(seen["called"], "gen_042 ran with {\"n\": 8}", "{seen}");
}

#[test]
fn a_catalogue_search_is_ranked_and_paged_and_its_calls_keep_the_backends_errors() {
    let gw = catalogue_gateway();
    let c = McpClient::try_connect_at(gw.port, "/p/agent/mcp").unwrap();
    let call = |id: u64, tool: &str, args: Value| c.call(json!(id), tool, args);
    // A word in a name outranks one in a description: "echo" names one tool and is in
    // the description of none of the generated ones.
    let found = call(1, "search_tools", json!({"query": "echo"}));
    let tools = &found["result"]["structuredContent"]["tools"];
    assert_eq!(tools[0]["name"], "big__echo", "{found}");
    // Every generated tool says "Generated": 300 matches, paged 50 at most.
    let mut names = Vec::new();
    let mut cursor = Value::Null;
    for id in 2..20 {
        let mut args = json!({"query": "generated", "limit": 50});
        if !cursor.is_null() {
            args["cursor"] = cursor.clone();
        }
        let page = call(id, "search_tools", args);
        let s = &page["result"]["structuredContent"];
        assert_eq!(s["total"], 300, "{page}");
        names.extend(
            s["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].clone()),
        );
        cursor = s["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(names.len(), 300);
    // A call keeps the backend's own tool error; a tool outside the profile is unknown.
    let failed = call(30, "call_tool", json!({"name": "big__fail"}));
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    assert_eq!(
        failed["result"]["content"][0]["text"], "it failed",
        "{failed}"
    );
    let denied = call(31, "call_tool", json!({"name": "big__crash"}));
    assert_eq!(denied["error"]["code"], -32602, "{denied}");
    let unnamed = call(32, "call_tool", json!({}));
    assert_eq!(unnamed["error"]["code"], -32602, "{unnamed}");
    // The whole catalogue is unchanged: all of its tools listed.
    let all = McpClient::connect(gw.port);
    let listed = all.request(json!(1), "tools/list", json!({}));
    let count = listed.last().unwrap()["result"]["tools"]
        .as_array()
        .unwrap()
        .len();
    assert!(count > 300, "{count}");
}

#[test]
fn an_input_required_round_resumes_only_at_the_endpoint_it_was_asked_at() {
    let backend = util::root().join("tests/fixtures/conformance_server.py");
    let gw = Gateway::start(&json!({
        "gateway": {"profiles": {"p": {}}},
        "conf": {"command": "python3", "args": [backend]},
    }));
    let tool = "conf__test_elicitation";
    let post = |path: &str, extra: Value| {
        let mut params = json!({"name": tool, "arguments": {"message": "Who?"}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}});
        for (k, v) in extra.as_object().unwrap() {
            params[k] = v.clone();
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});
        let headers = [
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", tool),
        ];
        let (_, _, text) = McpClient::post_at(gw.port, path, None, &headers, &body);
        util::last_message(&text)
    };
    let asked = post("/p/p/mcp", json!({}));
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    let state = asked["result"]["requestState"].clone();
    let key = asked["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let answer = json!({"requestState": state, "inputResponses": {
        key: {"action": "accept", "content": {"username": "ada", "email": "a@b.c"}}}});
    // Not at the whole catalogue's endpoint...
    let elsewhere = post("/mcp", answer.clone());
    assert_eq!(elsewhere["error"]["code"], -32602, "{elsewhere}");
    let message = elsewhere["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("another endpoint"), "{message}");
    // ...but at the profile's, where the call was made, it goes on.
    let done = post("/p/p/mcp", answer);
    let text = done["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("ada"), "{done}");
}

#[test]
fn a_catalogue_search_says_which_backends_are_still_starting() {
    let gw = Gateway::start_listening(
        &json!({
            "gateway": {"profiles": {"agent": {"catalogue": true}}},
            "quick": fixture(&["--tag", "quick"]),
            "slow": fixture(&["--tag", "slow", "--start-delay", "30"]),
        }),
        &["--startup-wait", "0"],
    );
    util::eventually("'quick' is ready", || {
        let (_, _, body) = util::http(gw.port, "GET", "/readyz", &[], b"");
        body.contains("\"ready\":true")
    });
    let c = McpClient::try_connect_at(gw.port, "/p/agent/mcp").unwrap();
    let found = c.call(json!(1), "search_tools", json!({"query": "echo"}));
    let text = found["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("still starting, their tools not searchable yet: slow"),
        "{found}"
    );
    assert_eq!(
        found["result"]["structuredContent"]["starting"],
        json!(["slow"]),
        "{found}"
    );
    assert_eq!(
        found["result"]["structuredContent"]["tools"][0]["name"], "quick__echo",
        "{found}"
    );
}
