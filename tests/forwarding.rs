//! Everything besides tools passes through: resources, prompts, completions, progress,
//! cancellation, logging, list changes, subscriptions, per-session backends, paging and
//! version skew. Raw HTTP/SSE clients against the real binary and fixture servers.

mod util;

use serde_json::{Value, json};
use std::time::Duration;
use util::{Gateway, SseClient, fixture};

fn text(r: &Value) -> String {
    r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {r}"))
        .to_string()
}

fn two_tagged() -> Gateway {
    Gateway::start(&json!({
        "a": fixture(&["--tag", "a"]),
        "b": fixture(&["--tag", "b"]),
    }))
}

#[test]
fn same_resource_uri_and_prompt_name_on_two_backends_both_reachable() {
    let gw = two_tagged();
    let c = gw.connect();
    c.initialize();
    let r = c.request(json!(1), "resources/list", json!({}));
    let uris: Vec<&str> = r["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "mcp-gateway://b/mem://shared",
            "mem://a",
            "mem://b",
            "mem://shared"
        ]
    );
    assert!(
        gw.stdout().contains(
            "resource 'mem://shared' of backend 'b' is exposed as 'mcp-gateway://b/mem://shared'"
        ),
        "{}",
        gw.stdout()
    );
    let read = |id: i64, uri: &str| {
        c.request(json!(id), "resources/read", json!({"uri": uri}))["result"]["contents"][0].clone()
    };
    let first = read(2, "mem://shared");
    assert_eq!(
        first,
        json!({"uri": "mem://shared", "mimeType": "text/plain", "text": "a says mem://shared"})
    );
    let second = read(3, "mcp-gateway://b/mem://shared");
    assert_eq!(second["text"], "b says mem://shared");
    assert_eq!(
        second["uri"], "mcp-gateway://b/mem://shared",
        "the client's URI comes back"
    );
    assert_eq!(read(4, "mem://b")["text"], "b says mem://b");
    // Template-made URIs route by template: the earlier backend wins, the rewritten form reaches the other.
    assert_eq!(read(5, "mem://items/7")["text"], "a says mem://items/7");
    assert_eq!(
        read(6, "mcp-gateway://b/mem://items/7")["text"],
        "b says mem://items/7"
    );
    let r = c.request(json!(7), "resources/templates/list", json!({}));
    let templates: Vec<&str> = r["result"]["resourceTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uriTemplate"].as_str().unwrap())
        .collect();
    assert_eq!(
        templates,
        ["mcp-gateway://b/mem://items/{id}", "mem://items/{id}"]
    );
    let r = c.request(json!(8), "resources/read", json!({"uri": "nothing://x"}));
    util::assert_error(&r, -32002, "nothing://x");

    let r = c.request(json!(9), "prompts/list", json!({}));
    let names: Vec<&str> = r["result"]["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a__greet", "b__greet"]);
    for (id, backend) in [(10, "a"), (11, "b")] {
        let r = c.request(
            json!(id),
            "prompts/get",
            json!({"name": format!("{backend}__greet"), "arguments": {"who": "ann"}}),
        );
        assert_eq!(
            r["result"]["messages"][0]["content"]["text"],
            format!("hello ann from {backend}")
        );
    }
    let r = c.request(json!(12), "prompts/get", json!({"name": "greet"}));
    assert_eq!(r["error"]["code"], -32602);
}

#[test]
fn completions_route_by_prompt_or_template() {
    let gw = two_tagged();
    let c = gw.connect();
    c.initialize();
    let r = c.request(json!(1), "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "b__greet"}, "argument": {"name": "who", "value": "an"}}));
    assert_eq!(
        r["result"]["completion"]["values"],
        json!(["an-b", "greet"])
    );
    let r = c.request(json!(2), "completion/complete", json!({"ref": {"type": "ref/resource", "uri": "mcp-gateway://b/mem://items/{id}"}, "argument": {"name": "id", "value": "4"}}));
    assert_eq!(
        r["result"]["completion"]["values"],
        json!(["4-b", "mem://items/{id}"])
    );
    let r = c.request(json!(3), "completion/complete", json!({"ref": {"type": "ref/resource", "uri": "mem://items/{id}"}, "argument": {"name": "id", "value": "4"}}));
    assert_eq!(
        r["result"]["completion"]["values"],
        json!(["4-a", "mem://items/{id}"])
    );
    let r = c.request(json!(4), "completion/complete", json!({"ref": {"type": "ref/prompt", "name": "nope"}, "argument": {"name": "x", "value": ""}}));
    assert_eq!(r["error"]["code"], -32602);
}

#[test]
fn list_changed_reaches_every_session_with_the_new_list() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let c1 = gw.connect();
    let c2 = gw.connect();
    c1.initialize();
    c2.initialize();
    assert!(!c1.tool_names().contains(&"fx__extra".to_string()));
    c1.call(json!(1), "fx__add_tool", json!({}));
    for c in [&c1, &c2] {
        let n = c.next_message(util::WAIT).expect("list_changed");
        assert_eq!(n["method"], "notifications/tools/list_changed");
        assert!(c.tool_names().contains(&"fx__extra".to_string()));
    }
}

