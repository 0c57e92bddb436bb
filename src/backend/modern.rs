//! Backends that speak only protocol 2026-07-28, made to look legacy to the hub: the
//! bridge sits between a transport's threads and the hub, so the hub, its routers and
//! every legacy client see a backend like any other.
//!
//! - Handshake: the hub's `initialize` goes out as it is; a backend that answers it with
//!   method-not-found (-32601) or unsupported-version (-32022) is asked `server/discover`,
//!   and when that names 2026-07-28 the bridge answers the hub's `initialize` from it and
//!   opens a `subscriptions/listen` for the list changes the backend announces.
//! - Every request then carries the revision's `_meta` (version, the gateway's
//!   capabilities and identity, the log level the hub last set); what the revision removed
//!   is answered here (`ping`, `logging/setLevel`, `notifications/initialized` dropped).
//! - An `input_required` result becomes the backend's own requests to the client, which
//!   the hub routes as for any backend; once all are answered, the call is sent again
//!   with `inputResponses` and `requestState`, under a new id, and its answer goes to the
//!   hub under the first.
//!
//! - Tasks (the `io.modelcontextprotocol/tasks` extension, declared when the backend lists
//!   it): a call the backend makes a task of is polled (`tasks/get`, at the backend's
//!   `pollIntervalMs`) on the writer's thread until it ends, and the end answers the call;
//!   the task's `inputRequests` go to the client as the backend's own requests, and their
//!   answers back in a `tasks/update`; a call the client cancels is `tasks/cancel`led.
//!   Legacy clients see an ordinary call.
//! - List caching hints: a list whose kind the backend does not announce changes of is
//!   listed again when its `ttlMs` runs out (at least `MIN_REFRESH` apart), by a
//!   `list_changed` the bridge tells the hub itself.
//! - Resource subscriptions: `resources/subscribe` opens a `subscriptions/listen` of its
//!   own for the URI (the hub subscribes once per backend and URI), `unsubscribe` cancels
//!   it; its updates reach the hub as a legacy backend's would.
//!
//! Legacy backends never notice: nothing changes until an `initialize` is refused.

use super::Hub;
use crate::contract::Inbox;
use crate::jsonrpc::{self, Id, Message, Notification, Request, Response};
use crossbeam_channel::{Receiver, Sender, select};
use log::{debug, info};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const VERSION: &str = crate::modern::VERSION;
/// The ids the bridge's own requests go out under (never a hub's: the hub's are numbers).
const DISCOVER: &str = "gateway-discover";
const LISTEN: &str = "gateway-listen";
/// A task's polls go out as `gateway-poll-<task id>`.
const POLL: &str = "gateway-poll-";
const TASKS: &str = crate::modern::TASKS_EXTENSION;
/// The soonest a list is listed again for its `ttlMs`.
const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Each list method, its capability, and the notification that has the hub list it again.
const LISTS: [(&str, &str, &str); 4] = [
    ("tools/list", "tools", "notifications/tools/list_changed"),
    (
        "prompts/list",
        "prompts",
        "notifications/prompts/list_changed",
    ),
    (
        "resources/list",
        "resources",
        "notifications/resources/list_changed",
    ),
    (
        "resources/templates/list",
        "resources",
        "notifications/resources/list_changed",
    ),
];

/// A call sent to a modern backend, kept until its final answer.
struct Call {
    /// The id the hub knows it by.
    hub_id: Id,
    method: String,
    params: Map<String, Value>,
}

/// A round of input the backend asked for: the key of each request sent to the client.
struct Round {
    /// The call to send again with the answers (a call's round), or the task to update.
    then: Then,
    state: Option<Value>,
    keys: HashMap<String, String>,
    answers: Map<String, Value>,
}

enum Then {
    Retry(Call),
    Update(String),
}

