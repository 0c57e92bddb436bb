//! The 2026-07-28 tasks extension (`io.modelcontextprotocol/tasks`) for modern clients,
//! over backends that run tools as tasks the 2025-11-25 way.
//!
//! A modern client that declares the extension and calls a tool its backend may run as a
//! task gets a task (`resultType: "task"`), named by the gateway `<instance>.<random>`.
//! The call's hub session stays open for it, and a thread of the task's own asks the
//! backend `tasks/result`, which waits for the end. What the backend asks the client on
//! the way (elicitation, sampling, roots, the task named in their `_meta`) waits in the
//! task as `inputRequests`, which `tasks/get` shows and `tasks/update` answers. The end is
//! kept in the task and inlined by `tasks/get`: a tool's own error (`isError`) is
//! `completed` (2025-11-25 called it `failed`), a JSON-RPC error `failed`. `tasks/cancel`
//! asks the backend to cancel; the task is `cancelled` once the backend says so.
//!
//! A task is kept for its `ttlMs` from its creation (at most an hour), at most
//! `PER_CLIENT` of one client's and `MAX_TASKS` at once (one more forgets that client's
//! oldest, or the biggest holder's, whose thread then ends its session, and so its call at
//! the backend). A task lives on the instance that made it; asked of
//! another, the answer names the instance.

use super::serve::{Next, Private};
use crate::hub::Router;
use crate::jsonrpc::{
    self, ErrorObject, INTERNAL_ERROR, INVALID_PARAMS, Id, Message, Request, Response,
};
use crate::modern::{self, Meta, capability_for, result};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::modern::TASKS_EXTENSION as EXTENSION;
/// Tasks kept at once.
const MAX_TASKS: usize = 1000;
/// The longest a task is kept, and the time to live the gateway asks backends for.
pub const MAX_TTL_MS: u64 = 3_600_000;
/// How often clients are told to poll when the backend does not say.
const POLL_MS: u64 = 500;
/// `_meta` key a 2025-11-25 result names its task with; a modern result does not.
const RELATED: &str = "io.modelcontextprotocol/related-task";

/// The methods of the extension.
pub const METHODS: [&str; 3] = ["tasks/get", "tasks/update", "tasks/cancel"];

/// The modern clients' tasks on this instance, by the id they know.
#[derive(Default)]
pub struct Tasks(Mutex<HashMap<String, Arc<Task>>>);

struct Task {
    /// The hub session the task's call ran in, and that its thread keeps open.
    session: String,
    /// The profile (and client token) it was made through: only they know it.
    access: crate::contract::Access,
    router: Router,
    /// The hub's name for the backend's task.
    exposed: String,
    created_at: String,
    ttl_ms: u64,
    poll_ms: u64,
    until: Instant,
    /// Forgotten: its thread ends the session.
    gone: AtomicBool,
    state: Mutex<State>,
}

struct State {
    status: &'static str,
    message: Option<String>,
    updated_at: String,
    /// The backend's requests waiting for the client: key, request, the hub's id.
    inputs: Vec<(String, Value, Id)>,
    asked: usize,
    /// The call's result, or its JSON-RPC error.
    end: Option<Result<Value, Value>>,
}

const TERMINAL: [&str; 3] = ["completed", "failed", "cancelled"];