#[test]
fn two_sessions_same_progress_token_same_ids_each_get_their_own() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let port = gw.port;
    let threads: Vec<_> = ["left", "right"]
        .into_iter()
        .map(|tag| {
            std::thread::spawn(move || {
                let c = SseClient::connect(port);
                c.initialize();
                c.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                    "name": "fx__progress", "arguments": {"steps": 5, "tag": tag}, "_meta": {"progressToken": "tok"}}}));
                let reply = c.response(&json!(1));
                assert_eq!(text(&reply), format!("done {tag}"));
                let mut progress = Vec::new();
                while let Some(m) = c.next_message(Duration::from_millis(100)) {
                    assert_eq!(m["method"], "notifications/progress", "{m}");
                    assert_eq!(m["params"]["progressToken"], "tok", "the client's own token comes back");
                    assert_eq!(m["params"]["message"], tag, "only this session's progress");
                    progress.push(m["params"]["progress"].as_i64().unwrap());
                }
                assert_eq!(progress, [1, 2, 3, 4, 5]);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn cancellation_reaches_the_backend_and_the_late_reply_is_dropped() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let c = gw.connect();
    c.initialize();
    c.send(&json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": {"name": "fx__sleep", "arguments": {"ms": 300, "text": "late"}}}));
    c.send(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow", "reason": "user gave up"}}));
    // This call ends after the cancelled one would have: had its reply been passed on, it
    // would be on the stream first.
    let after = c.call(
        json!("after"),
        "fx__sleep",
        json!({"ms": 600, "text": "after"}),
    );
    assert_eq!(text(&after), "after");
    assert!(
        c.next_message(Duration::from_millis(100)).is_none(),
        "the cancelled request must get no reply"
    );
    let state: Value =
        serde_json::from_str(&text(&c.call(json!("s"), "fx__state", json!({})))).unwrap();
    let cancelled = state["cancelled"].as_array().unwrap();
    assert_eq!(cancelled.len(), 1, "{state}");
    assert!(
        cancelled[0].is_u64(),
        "the backend sees the gateway's id, not the client's: {state}"
    );
}

#[test]
fn log_messages_reach_sessions_whose_level_admits_them() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let quiet = gw.connect();
    let chatty = gw.connect();
    quiet.initialize();
    chatty.initialize();
    assert_eq!(
        quiet.request(json!(1), "logging/setLevel", json!({"level": "warning"}))["result"],
        json!({})
    );
    assert_eq!(
        chatty.request(json!(1), "logging/setLevel", json!({"level": "debug"}))["result"],
        json!({})
    );
    let r = quiet.request(json!(2), "logging/setLevel", json!({"level": "loud"}));
    assert_eq!(r["error"]["code"], -32602);
    chatty.call(
        json!(2),
        "fx__log",
        json!({"level": "info", "text": "routine"}),
    );
    chatty.call(
        json!(3),
        "fx__log",
        json!({"level": "error", "text": "bad"}),
    );
    let got = |c: &SseClient| {
        let mut seen = Vec::new();
        while let Some(m) = c.next_message(Duration::from_millis(300)) {
            assert_eq!(m["method"], "notifications/message", "{m}");
            seen.push(m["params"]["data"].as_str().unwrap().to_string());
        }
        seen
    };
    assert_eq!(got(&chatty), ["routine", "bad"]);
    assert_eq!(got(&quiet), ["bad"]);
    let state: Value =
        serde_json::from_str(&text(&chatty.call(json!(4), "fx__state", json!({})))).unwrap();
    assert_eq!(
        state["log_level"], "debug",
        "the backend is set to the most verbose level asked for"
    );
}

