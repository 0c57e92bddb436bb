//! The stdio loop shared by the built-in servers: `initialize`, `ping`, `tools/list` and
//! `tools/call`, each call on its own thread so a slow command never delays another, with
//! `notifications/cancelled` and progress notifications for the calls that run.
//!
//! Only protocol messages go to stdout (one per line); diagnostics go to stderr, which the
//! gateway copies into its log.

use crate::jsonrpc::{
    self, ErrorObject, INVALID_PARAMS, METHOD_NOT_FOUND, Message, Request, Response,
};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

pub trait ToolServer: Send + Sync + 'static {
    /// `serverInfo.name`.
    fn name(&self) -> &'static str;
    /// The tool definitions for `tools/list`.
    fn tools(&self) -> Vec<Value>;
    /// Runs a tool; `None` when there is no tool of that name.
    fn call(&self, tool: &str, args: &Map<String, Value>, ctx: &CallContext) -> Option<Value>;
    /// Stdin closed: the gateway is going away; end whatever is still running.
    fn shutdown(&self);
}

type Out = Arc<Mutex<std::io::Stdout>>;

/// What a running call can see: whether it was cancelled, and where its progress goes.
pub struct CallContext {
    server: &'static str,
    cancelled: AtomicBool,
    /// The client's progress token, when it asked for progress.
    token: Option<Value>,
    step: AtomicU64,
    out: Out,
}

impl CallContext {
    pub fn server(&self) -> &'static str {
        self.server
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub fn wants_progress(&self) -> bool {
        self.token.is_some()
    }

    /// Sends a progress notification carrying `message` (the client asked for progress).
    pub fn progress(&self, message: &str) {
        let Some(token) = &self.token else { return };
        let step = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        let n = crate::jsonrpc::Notification {
            method: "notifications/progress".into(),
            params: Some(jsonrpc::to_raw(
                &json!({"progressToken": token, "progress": step, "message": message}),
            )),
        };
        write_message(&self.out, &Message::Notification(n));
    }
}

pub fn serve<S: ToolServer>(server: S) -> ExitCode {
    let server = Arc::new(server);
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    // Calls in flight, by request id, so a cancellation can reach them.
    let running: Arc<Mutex<HashMap<String, Arc<CallContext>>>> = Arc::default();
    let stdin = std::io::stdin().lock();
    for line in stdin.lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        match Message::parse(&line) {
            Ok(Message::Request(req)) => {
                if req.method == "tools/call" {
                    let key = req.id.raw().get().to_string();
                    let ctx = Arc::new(CallContext {
                        server: server.name(),
                        cancelled: AtomicBool::new(false),
                        token: progress_token(&req),
                        step: AtomicU64::new(0),
                        out: out.clone(),
                    });
                    lock(&running).insert(key.clone(), ctx.clone());
                    let (server, out, running) = (server.clone(), out.clone(), running.clone());
                    let spawned =
                        std::thread::Builder::new()
                            .name("call".into())
                            .spawn(move || {
                                let reply = call(&*server, req, &ctx);
                                lock(&running).remove(&key);
                                // A cancelled request gets no answer.
                                if !ctx.is_cancelled() {
                                    write(&out, &reply);
                                }
                            });
                    if let Err(e) = spawned {
                        eprintln!("cannot start a thread for a call: {e}");
                    }
                } else {
                    write(&out, &answer(&*server, req));
                }
            }
            Ok(Message::Notification(n)) if n.method == "notifications/cancelled" => {
                let id = n
                    .params
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                    .and_then(|p| p.get("requestId").map(Value::to_string));
                if let Some(ctx) = id.and_then(|id| lock(&running).get(&id).cloned()) {
                    ctx.cancelled.store(true, Ordering::SeqCst);
                }
            }
            Ok(_) => {} // other notifications and responses need no answer
            Err(e) => write(&out, &e.into_response()),
        }
    }
    server.shutdown();
    ExitCode::SUCCESS
}

fn answer(server: &dyn ToolServer, req: Request) -> Response {
    let result = match req.method.as_str() {
        "initialize" => {
            let asked = req
                .params
                .as_deref()
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .and_then(|p| p.get("protocolVersion")?.as_str().map(str::to_string));
            let version = asked
                .as_deref()
                .filter(|v| PROTOCOL_VERSIONS.contains(v))
                .unwrap_or(PROTOCOL_VERSIONS[0]);
            json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": server.name(), "version": env!("CARGO_PKG_VERSION")},
            })
        }
        "ping" => json!({}),
        "tools/list" => json!({ "tools": server.tools() }),
        other => {
            return Response::error(
                Some(req.id),
                METHOD_NOT_FOUND,
                format!("method not found: '{other}'"),
            );
        }
    };
    Response::ok(req.id, jsonrpc::to_raw(&result))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn progress_token(req: &Request) -> Option<Value> {
    let params: Value = serde_json::from_str(req.params.as_deref()?.get()).ok()?;
    params.get("_meta")?.get("progressToken").cloned()
}

fn call(server: &dyn ToolServer, req: Request, ctx: &CallContext) -> Response {
    let params: Map<String, Value> =
        match req.params.as_deref().map(|p| serde_json::from_str(p.get())) {
            Some(Ok(p)) => p,
            _ => return invalid(req, "tools/call: 'params' must be an object"),
        };
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return invalid(req, "tools/call: 'params.name' must be a string");
    };
    let empty = Map::new();
    let args = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(a)) => a,
        Some(_) => return invalid(req, "tools/call: 'params.arguments' must be an object"),
    };
    match server.call(name, args, ctx) {
        Some(result) => Response::ok(req.id, jsonrpc::to_raw(&result)),
        None => {
            let message = format!("unknown tool '{name}'");
            invalid(req, &message)
        }
    }
}

fn invalid(req: Request, message: &str) -> Response {
    Response {
        id: Some(req.id),
        outcome: Err(ErrorObject::new(INVALID_PARAMS, message)),
    }
}

fn write(out: &Mutex<std::io::Stdout>, reply: &Response) {
    write_message(out, &Message::Response(reply.clone()));
}

fn write_message(out: &Mutex<std::io::Stdout>, msg: &Message) {
    let mut line = msg.to_json();
    line.push('\n');
    let mut out = out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if out
        .write_all(line.as_bytes())
        .and_then(|_| out.flush())
        .is_err()
    {
        // The gateway closed our stdout: nobody is listening any more.
        std::process::exit(0);
    }
}

/// A tool result with one text block, `isError` set when the tool failed.
pub fn text_result(text: String, is_error: bool, structured: Option<Value>) -> Value {
    let mut result = json!({
        "content": [{"type": "text", "text": text}],
        "isError": is_error,
    });
    if let Some(s) = structured {
        result["structuredContent"] = s;
    }
    result
}