impl Task {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, msg: Message) {
        let _ = self.router.dispatch(&self.session, msg);
    }

    /// The task as `tasks/get` answers (`detailed`) or as its creation does.
    fn view(&self, id: &str, detailed: bool) -> Map<String, Value> {
        let state = self.state();
        let mut out = Map::new();
        out.insert("taskId".into(), Value::from(id));
        out.insert("status".into(), Value::from(state.status));
        if let Some(message) = &state.message {
            out.insert("statusMessage".into(), Value::from(message.as_str()));
        }
        out.insert("createdAt".into(), Value::from(self.created_at.as_str()));
        out.insert(
            "lastUpdatedAt".into(),
            Value::from(state.updated_at.as_str()),
        );
        out.insert("ttlMs".into(), Value::from(self.ttl_ms));
        out.insert("pollIntervalMs".into(), Value::from(self.poll_ms));
        if !detailed {
            return out;
        }
        match &state.end {
            Some(Ok(done)) if state.status == "completed" => {
                out.insert("result".into(), done.clone());
            }
            Some(Err(error)) if state.status == "failed" => {
                out.insert("error".into(), error.clone());
            }
            _ => {}
        }
        if state.status == "input_required" {
            let inputs = state.inputs.iter().map(|(k, r, _)| (k.clone(), r.clone()));
            out.insert("inputRequests".into(), Value::Object(inputs.collect()));
        }
        out
    }

    /// The task ends (unless it has already).
    fn end(&self, status: &'static str, end: Option<Result<Value, Value>>) {
        let mut state = self.state();
        if TERMINAL.contains(&state.status) {
            return;
        }
        state.status = status;
        state.end = end;
        state.inputs.clear();
        state.updated_at = crate::audit::now();
    }
}

/// Whether the request's `_meta` declares the extension.
pub fn declared(meta: &Meta) -> bool {
    meta.capabilities
        .get("extensions")
        .and_then(|e| e.get(EXTENSION))
        .is_some()
}

/// -32021 for a client that did not declare the extension.
pub fn missing() -> ErrorObject {
    ErrorObject {
        code: modern::MISSING_CAPABILITY,
        message: format!(
            "the request needs the client capability extension '{EXTENSION}', which its _meta does not declare"
        ),
        data: Some(jsonrpc::to_raw(
            &json!({"requiredCapabilities": {"extensions": {EXTENSION: {}}}}),
        )),
    }
}