/// A call the backend made a task of: polled until it ends.
struct Polled {
    call: Call,
    every: Duration,
    /// When the next poll goes; none while one is out or the client is being asked.
    due: Option<Instant>,
}

#[derive(Default)]
struct State {
    modern: bool,
    /// The hub's `initialize`, while its answer may still turn it into a discover.
    init: Option<Id>,
    /// Calls in flight, by the id they went to the backend under.
    calls: HashMap<String, Call>,
    /// Rounds waiting for the client's answers, by the id of each request sent to it.
    rounds: HashMap<String, usize>,
    open_rounds: HashMap<usize, Round>,
    /// Tasks being polled, by the backend's task id.
    polled: HashMap<String, Polled>,
    /// The backend offers resource subscriptions.
    subscribable: bool,
    /// The capabilities whose list changes the backend announces.
    announced: Vec<String>,
    /// When each kind of list goes stale, by the notification that has it listed again.
    refresh: HashMap<&'static str, Instant>,
    /// The listen request open for each subscribed URI, and those cancelled since (whose
    /// stragglers are dropped).
    subscriptions: HashMap<String, Id>,
    ended: std::collections::HashSet<String>,
    next: usize,
    log_level: Option<String>,
}

/// One instance's bridge: an `Inbox` for its reader, and `outgoing` for its writer.
pub struct Bridge {
    hub: Hub,
    /// The bridge's own messages to the backend (a handshake, a retry): a channel apart
    /// from the hub's, so the writer still ends when the hub drops its sender.
    own: Sender<Message>,
    own_rx: Receiver<Message>,
    /// Wakes the writer when a poll's time changed.
    wake: Sender<()>,
    wake_rx: Receiver<()>,
    /// The backend takes tasks: requests declare the extension.
    tasks: AtomicBool,
    /// The arguments each of the backend's tools mirrors into `Mcp-Param-*` headers, from
    /// its lists as they pass.
    mirrored: Mutex<HashMap<String, crate::modern::Mirrored>>,
    name: String,
    state: Mutex<State>,
}

fn raw_key(id: &Id) -> String {
    id.raw().get().to_string()
}

fn object(params: Option<&serde_json::value::RawValue>) -> Map<String, Value> {
    params
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default()
}