#[test]
fn subscriptions_are_shared_and_updates_go_only_to_subscribers() {
    // A 1 s keep-alive makes the gateway notice the closed client quickly.
    let gw = Gateway::start_with(&json!({ "fx": fixture(&[]) }), &["--sse-keepalive", "1"]);
    let (s1, s2, other) = (gw.connect(), gw.connect(), gw.connect());
    for c in [&s1, &s2, &other] {
        c.initialize();
    }
    for c in [&s1, &s2] {
        assert_eq!(
            c.request(
                json!("sub"),
                "resources/subscribe",
                json!({"uri": "mem://fx"})
            )["result"],
            json!({})
        );
    }
    other.call(json!(1), "fx__touch", json!({"uri": "mem://fx"}));
    for c in [&s1, &s2] {
        let n = c.next_message(util::WAIT).expect("update");
        assert_eq!(
            n,
            json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "mem://fx"}})
        );
    }
    assert!(other.next_message(Duration::from_millis(200)).is_none());
    let state = |c: &SseClient| -> Value {
        serde_json::from_str(&text(&c.call(json!("st"), "fx__state", json!({})))).unwrap()
    };
    assert_eq!(
        state(&other)["subscribe"],
        json!(["mem://fx"]),
        "one subscription at the backend for both sessions"
    );
    s1.request(
        json!("unsub"),
        "resources/unsubscribe",
        json!({"uri": "mem://fx"}),
    );
    assert_eq!(state(&other)["unsubscribe"], json!([]), "s2 still needs it");
    s2.close();
    util::eventually("no unsubscribe after the last subscriber left", || {
        state(&other)["unsubscribe"] == json!(["mem://fx"])
    });
}

#[test]
fn per_session_backends_keep_separate_state_and_stop_with_the_session() {
    let mut spec = fixture(&[]);
    spec["scope"] = json!("session");
    let gw = Gateway::start_with(&json!({ "fx": spec }), &["--sse-keepalive", "1"]);
    assert!(gw.stdout().contains("per session"), "{}", gw.stdout());
    let a = gw.connect();
    let b = gw.connect();
    a.initialize();
    b.initialize();
    a.call(json!(1), "fx__remember", json!({"value": "mine"}));
    let ra: Value =
        serde_json::from_str(&text(&a.call(json!(2), "fx__recall", json!({})))).unwrap();
    let rb: Value =
        serde_json::from_str(&text(&b.call(json!(2), "fx__recall", json!({})))).unwrap();
    assert_eq!(ra["value"], "mine");
    assert_eq!(rb["value"], Value::Null, "b has its own instance");
    assert_ne!(ra["pid"], rb["pid"]);
    let pid = ra["pid"].as_u64().unwrap() as u32;
    assert!(util::alive(pid));
    a.close();
    util::eventually("the session's instance outlived the session", || {
        !util::alive(pid)
    });
    assert!(
        util::alive(rb["pid"].as_u64().unwrap() as u32),
        "the other session's instance is untouched"
    );
}

#[test]
fn per_session_instances_stop_when_idle_and_come_back_on_demand() {
    let mut spec = fixture(&[]);
    spec["scope"] = json!("session");
    spec["idleTimeout"] = json!(1);
    let gw = Gateway::start(&json!({ "fx": spec }));
    let c = gw.connect();
    c.initialize();
    let first: Value =
        serde_json::from_str(&text(&c.call(json!(1), "fx__recall", json!({})))).unwrap();
    let pid = first["pid"].as_u64().unwrap() as u32;
    util::eventually("idle instance was not stopped", || !util::alive(pid));
    let again: Value =
        serde_json::from_str(&text(&c.call(json!(2), "fx__recall", json!({})))).unwrap();
    assert_ne!(again["pid"], first["pid"]);
}