impl Tasks {
    fn table(&self) -> MutexGuard<'_, HashMap<String, Arc<Task>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A backend made a task of a modern client's call (`created`, its 2025-11-25
    /// `CreateTaskResult`, the task named by the hub): the task as the client gets it, and
    /// a thread that sees it to its end over `session`.
    pub(super) fn adopt(
        &self,
        ends: &super::Ends,
        session: Private,
        created: &Value,
        meta: Meta,
        early: Vec<Request>,
    ) -> Map<String, Value> {
        let legacy = &created["task"];
        let now = crate::audit::now();
        let text = |key: &str| {
            legacy[key]
                .as_str()
                .map_or_else(|| now.clone(), String::from)
        };
        let ttl_ms = legacy["ttl"]
            .as_u64()
            .map_or(MAX_TTL_MS, |t| t.min(MAX_TTL_MS));
        let poll_ms = legacy["pollInterval"]
            .as_u64()
            .filter(|p| *p > 0)
            .unwrap_or(POLL_MS);
        // `input_required` is the gateway's to say, once it holds the backend's questions.
        let status = "working";
        let instance = ends.instance.as_str();
        let task = Arc::new(Task {
            session: session.id().to_string(),
            access: ends.access.clone(),
            router: session.router(),
            exposed: legacy["taskId"].as_str().unwrap_or_default().to_string(),
            created_at: text("createdAt"),
            ttl_ms,
            poll_ms,
            until: Instant::now() + Duration::from_millis(ttl_ms),
            gone: AtomicBool::new(false),
            state: Mutex::new(State {
                status,
                message: legacy["statusMessage"].as_str().map(String::from),
                updated_at: text("lastUpdatedAt"),
                inputs: Vec::new(),
                asked: 0,
                end: None,
            }),
        });
        let id = format!("{instance}.{}", crate::ids::new_secret());
        {
            let mut table = self.table();
            let now = Instant::now();
            table.retain(|_, t| {
                let keep = t.until > now;
                if !keep {
                    t.gone.store(true, Ordering::Relaxed);
                }
                keep
            });
            // At most `PER_CLIENT` of one client's (token and endpoint), and past
            // `MAX_TASKS` the biggest holder's oldest goes: one client's flood never
            // forgets another's task.
            let held: Vec<(String, &crate::contract::Access, Instant)> = table
                .iter()
                .map(|(k, t)| (k.clone(), &t.access, t.until))
                .collect();
            let forget = modern::to_forget(&held, &task.access, modern::PER_CLIENT, MAX_TASKS);
            if let Some(oldest) = forget
                && let Some(t) = table.remove(&oldest)
            {
                log::warn!(
                    "forgetting task '{oldest}': {} tasks kept, at most {MAX_TASKS} in all and {} of one client's",
                    table.len() + 1,
                    modern::PER_CLIENT
                );
                t.gone.store(true, Ordering::Relaxed);
            }
            table.insert(id.clone(), task.clone());
        }
        for r in early {
            take(&task, &session, &meta, r);
        }
        let view = task.view(&id, false);
        let spawned = std::thread::Builder::new()
            .name("task".into())
            .spawn(move || drive(&task, &session, &meta));
        if let Err(e) = spawned {
            log::error!("cannot start a thread for task '{id}': {e}");
        }
        let mut out = view;
        out.insert("resultType".into(), Value::from("task"));
        result("tools/call", out)
    }

    /// Answers `tasks/get`, `tasks/update` or `tasks/cancel` (the extension declared).
    pub fn answer(
        &self,
        ends: &super::Ends,
        method: &str,
        params: Option<&Value>,
    ) -> Result<Map<String, Value>, ErrorObject> {
        let instance = ends.instance.as_str();
        let invalid = |message: String| ErrorObject::new(INVALID_PARAMS, message);
        let id = params
            .and_then(|p| p.get("taskId"))
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("invalid params: 'taskId' must be a string".into()))?;
        let task = self
            .table()
            .get(id)
            .filter(|t| t.until > Instant::now() && t.access == ends.access)
            .cloned();
        let Some(task) = task else {
            let issuer = id.rsplit_once('.').map_or("", |(i, _)| i);
            return Err(invalid(if !issuer.is_empty() && issuer != instance {
                format!(
                    "invalid params: task '{id}' was made by gateway instance '{issuer}', and this is '{instance}'; its polls must reach the instance that made it (see docs/operations.md, several instances)"
                )
            } else {
                format!("invalid params: unknown task '{id}' (never made here, or expired)")
            }));
        };
        match method {
            "tasks/get" => return Ok(result(method, task.view(id, true))),
            "tasks/update" => {
                let responses = params.and_then(|p| p.get("inputResponses"));
                let mut state = task.state();
                let (answered, waiting) = std::mem::take(&mut state.inputs)
                    .into_iter()
                    .partition(|(k, _, _)| responses.and_then(|r| r.get(k)).is_some());
                state.inputs = waiting;
                if state.inputs.is_empty() && state.status == "input_required" {
                    state.status = "working";
                    state.updated_at = crate::audit::now();
                }
                drop(state);
                for (key, _, id) in answered {
                    let answer = responses.and_then(|r| r.get(&key)).cloned();
                    let answer = jsonrpc::to_raw(&answer.unwrap_or_default());
                    task.send(Message::Response(Response::ok(id, answer)));
                }
            }
            _ => {
                if !TERMINAL.contains(&task.state().status) {
                    task.send(Message::Request(Request {
                        id: Id::text(CANCEL),
                        method: "tasks/cancel".into(),
                        params: Some(jsonrpc::to_raw(&json!({"taskId": task.exposed}))),
                    }));
                }
            }
        }
        Ok(result(method, Map::new()))
    }
}

/// The ids of the task thread's requests in its session.
const RESULT: &str = "gateway-task-result";
const CHECK: &str = "gateway-task-check";
const CANCEL: &str = "gateway-task-cancel";

