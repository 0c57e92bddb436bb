//! The hub in-process: a stand-in `Spawner` whose backends are threads answering from a
//! script, and client sessions on a plain `Queue`. Fast tests of the routing, timeout,
//! restart and shutdown rules, beside the black-box suites that run the real binary.

use super::router::Router;
use super::{Hub, HubOptions, REQUEST_TIMEOUT, SHUTTING_DOWN, tasks};
use crate::config::BackendSpec;
use crate::contract::{BackendHandle, HubEvent, PROTOCOL_VERSIONS};
use crate::contract::{Inbox, Queue, Queued};
use crate::jsonrpc::{INVALID_PARAMS, Message, Response};
use crossbeam_channel::{Receiver, Sender};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

/// A backend as a thread: `initialize`, `tools/list` (`echo`, `slow`, `die`) and
/// `tools/call`: `echo` answers with its arguments, `slow` never answers, `die` ends the
/// instance as a crashed process would. A `silent` one answers nothing (still starting).
fn stand_in(inbox: Arc<dyn Inbox>, silent: bool) -> BackendHandle {
    let (tx, rx) = crossbeam_channel::unbounded::<Message>();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let worker = std::thread::spawn(move || {
        for msg in rx {
            let Message::Request(req) = msg else { continue };
            if silent {
                continue;
            }
            let params: Value = req
                .params
                .as_ref()
                .and_then(|p| serde_json::from_str(p.get()).ok())
                .unwrap_or(Value::Null);
            let result = match (req.method.as_str(), params["name"].as_str()) {
                ("initialize", _) => json!({
                    "protocolVersion": PROTOCOL_VERSIONS[0],
                    "capabilities": {"tools": {}, "tasks": {"requests": {"tools": {"call": {}}}}},
                    "serverInfo": {"name": "stand-in", "version": "1"},
                }),
                ("tools/list", _) => {
                    let tools = ["echo", "slow", "die"]
                        .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}));
                    json!({ "tools": tools })
                }
                ("tools/call", Some("echo")) if params.get("task").is_some() => json!({
                    "task": {"taskId": format!("t{}", req.id), "status": "completed"},
                }),
                ("tools/call", Some("echo")) => json!({
                    "content": [{"type": "text", "text": params["arguments"].to_string()}],
                }),
                ("tools/call", Some("slow")) => continue,
                ("tools/call", Some("die")) => {
                    inbox.exited("exited (signal 9)".into());
                    return;
                }
                _ => json!({}),
            };
            let raw = RawValue::from_string(result.to_string()).expect("valid JSON");
            if !inbox.message(Message::Response(Response::ok(req.id, raw))) {
                return;
            }
        }
    });
    let supervisor = std::thread::spawn(move || {
        let _ = stop_rx.recv();
        drop(worker);
    });
    BackendHandle::new(tx, stop_tx, supervisor)
}

/// A hub on its own thread with one stand-in backend `fx`, configured by `extra` (more
/// fields of its config entry), and how many instances it has started. The command
/// `silent` makes a backend that never answers.
struct Harness {
    tx: Sender<HubEvent>,
    router: Router,
    started: Arc<AtomicUsize>,
    hub: Option<std::thread::JoinHandle<Vec<JoinHandle<()>>>>,
}

impl Harness {
    fn new(extra: &str) -> Harness {
        Harness::with("stand-in", extra)
    }