impl Bridge {
    pub fn new(hub: Hub, name: &str) -> Bridge {
        let (own, own_rx) = crossbeam_channel::unbounded();
        let (wake, wake_rx) = crossbeam_channel::bounded(1);
        Bridge {
            hub,
            own,
            own_rx,
            wake,
            wake_rx,
            tasks: AtomicBool::new(false),
            mirrored: Mutex::default(),
            name: name.to_string(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The revision's `_meta` for a request to the backend.
    fn meta(&self, level: Option<&str>) -> Value {
        let mut meta = json!({
            "io.modelcontextprotocol/protocolVersion": VERSION,
            "io.modelcontextprotocol/clientCapabilities":
                {"roots": {}, "sampling": {}, "elicitation": {"form": {}, "url": {}}},
            "io.modelcontextprotocol/clientInfo":
                {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        });
        if let Some(level) = level {
            meta["io.modelcontextprotocol/logLevel"] = Value::from(level);
        }
        if self.tasks.load(Ordering::Relaxed) {
            meta["io.modelcontextprotocol/clientCapabilities"]["extensions"] = json!({ TASKS: {} });
        }
        meta
    }

    fn request(
        &self,
        id: Id,
        method: &str,
        mut params: Map<String, Value>,
        level: Option<&str>,
    ) -> Message {
        let meta = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if let (Some(meta), Value::Object(add)) = (meta.as_object_mut(), self.meta(level)) {
            meta.extend(add);
        }
        Message::Request(Request {
            id,
            method: method.into(),
            params: Some(jsonrpc::to_raw(&params)),
        })
    }

    /// The next message for the backend, from the hub (as the bridge has it) or the bridge
    /// itself: `Err` once the hub has dropped its sender, `Ok(None)` when the bridge kept
    /// or answered the hub's message. The writer threads of both transports loop on it.
    pub fn next(&self, from_hub: &Receiver<Message>) -> Result<Option<Message>, ()> {
        self.next_from(from_hub).map(|(msg, _)| msg)
    }

    /// `next`, saying whether what it took came from the hub's channel (whose messages a
    /// writer counts off as written, `contract::Outlet`).
    pub fn next_from(&self, from_hub: &Receiver<Message>) -> Result<(Option<Message>, bool), ()> {
        let due = {
            let st = self.lock();
            let polls = st.polled.values().filter_map(|p| p.due);
            polls.chain(st.refresh.values().copied()).min()
        };
        let timer = due.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
        select! {
            recv(from_hub) -> msg => msg.map(|m| (self.outgoing(m), true)).map_err(|_| ()),
            recv(self.own_rx) -> msg => Ok((msg.ok(), false)),
            recv(self.wake_rx) -> _ => Ok((None, false)),
            recv(timer) -> _ => Ok((self.poll_due(), false)),
        }
    }

    /// Whether a message from the hub goes to the backend as it is: a backend that speaks
    /// a legacy revision, once its handshake is done (its messages can then be written
    /// on the sender's own thread).
    pub fn passes_through(&self) -> bool {
        let st = self.lock();
        !st.modern && st.init.is_none()
    }

    /// A `resources/subscribe` or `unsubscribe` of `uri`: the listen request to open, or
    /// the cancellation of the one open; Err when the backend offers no subscriptions.
    fn subscription(
        &self,
        st: &mut State,
        method: &str,
        uri: String,
    ) -> Result<Option<Message>, String> {
        if !st.subscribable {
            return Err(format!(
                "backend '{}' does not offer resource subscriptions",
                self.name
            ));
        }
        if method == "resources/unsubscribe" {
            let Some(id) = st.subscriptions.remove(&uri) else {
                return Ok(None);
            };
            st.ended.insert(raw_key(&id));
            let params = json!({"requestId": serde_json::from_str::<Value>(id.raw().get()).unwrap_or_default()});
            return Ok(Some(Message::Notification(Notification {
                method: "notifications/cancelled".into(),
                params: Some(jsonrpc::to_raw(&params)),
            })));
        }
        if st.subscriptions.contains_key(&uri) {
            return Ok(None);
        }
        st.next += 1;
        let id = Id::text(&format!("gateway-subscription-{}", st.next));
        let wanted = json!({"resourceSubscriptions": [uri]});
        let params = Map::from_iter([("notifications".to_string(), wanted)]);
        st.subscriptions.insert(uri, id.clone());
        Ok(Some(self.request(id, "subscriptions/listen", params, None)))
    }

    /// The `Mcp-Param-{Name}` headers a `tools/call` to the backend carries over HTTP:
    /// each argument the tool's schema mirrors (`x-mcp-header`) that the call has, a
    /// string in the revision's header form, a number or boolean as its JSON text.
    pub fn param_headers(&self, msg: &Message) -> Vec<(String, String)> {
        let Message::Request(r) = msg else {
            return Vec::new();
        };
        if r.method != "tools/call" {
            return Vec::new();
        }
        let params = object(r.params.as_deref());
        let tool = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mirrored = self.mirrored.lock().unwrap_or_else(|p| p.into_inner());
        let Some(mirrored) = mirrored.get(tool) else {
            return Vec::new();
        };
        let mut headers = Vec::new();
        for (name, path) in mirrored.iter() {
            let value = path
                .iter()
                .try_fold(params.get("arguments"), |v, key| v?.get(key).map(Some))
                .flatten();
            let text = match value {
                Some(Value::String(s)) => crate::modern::encode_header(s),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                _ => continue,
            };
            headers.push((format!("Mcp-Param-{name}"), text));
        }
        headers
    }

    /// A list page's `ttlMs`, for a kind whose changes the backend does not announce: when
    /// to list it again.
    fn note_ttl(&self, st: &mut State, method: &str, page: Option<&Map<String, Value>>) {
        let Some((_, cap, notification)) = LISTS.iter().find(|(m, _, _)| *m == method) else {
            return;
        };
        let ttl = page.and_then(|p| p.get("ttlMs")).and_then(Value::as_u64);
        let Some(ttl) = ttl.filter(|_| !st.announced.iter().any(|a| a == cap)) else {
            return;
        };
        let at = Instant::now() + Duration::from_millis(ttl).max(MIN_REFRESH);
        let due = st.refresh.entry(notification).or_insert(at);
        *due = (*due).min(at);
        let _ = self.wake.try_send(());
    }

    /// Keeps what a page of the backend's tools mirrors into headers.
    fn note_mirrored(&self, page: Option<&Map<String, Value>>) {
        let tools = page.and_then(|p| p.get("tools")).and_then(Value::as_array);
        let mut mirrored = self.mirrored.lock().unwrap_or_else(|p| p.into_inner());
        for tool in tools.into_iter().flatten() {
            let Some(name) = tool.get("name").and_then(Value::as_str) else {
                continue;
            };
            let params = crate::modern::mirrored_params(&tool["inputSchema"]);
            if params.is_empty() {
                mirrored.remove(name);
            } else {
                mirrored.insert(name.to_string(), params.into());
            }
        }
    }

    /// A `tasks/get` of a task whose poll is due; or, for a list gone stale, the hub told
    /// to list it again.
    fn poll_due(&self) -> Option<Message> {
        let mut st = self.lock();
        let now = Instant::now();
        let stale: Vec<&'static str> = st
            .refresh
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| *n)
            .collect();
        for method in stale {
            st.refresh.remove(method);
            debug!("backend '{}': its list is stale ({method})", self.name);
            let _ = self.hub.message(Message::Notification(Notification {
                method: method.into(),
                params: None,
            }));
        }
        let (task, p) = st
            .polled
            .iter_mut()
            .find(|(_, p)| p.due.is_some_and(|d| d <= now))?;
        p.due = None;
        let params = Map::from_iter([("taskId".to_string(), Value::from(task.as_str()))]);
        let id = Id::text(&format!("{POLL}{task}"));
        Some(self.request(id, "tasks/get", params, st.log_level.as_deref()))
    }

    /// A task's state, from a poll: its end answers the call; a question goes to the
    /// client; otherwise the next poll. What is for the hub is returned, to go once the
    /// state is unlocked.
    fn polled(
        &self,
        st: &mut State,
        task: &str,
        outcome: Result<Value, jsonrpc::ErrorObject>,
    ) -> Vec<Message> {
        let Some(p) = st.polled.get_mut(task) else {
            return Vec::new(); // cancelled meanwhile
        };
        let status = outcome.as_ref().ok().and_then(|v| v["status"].as_str());
        let asked = outcome
            .as_ref()
            .ok()
            .and_then(|v| v["inputRequests"].as_object())
            .filter(|i| !i.is_empty());
        let end = match (status, &outcome) {
            (Some("working"), _) => None,
            (Some("input_required"), _) if asked.is_none() => None,
            (Some("input_required"), _) => {
                let inputs = asked.cloned().unwrap_or_default();
                return self.open_round(st, Then::Update(task.to_string()), None, inputs);
            }
            (Some("completed"), Ok(v)) => Some(Ok(jsonrpc::to_raw(&v["result"]))),
            (Some("failed"), Ok(v)) => Some(Err(serde_json::from_value(v["error"].clone())
                .unwrap_or_else(|_| {
                    jsonrpc::ErrorObject::new(jsonrpc::INTERNAL_ERROR, "the backend's task failed")
                }))),
            (_, Err(e)) => Some(Err(e.clone())),
            (other, _) => Some(Err(jsonrpc::ErrorObject::new(
                jsonrpc::INTERNAL_ERROR,
                format!(
                    "backend '{}' ended the task as {}",
                    self.name,
                    other.unwrap_or("(no status)")
                ),
            ))),
        };
        let Some(outcome) = end else {
            p.due = Some(Instant::now() + p.every);
            let _ = self.wake.try_send(());
            return Vec::new();
        };
        st.polled
            .remove(task)
            .map(|p| {
                Message::Response(Response {
                    id: Some(p.call.hub_id),
                    outcome,
                })
            })
            .into_iter()
            .collect()
    }

    /// Opens a round of the backend's questions (`inputs`, by key): the requests for the
    /// hub to route to the client.
    fn open_round(
        &self,
        st: &mut State,
        then: Then,
        state: Option<Value>,
        inputs: Map<String, Value>,
    ) -> Vec<Message> {
        st.next += 1;
        let round_no = st.next;
        let mut keys = HashMap::new();
        let mut requests = Vec::new();
        for (n, (input_key, ask)) in inputs.into_iter().enumerate() {
            let id = Id::text(&format!("gateway-input-{round_no}-{n}"));
            keys.insert(raw_key(&id), input_key);
            st.rounds.insert(raw_key(&id), round_no);
            requests.push(Message::Request(Request {
                id,
                method: ask["method"].as_str().unwrap_or_default().to_string(),
                params: Some(jsonrpc::to_raw(&ask["params"])),
            }));
        }
        st.open_rounds.insert(
            round_no,
            Round {
                then,
                state,
                keys,
                answers: Map::new(),
            },
        );
        requests
    }

    /// What the writer sends the backend for `msg` from the hub (nothing, when the bridge
    /// answers it itself or keeps it).
    fn outgoing(&self, msg: Message) -> Option<Message> {
        let mut st = self.lock();
        match msg {
            Message::Request(r) if !st.modern => {
                if r.method == "initialize" {
                    st.init = Some(r.id.clone());
                }
                Some(Message::Request(r))
            }
            Message::Request(r) if raw_key(&r.id).starts_with("\"gateway-") => {
                Some(Message::Request(r))
            }
            Message::Request(r) => match r.method.as_str() {
                "ping" => {
                    drop(st);
                    self.hub.message(Message::Response(Response::ok(
                        r.id,
                        jsonrpc::to_raw(&json!({})),
                    )));
                    None
                }
                "logging/setLevel" => {
                    st.log_level = object(r.params.as_deref())
                        .get("level")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    drop(st);
                    self.hub.message(Message::Response(Response::ok(
                        r.id,
                        jsonrpc::to_raw(&json!({})),
                    )));
                    None
                }
                "resources/subscribe" | "resources/unsubscribe" => {
                    let uri = object(r.params.as_deref())
                        .get("uri")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let out = self.subscription(&mut st, &r.method, uri);
                    drop(st);
                    let (answer, out) = match out {
                        Ok(out) => (Response::ok(r.id, jsonrpc::to_raw(&json!({}))), out),
                        Err(why) => (
                            Response::error(Some(r.id), jsonrpc::METHOD_NOT_FOUND, why),
                            None,
                        ),
                    };
                    self.hub.message(Message::Response(answer));
                    out
                }
                method => {
                    let params = object(r.params.as_deref());
                    let out = self.request(
                        r.id.clone(),
                        method,
                        params.clone(),
                        st.log_level.as_deref(),
                    );
                    st.calls.insert(
                        raw_key(&r.id),
                        Call {
                            hub_id: r.id,
                            method: method.to_string(),
                            params,
                        },
                    );
                    Some(out)
                }
            },
            Message::Notification(n) if st.modern && n.method == "notifications/initialized" => {
                None
            }
            Message::Notification(n) if st.modern && n.method == "notifications/cancelled" => {
                // A cancelled call is answered by no one: its entry goes, and a call waiting
                // for input is cancelled under the id it was last sent with.
                let mut params = object(n.params.as_deref());
                let id = params
                    .get("requestId")
                    .map(Value::to_string)
                    .unwrap_or_default();
                st.calls.remove(&id);
                let task = st
                    .polled
                    .iter()
                    .find(|(_, p)| raw_key(&p.call.hub_id) == id)
                    .map(|(t, _)| t.clone());
                let round = st
                    .open_rounds
                    .iter()
                    .find(|(_, r)| match &r.then {
                        Then::Retry(call) => raw_key(&call.hub_id) == id,
                        Then::Update(t) => task.as_ref() == Some(t),
                    })
                    .map(|(no, _)| *no);
                if let Some(no) = round {
                    st.open_rounds.remove(&no);
                    st.rounds.retain(|_, r| *r != no);
                }
                if let Some(task) = task {
                    // The backend knows a task by its id now, not by the call's.
                    st.polled.remove(&task);
                    let params = Map::from_iter([("taskId".to_string(), Value::from(task))]);
                    let id = Id::text("gateway-task-cancel");
                    return Some(self.request(id, "tasks/cancel", params, None));
                }
                let retried = st
                    .calls
                    .iter()
                    .find(|(_, c)| raw_key(&c.hub_id) == id)
                    .map(|(k, _)| k.clone());
                if let Some(key) = retried {
                    st.calls.remove(&key);
                    if let Ok(v) = serde_json::from_str::<Value>(&key) {
                        params.insert("requestId".into(), v);
                    }
                }
                Some(Message::Notification(Notification {
                    method: n.method,
                    params: Some(jsonrpc::to_raw(&params)),
                }))
            }
            Message::Response(resp) if st.modern => {
                let key = resp.id.as_ref().map(raw_key).unwrap_or_default();
                let Some(round_no) = st.rounds.remove(&key) else {
                    return Some(Message::Response(resp));
                };
                let answer: Value = match &resp.outcome {
                    Ok(result) => serde_json::from_str(result.get()).unwrap_or_default(),
                    Err(e) => json!({"error": {"code": e.code, "message": e.message}}),
                };
                let round = st.open_rounds.get_mut(&round_no)?;
                if let Some(input_key) = round.keys.remove(&key) {
                    round.answers.insert(input_key, answer);
                }
                if !round.keys.is_empty() {
                    return None;
                }
                let round = st.open_rounds.remove(&round_no)?;
                let call = match round.then {
                    Then::Retry(call) => call,
                    Then::Update(task) => {
                        // A task's answers go in an update, and the polls go on.
                        let p = st.polled.get_mut(&task)?;
                        p.due = Some(Instant::now() + p.every);
                        let mut params = Map::new();
                        params.insert("taskId".into(), Value::from(task));
                        params.insert("inputResponses".into(), Value::Object(round.answers));
                        let id = Id::text("gateway-task-update");
                        return Some(self.request(id, "tasks/update", params, None));
                    }
                };
                // All answered: the call again, under a new id, with what the client said.
                st.next += 1;
                let retry_id = Id::text(&format!("gateway-retry-{}", st.next));
                let mut params = call.params.clone();
                params.insert("inputResponses".into(), Value::Object(round.answers));
                if let Some(state) = round.state {
                    params.insert("requestState".into(), state);
                }
                let out = self.request(
                    retry_id.clone(),
                    &call.method,
                    params,
                    st.log_level.as_deref(),
                );
                st.calls.insert(raw_key(&retry_id), call);
                Some(out)
            }
            other => Some(other),
        }
    }

    /// Handles the backend's answer to `initialize` while the era is not known yet; true
    /// when the bridge took it.
    fn handshake(&self, st: &mut State, resp: &Response) -> bool {
        let id = resp.id.as_ref().map(|i| i.raw().get());
        let is_init = id.is_some() && st.init.as_ref().map(|i| i.raw().get()) == id;
        if is_init {
            let refused = resp
                .outcome
                .as_ref()
                .err()
                .is_some_and(|e| matches!(e.code, jsonrpc::METHOD_NOT_FOUND | -32022));
            if !refused {
                st.init = None;
                return false;
            }
            let discover = self.request(Id::text(DISCOVER), "server/discover", Map::new(), None);
            let _ = self.own.send(discover);
            return true;
        }
        if id.and_then(|i| i.strip_prefix('"')?.strip_suffix('"')) != Some(DISCOVER) {
            return false;
        }
        let Some(init) = st.init.take() else {
            return true;
        };
        let discovered = resp
            .outcome
            .as_ref()
            .ok()
            .and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
            .filter(|d| {
                d["supportedVersions"]
                    .as_array()
                    .is_some_and(|v| v.contains(&Value::from(VERSION)))
            });
        let Some(d) = discovered else {
            let why = format!(
                "backend '{}' refused initialize and server/discover",
                self.name
            );
            self.hub.message(Message::Response(Response::error(
                Some(init),
                jsonrpc::INTERNAL_ERROR,
                why,
            )));
            return true;
        };
        st.modern = true;
        st.subscribable = d["capabilities"]["resources"]["subscribe"] == true;
        st.announced = ["tools", "prompts", "resources"]
            .into_iter()
            .filter(|cap| d["capabilities"][cap]["listChanged"] == true)
            .map(String::from)
            .collect();
        let takes_tasks = d["capabilities"]["extensions"].get(TASKS).is_some();
        self.tasks.store(takes_tasks, Ordering::Relaxed);
        info!(
            "backend '{}': speaks protocol 2026-07-28; the gateway bridges it",
            self.name
        );
        let capabilities = d.get("capabilities").cloned().unwrap_or_else(|| json!({}));
        let mut result = json!({
            "protocolVersion": crate::contract::PROTOCOL_VERSIONS[0],
            "capabilities": capabilities,
            "serverInfo": d["_meta"]["io.modelcontextprotocol/serverInfo"].clone(),
        });
        if let Some(i) = d.get("instructions") {
            result["instructions"] = i.clone();
        }
        // List changes come through a listen stream in this revision.
        let mut wanted = Map::new();
        for (cap, flag) in [
            ("tools", "toolsListChanged"),
            ("prompts", "promptsListChanged"),
            ("resources", "resourcesListChanged"),
        ] {
            if capabilities[cap]["listChanged"] == true {
                wanted.insert(flag.into(), Value::Bool(true));
            }
        }
        if !wanted.is_empty() {
            let params = Map::from_iter([("notifications".to_string(), Value::Object(wanted))]);
            let _ =
                self.own
                    .send(self.request(Id::text(LISTEN), "subscriptions/listen", params, None));
        }
        self.hub.message(Message::Response(Response::ok(
            init,
            jsonrpc::to_raw(&result),
        )));
        true
    }
}

impl Inbox for Bridge {
    fn message(&self, msg: Message) -> bool {
        let mut st = self.lock();
        let msg = match msg {
            Message::Response(resp) if !st.modern => {
                // Once a legacy backend's handshake is done, its answers pass untouched.
                if st.init.is_some() && self.handshake(&mut st, &resp) {
                    return true;
                }
                Message::Response(resp)
            }
            Message::Response(resp) => {
                let key = resp.id.as_ref().map(raw_key).unwrap_or_default();
                let own: Option<String> = serde_json::from_str::<String>(&key)
                    .ok()
                    .filter(|k| k.starts_with("gateway-"));
                if let Some(task) = own.as_deref().and_then(|k| k.strip_prefix(POLL)) {
                    let outcome = resp
                        .outcome
                        .map(|r| serde_json::from_str(r.get()).unwrap_or_default());
                    // The task's questions are its call's.
                    let about = st.polled.get(task).map(|p| p.call.hub_id.clone());
                    let for_hub = self.polled(&mut st, task, outcome);
                    drop(st);
                    return self.to_hub_about(for_hub, about.as_ref());
                }
                if own
                    .as_deref()
                    .is_some_and(|k| !k.starts_with("gateway-retry-"))
                {
                    return true; // the listen stream's end, a task's update or cancel
                }
                let Some(call) = st.calls.remove(&key) else {
                    drop(st);
                    return self.hub.message(Message::Response(resp));
                };
                let result = resp
                    .outcome
                    .as_ref()
                    .ok()
                    .and_then(|r| serde_json::from_str::<Map<String, Value>>(r.get()).ok());
                if call.method == "tools/list" {
                    self.note_mirrored(result.as_ref());
                }
                self.note_ttl(&mut st, &call.method, result.as_ref());
                let kind = result
                    .as_ref()
                    .and_then(|r| r.get("resultType").and_then(Value::as_str));
                if let (Some("task"), Some(r)) = (kind, &result) {
                    // A task: polled from now on, its end the call's answer.
                    let task = r.get("taskId").and_then(Value::as_str).unwrap_or_default();
                    let every = r
                        .get("pollIntervalMs")
                        .and_then(Value::as_u64)
                        .unwrap_or(500);
                    let every = Duration::from_millis(every.clamp(50, 5000));
                    let due = Some(Instant::now());
                    st.polled
                        .insert(task.to_string(), Polled { call, every, due });
                    let _ = self.wake.try_send(());
                    return true;
                }
                if let (Some("input_required"), Some(r)) = (kind, &result) {
                    // The backend's questions go to the client as its own requests.
                    let inputs = r
                        .get("inputRequests")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    let state = r.get("requestState").cloned();
                    let about = call.hub_id.clone();
                    let requests = self.open_round(&mut st, Then::Retry(call), state, inputs);
                    drop(st);
                    return self.to_hub_about(requests, Some(&about));
                }
                Message::Response(Response {
                    id: Some(call.hub_id),
                    outcome: resp.outcome,
                })
            }
            Message::Notification(n) if st.modern => {
                let mut params = object(n.params.as_deref());
                if n.method == "notifications/subscriptions/acknowledged" {
                    return true;
                }
                let from = params
                    .get("_meta")
                    .and_then(|m| m.get("io.modelcontextprotocol/subscriptionId"))
                    .map(Value::to_string);
                if from.is_some_and(|f| st.ended.contains(&f)) {
                    return true; // a subscription cancelled since
                }
                // The listen stream's tag means nothing to legacy clients.
                if let Some(Value::Object(meta)) = params.get_mut("_meta") {
                    meta.remove("io.modelcontextprotocol/subscriptionId");
                    if meta.is_empty() {
                        params.remove("_meta");
                    }
                }
                let params = (!params.is_empty()).then(|| jsonrpc::to_raw(&params));
                Message::Notification(Notification {
                    method: n.method,
                    params,
                })
            }
            other => other,
        };
        drop(st);
        self.hub.message(msg)
    }

    fn message_during(&self, msg: Message, request: &Id) -> bool {
        let legacy = !self.lock().modern;
        match msg {
            Message::Request(_) if legacy => self.hub.message_during(msg, request),
            other => self.message(other),
        }
    }

    fn exited(&self, reason: String) {
        self.hub.exited(reason);
    }
}

impl Bridge {
    /// Hands the hub what the bridge made of one of the backend's answers: requests for
    /// the client as the call `about`'s own.
    fn to_hub_about(&self, msgs: Vec<Message>, about: Option<&Id>) -> bool {
        msgs.into_iter().all(|m| match (about, &m) {
            (Some(id), Message::Request(_)) => self.hub.message_during(m, id),
            _ => self.hub.message(m),
        })
    }
}