/// The task's thread: asks the backend `tasks/result` and keeps what comes until the end,
/// its time to live, or its being forgotten.
fn drive(task: &Task, session: &Private, meta: &Meta) {
    let ask = |id: &str, method: &str| {
        session.send(Message::Request(Request {
            id: Id::text(id),
            method: method.into(),
            params: Some(jsonrpc::to_raw(&json!({"taskId": task.exposed}))),
        }))
    };
    ask(RESULT, "tasks/result");
    let mut failure = None;
    while !task.gone.load(Ordering::Relaxed) && Instant::now() < task.until {
        let msg = match session.next(Duration::from_secs(1)) {
            Next::Message(msg) => msg,
            Next::Quiet | Next::HungUp => continue,
            Next::Ended => {
                let error = json!({"code": INTERNAL_ERROR, "message": "the gateway stopped before the task ended"});
                return task.end("failed", Some(Err(error)));
            }
        };
        match msg {
            Message::Response(r) => {
                let id = [RESULT, CHECK, CANCEL]
                    .into_iter()
                    .find(|w| r.id.as_ref() == Some(&Id::text(w)))
                    .unwrap_or_default();
                match (id, r.outcome) {
                    (RESULT, Ok(done)) => {
                        let mut done: Value = serde_json::from_str(done.get()).unwrap_or_default();
                        unrelated(&mut done);
                        return task.end("completed", Some(Ok(done)));
                    }
                    // An error may be the call's end, or only the wait's (a timeout): the
                    // task's state tells.
                    (RESULT, Err(error)) => {
                        failure = Some(serde_json::to_value(&error).unwrap_or_default());
                        ask(CHECK, "tasks/get");
                    }
                    (CHECK | CANCEL, Ok(state)) => {
                        let state: Value = serde_json::from_str(state.get()).unwrap_or_default();
                        match state["status"].as_str() {
                            Some("cancelled") => return task.end("cancelled", None),
                            Some("working" | "input_required") if id == CHECK => {
                                ask(RESULT, "tasks/result");
                            }
                            _ if id == CHECK => return task.end("failed", failure.map(Err)),
                            _ => {}
                        }
                    }
                    (CHECK, Err(_)) => return task.end("failed", failure.map(Err)),
                    _ => {}
                }
            }
            Message::Request(r) => take(task, session, meta, r),
            Message::Notification(n) if n.method == "notifications/tasks/status" => {
                let told: Value = n
                    .params
                    .as_deref()
                    .and_then(|p| serde_json::from_str(p.get()).ok())
                    .unwrap_or_default();
                if let Some(message) = told["statusMessage"].as_str() {
                    task.state().message = Some(message.to_string());
                }
            }
            Message::Notification(_) => {}
        }
    }
}

/// Whether a backend's request names a task in its `_meta` (asks for a task's input).
pub(super) fn names_task(r: &Request) -> bool {
    r.params
        .as_deref()
        .is_some_and(|p| p.get().contains(RELATED))
}

/// A backend's request for the client: waits in the task for `tasks/update`, or is
/// refused when the client did not declare the capability it needs.
fn take(task: &Task, session: &Private, meta: &Meta, r: Request) {
    let Some(kind) = capability_for(&r.method) else {
        return session.refuse(r, "not a request the gateway passes to clients".into());
    };
    if meta.capabilities.get(kind).is_none() {
        let why = format!(
            "the client did not declare the capability '{}' needs",
            r.method
        );
        return session.refuse(r, why);
    }
    let mut state = task.state();
    if TERMINAL.contains(&state.status) {
        return;
    }
    state.asked += 1;
    let key = format!("{kind}-{}", state.asked);
    let mut params = r
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .unwrap_or_else(|| json!({}));
    unrelated(&mut params);
    let request = json!({"method": r.method, "params": params});
    state.inputs.push((key, request, r.id));
    state.status = "input_required";
    state.updated_at = crate::audit::now();
}

/// Takes 2025-11-25's naming of the task out of a message's params or result (a modern
/// client knows which task it asked about), with `_meta` when nothing else is left in it.
fn unrelated(v: &mut Value) {
    let Some(obj) = v.as_object_mut() else { return };
    if let Some(Value::Object(meta)) = obj.get_mut("_meta") {
        meta.remove(RELATED);
        if meta.is_empty() {
            obj.remove("_meta");
        }
    }
}