    fn with(command: &str, extra: &str) -> Harness {
        let text = format!(r#"{{"fx": {{"command": "{command}"{extra}}}}}"#);
        let specs = crate::config::parse(&text, &|_| None)
            .unwrap_or_else(|e| panic!("{e}"))
            .config
            .backends;
        let started = Arc::new(AtomicUsize::new(0));
        let count = started.clone();
        let opts = HubOptions {
            init_timeout: WAIT,
            spawner: Box::new(move |spec: &BackendSpec, inbox: Arc<dyn Inbox>| {
                count.fetch_add(1, Ordering::SeqCst);
                let silent = matches!(&spec.transport,
                    crate::config::Transport::Stdio(l) if l.command == "silent");
                Ok(stand_in(inbox, silent))
            }),
            ready_line: String::new(),
            page_size: 100,
            ping_interval: Duration::from_secs(600),
            ping_timeout: WAIT,
            audit: None,
            startup_wait: WAIT,
            profiles: Vec::new(),
            on_demand: false,
            idle_stop: Duration::from_secs(300),
            keep_wrapper: false,
            cache: None,
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let hub = Hub::new(specs, opts, tx.clone());
        let router = hub.router();
        let hub = std::thread::spawn(move || hub.run(rx));
        Harness {
            tx,
            router,
            started,
            hub: Some(hub),
        }
    }

    /// A session named `name`, not initialized yet.
    fn open(&self, name: &str) -> Client {
        let (queue, rx) = Queue::new(100);
        let ev = HubEvent::ClientOpened {
            session: name.into(),
            sink: Box::new(queue),
            transport: "sse",
            access: Default::default(),
        };
        self.tx.send(ev).expect("hub is running");
        Client {
            name: name.into(),
            tx: self.tx.clone(),
            rx,
        }
    }

    /// An initialized session named `name`.
    fn client(&self, name: &str) -> Client {
        let c = self.open(name);
        let init = c.ask(
            json!(0),
            "initialize",
            json!({"protocolVersion": PROTOCOL_VERSIONS[0], "capabilities": {},
                   "clientInfo": {"name": "test", "version": "1"}}),
        );
        assert!(
            init["result"]["capabilities"]["tools"].is_object(),
            "{init}"
        );
        c.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        c
    }

    /// Stops the hub the way main does, and waits for it.
    fn shutdown(&mut self) {
        let _ = self.tx.send(HubEvent::Shutdown);
        if let Some(hub) = self.hub.take() {
            for t in hub.join().expect("the hub did not panic") {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Client {
    name: String,
    tx: Sender<HubEvent>,
    rx: Receiver<Queued>,
}

impl Client {
    fn send(&self, msg: Value) {
        let msg = Message::parse(&msg.to_string()).expect("valid JSON-RPC");
        let session = self.name.clone();
        let ev = HubEvent::FromClient {
            session,
            msg,
            order: None,
        };
        self.tx.send(ev).expect("hub is running");
    }

    /// The next message for this client, as JSON.
    fn next(&self) -> Value {
        let out = self.rx.recv_timeout(WAIT).expect("an answer within 5 s");
        serde_json::from_str(&out.msg.to_json()).expect("valid JSON")
    }

    fn ask(&self, id: Value, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.next()
    }

    fn call(&self, id: Value, tool: &str) -> Value {
        self.ask(
            id,
            "tools/call",
            json!({"name": tool, "arguments": {"n": 1}}),
        )
    }

    /// Sends a call without waiting for its answer.
    fn start_call(&self, id: Value, tool: &str) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                         "params": {"name": tool, "arguments": {}}}));
    }

    /// Waits until the hub has handled everything sent before (it handles a session's
    /// messages in order, and answers a ping itself).
    fn sync(&self) {
        let pong = self.ask(json!("sync"), "ping", json!({}));
        assert!(pong["result"].is_object(), "{pong}");
    }
}

#[test]
fn a_call_reaches_its_backend_and_comes_back_with_the_clients_id() {
    let hub = Harness::new("");
    let c = hub.client("s1");
    let list = c.ask(json!(1), "tools/list", json!({}));
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["fx__die", "fx__echo", "fx__slow"]);
    let r = c.call(json!("the client's own id"), "fx__echo");
    assert_eq!(r["id"], "the client's own id", "{r}");
    assert_eq!(r["result"]["content"][0]["text"], r#"{"n":1}"#, "{r}");
    let r = c.call(json!(2), "nope__echo");
    assert_eq!(r["error"]["code"], INVALID_PARAMS, "{r}");
}

#[test]
fn the_front_ends_router_takes_the_same_path_to_the_same_answer() {
    let hub = Harness::new("");
    let c = hub.client("s1");
    let _ = c.ask(json!(1), "tools/list", json!({}));
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "fx__echo", "arguments": {"n": 1}}});
    let msg = Message::parse(&call.to_string()).expect("valid");
    hub.router.dispatch("s1", msg).expect("hub is running");
    let r = c.next();
    assert_eq!(r["id"], 7, "{r}");
    assert_eq!(r["result"]["content"][0]["text"], r#"{"n":1}"#, "{r}");
}