#[test]
fn large_lists_are_paged_with_the_gateways_own_cursor() {
    let gw = Gateway::start_with(
        &json!({ "a": fixture(&["--pages", "2"]), "b": fixture(&[]) }),
        &["--page-size", "5"],
    );
    let c = gw.connect();
    c.initialize();
    let mut names = Vec::new();
    let mut cursor = Value::Null;
    for page in 0.. {
        assert!(page < 10, "paging never ends");
        let params = if cursor.is_null() {
            json!({})
        } else {
            json!({"cursor": cursor})
        };
        let r = c.request(json!(page), "tools/list", params);
        let tools = r["result"]["tools"].as_array().unwrap();
        assert!(tools.len() <= 5);
        names.extend(
            tools
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_string()),
        );
        cursor = r["result"]["nextCursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(names.len(), 34);
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, names, "pages are in order, without repeats");
    for bad in [json!("bogus"), json!(42), json!("7072")] {
        let r = c.request(json!("bad"), "tools/list", json!({"cursor": bad}));
        assert_eq!(r["error"]["code"], -32602, "{bad}: {r}");
    }
}

#[test]
fn an_old_client_gets_only_what_its_version_has() {
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let c = gw.connect();
    let r = c.request(json!(0), "initialize", json!({"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "old", "version": "1"}}));
    assert_eq!(r["result"]["protocolVersion"], "2024-11-05");
    let r = c.call(json!(1), "fx__structured", json!({}));
    assert!(r["result"].get("structuredContent").is_none(), "{r}");
    assert_eq!(r["result"]["content"][0]["text"], "{\"n\": 42}");
    let current = gw.connect();
    current.initialize();
    let r = current.call(json!(1), "fx__structured", json!({}));
    assert_eq!(r["result"]["structuredContent"]["n"], 42);
}

#[test]
fn server_requests_without_a_client_capability_are_refused_at_once() {
    // The fixture never sends requests; server-everything's sampling tool does.
    let everything = util::everything();
    let gw = Gateway::start(&json!({ "ev": {"command": "node", "args": [everything]} }));
    let c = gw.connect();
    c.initialize(); // declares no sampling capability
    let r = c.call(
        json!(1),
        "ev__trigger-sampling-request",
        json!({"prompt": "hi"}),
    );
    let message = r["result"]["content"][0]["text"]
        .as_str()
        .or(r["error"]["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("did not declare the 'sampling' capability"),
        "{r}"
    );
}

#[test]
fn roots_list_changed_goes_to_the_backends_serving_the_session() {
    let mut per_session = fixture(&["--tag", "mine"]);
    per_session["scope"] = json!("session");
    let gw = Gateway::start(&json!({ "shared": fixture(&[]), "own": per_session }));
    let (a, b) = (gw.connect(), gw.connect());
    a.initialize();
    b.initialize();
    let state = |c: &SseClient, tool: &str| -> Value {
        serde_json::from_str(&text(&c.call(json!(tool), tool, json!({})))).unwrap()
    };
    // Once a's own instance is up (a new instance lists roots itself when it starts):
    assert_eq!(state(&a, "own__state")["roots_changed"], 0);
    a.send(&json!({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}));
    assert_eq!(state(&a, "shared__state")["roots_changed"], 1);
    assert_eq!(
        state(&a, "own__state")["roots_changed"],
        1,
        "a's own instance hears it"
    );
    assert_eq!(
        state(&b, "own__state")["roots_changed"],
        0,
        "b's own instance does not"
    );
}

#[test]
fn an_answer_never_overtakes_its_own_progress() {
    // A reader may hand an answer straight to its client only once the hub has passed on
    // everything the reader sent before: here 20 progress notifications right before the
    // answer, each of which must arrive on the POST's stream ahead of the answer that ends it.
    let gw = Gateway::start(&json!({ "fx": fixture(&[]) }));
    let c = util::McpClient::connect(gw.port);
    for round in 0..5 {
        let messages = c.request(
            json!(round),
            "tools/call",
            json!({"name": "fx__progress", "arguments": {"steps": 20, "tag": "t", "delay_ms": 0},
                   "_meta": {"progressToken": round}}),
        );
        let (last, before) = messages.split_last().unwrap();
        assert_eq!(last["id"], round, "{last}");
        let steps: Vec<i64> = before
            .iter()
            .map(|m| m["params"]["progress"].as_i64().unwrap())
            .collect();
        assert_eq!(steps, (1..=20).collect::<Vec<_>>(), "round {round}");
    }
}