#[test]
fn a_call_left_unanswered_gets_a_timeout_error_naming_the_tool() {
    let hub = Harness::new(r#", "timeout": 1"#);
    let c = hub.client("s1");
    let r = c.call(json!(1), "fx__slow");
    assert_eq!(r["id"], 1, "{r}");
    assert_eq!(r["error"]["code"], REQUEST_TIMEOUT, "{r}");
    let text = r["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("'slow' within 1 s"), "{r}");
    // The backend is still in use afterwards.
    assert!(c.call(json!(2), "fx__echo")["result"].is_object());
}

#[test]
fn an_instance_that_dies_fails_what_was_in_flight_and_is_started_again() {
    let hub = Harness::new("");
    let c = hub.client("s1");
    c.start_call(json!("waiting"), "fx__slow");
    let r = c.call(json!("fatal"), "fx__die");
    let other = c.next();
    for r in [&r, &other] {
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("signal 9"),
            "{r}"
        );
    }
    let mut ids = [r["id"].clone(), other["id"].clone()];
    ids.sort_by_key(|v| v.to_string());
    assert_eq!(ids, [json!("fatal"), json!("waiting")]);
    // Restarted after the first backoff (1 s), and serving again.
    let deadline = Instant::now() + WAIT;
    while hub.started.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(hub.started.load(Ordering::SeqCst), 2);
    let deadline = Instant::now() + WAIT;
    loop {
        let r = c.call(json!(3), "fx__echo");
        if r["result"].is_object() || Instant::now() > deadline {
            assert!(r["result"].is_object(), "{r}");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn at_shutdown_every_call_in_flight_is_answered() {
    let mut hub = Harness::new("");
    let c = hub.client("s1");
    let _ = c.ask(json!(1), "tools/list", json!({}));
    c.start_call(json!(2), "fx__slow");
    c.sync(); // the call is in the pending table now
    hub.shutdown();
    let r = c.next();
    assert_eq!(r["id"], 2, "{r}");
    assert_eq!(r["error"]["message"], SHUTTING_DOWN, "{r}");
}

#[test]
fn a_call_held_for_a_backend_still_starting_is_told_of_the_shutdown() {
    let mut hub = Harness::with("silent", "");
    let c = hub.open("s1");
    // Not initialized: the hub answers what it owns anyway, and holds the call until the
    // first start settles, which it never does here.
    c.start_call(json!(1), "fx__echo");
    c.sync();
    hub.shutdown();
    let r = c.next();
    assert_eq!(r["id"], 1, "{r}");
    assert_eq!(r["error"]["message"], SHUTTING_DOWN, "{r}");
}

#[test]
fn a_call_held_for_the_first_start_counts_as_in_flight_for_a_drain() {
    let hub = Harness::with("silent", "");
    let c = hub.open("s1");
    c.start_call(json!(1), "fx__echo");
    c.sync();
    let (tx, status) = crossbeam_channel::bounded(1);
    hub.tx
        .send(HubEvent::Status {
            reply: tx,
            full: true,
        })
        .expect("hub is running");
    assert_eq!(status.recv_timeout(WAIT).expect("a status").in_flight, 1);
}

#[test]
fn the_status_counts_the_calls_in_flight_that_a_drain_waits_for() {
    let hub = Harness::new(r#", "timeout": 1"#);
    let c = hub.client("s1");
    let in_flight = || {
        let (tx, rx) = crossbeam_channel::bounded(1);
        hub.tx
            .send(HubEvent::Status {
                reply: tx,
                full: true,
            })
            .expect("hub is running");
        rx.recv_timeout(WAIT).expect("a status").in_flight
    };
    assert_eq!(in_flight(), 0);
    // Whether the call waits for the first start to settle or for its backend, it counts.
    c.start_call(json!(1), "fx__slow");
    c.sync();
    assert_eq!(in_flight(), 1);
    // Its timeout answers it, and the drain has nothing left to wait for.
    assert_eq!(c.next()["error"]["code"], REQUEST_TIMEOUT);
    assert_eq!(in_flight(), 0);
}

#[test]
fn a_session_keeps_at_most_max_tasks_and_forgets_its_oldest() {
    let hub = Harness::new("");
    let c = hub.client("s1");
    let _ = c.ask(json!(1), "tools/list", json!({}));
    let make = |id: u64| {
        let r = c.ask(
            json!(id),
            "tools/call",
            json!({"name": "fx__echo", "arguments": {}, "task": {"ttl": 1000}}),
        );
        r["result"]["task"]["taskId"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_string()
    };
    let first = make(100);
    assert!(first.starts_with("fx."), "named for the client: {first}");
    for id in 101..100 + tasks::MAX_TASKS as u64 {
        make(id);
    }
    let listed = c.ask(json!(2), "tasks/list", json!({}));
    assert_eq!(
        listed["result"]["tasks"].as_array().map(Vec::len),
        Some(tasks::MAX_TASKS)
    );
    // One more: the first is forgotten, and asking about it is an unknown task.
    make(99_999);
    let asked = c.ask(json!(3), "tasks/get", json!({"taskId": first}));
    assert_eq!(asked["error"]["code"], INVALID_PARAMS, "{asked}");
    let listed = c.ask(json!(4), "tasks/list", json!({}));
    assert_eq!(
        listed["result"]["tasks"].as_array().map(Vec::len),
        Some(tasks::MAX_TASKS)
    );
}
