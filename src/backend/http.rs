//! A backend over Streamable HTTP: every message is a POST (a request's on its own thread,
//! since its answer may stream for a long time), plus the GET stream once the session is
//! up. A server that forgets the session gets a new one, and the message once more.

use super::modern::Bridge;
use super::remote::{MAX_BODY, agent, read_sse_stream, spawn, tls, to_hub, undeliverable};
use super::{BackendHandle, Hub};
use crate::contract::PROTOCOL_VERSIONS;
use crate::jsonrpc::{self, Message};
use log::{debug, info, warn};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use ureq::Agent;

/// The backend-side session of a Streamable HTTP backend.
#[derive(Default)]
struct HttpSession {
    id: Option<String>,
    version: Option<String>,
    /// The last `initialize` params, to start over when the server forgets the session.
    init_params: Option<Box<serde_json::value::RawValue>>,
    get_stream_for: Option<String>,
}

struct Remote {
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    agent: Agent,
    hub: Hub,
    /// The bridge `hub` is, for what 2026-07-28 requests carry in their headers.
    bridge: Arc<Bridge>,
    session: Mutex<HttpSession>,
    max_message: usize,
}

/// Connects to a Streamable HTTP server: every message is a POST (a request's on its own
/// thread, since its answer may stream for a long time), plus the GET stream once the
/// session is up.
pub fn start(
    name: &str,
    url: &str,
    headers: &[(String, String)],
    hub: Hub,
    max_message: usize,
) -> Result<BackendHandle, String> {
    // A backend that speaks only 2026-07-28 is bridged (`modern.rs`).
    let bridge = Arc::new(Bridge::new(hub, name));
    let remote = Arc::new(Remote {
        max_message,
        name: name.to_string(),
        url: url.to_string(),
        headers: headers.to_vec(),
        agent: agent(),
        hub: bridge.clone(),
        bridge: bridge.clone(),
        session: Mutex::new(HttpSession::default()),
    });
    let (tx, rx) = crossbeam_channel::unbounded::<Message>();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let writer = remote.clone();
    spawn(format!("backend-{name}-writer"), move || {
        while let Ok(msg) = bridge.next(&rx) {
            let Some(msg) = msg else { continue };
            if matches!(msg, Message::Request(_)) {
                let r = writer.clone();
                let posting = spawn(format!("backend-{}-post", writer.name), move || {
                    r.post(msg, true)
                });
                if let Err(e) = posting {
                    warn!("backend '{}': {e}", writer.name);
                }
            } else {
                writer.post(msg, true);
            }
        }
    })?;
    let supervisor = thread::Builder::new()
        .name(format!("backend-{name}"))
        .spawn(move || {
            let _ = stop_rx.recv();
            remote.end_session();
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    Ok(BackendHandle::new(tx, stop_tx, supervisor))
}

impl Remote {
    fn lock(&self) -> std::sync::MutexGuard<'_, HttpSession> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// POSTs one message and passes on whatever comes back. When the server has forgotten
    /// the session, starts a new one and, with `retry`, sends the message once more: a
    /// server that rejects the session has not acted on the message.
    fn post(&self, msg: Message, retry: bool) {
        let name = &self.name;
        if let Message::Request(r) = &msg
            && r.method == "initialize"
        {
            self.lock().init_params = r.params.clone();
        }
        let (session, version) = {
            let s = self.lock();
            (s.id.clone(), s.version.clone())
        };
        let body = msg.to_json();
        debug!("> {name}: {body}");
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(id) = &session {
            request = request.header("Mcp-Session-Id", id);
        }
        match modern_headers(&msg) {
            // A 2026-07-28 request says what it is in its headers, and has no session.
            Some(mirrored) => {
                for (k, v) in mirrored {
                    request = request.header(k, v);
                }
                for (k, v) in self.bridge.param_headers(&msg) {
                    request = request.header(k, v);
                }
            }
            None => {
                if let Some(v) = &version {
                    request = request.header("MCP-Protocol-Version", v);
                }
            }
        }
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let response = match request.send(body.as_str()) {
            Ok(r) => r,
            Err(e) => {
                let why = format!("backend '{name}': cannot reach {}: {e}", self.url);
                return undeliverable(&self.hub, &msg, why);
            }
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let mut text = String::new();
            let _ = response
                .into_body()
                .into_reader()
                .take(64 * 1024)
                .read_to_string(&mut text);
            // A JSON-RPC error in the body (a 2026-07-28 server's 404 for a method it does
            // not have, or 400 for a bad request) is the answer itself.
            let awaited = match &msg {
                Message::Request(r) => Some(&r.id),
                _ => None,
            };
            let answers = |id: &jsonrpc::Id| {
                matches!(Message::parse(text.trim()),
                    Ok(Message::Response(r)) if r.id.as_ref().map(|i| i.raw().get()) == Some(id.raw().get()))
            };
            if awaited.is_some_and(answers) {
                to_hub(&self.hub, name, text.trim(), awaited);
                return;
            }
            // The spec says 404; some servers (the TypeScript SDK's examples among them)
            // answer 400 "No valid session ID" for a session they do not know.
            let lost = session.is_some()
                && (status == 404
                    || (status == 400 && text.to_ascii_lowercase().contains("session")));
            if lost {
                info!(
                    "backend '{name}': {} no longer knows session {}; starting a new one",
                    self.url,
                    session.unwrap_or_default()
                );
                self.lock().id = None;
                if retry && self.reinitialize() {
                    return self.post(msg, false);
                }
            }
            let why = format!(
                "backend '{name}': POST {} answered HTTP {status}: {}",
                self.url,
                text.trim()
            );
            return undeliverable(&self.hub, &msg, why);
        }
        if let Some(id) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.lock().id = Some(id.to_string());
        }
        if matches!(&msg, Message::Notification(n) if n.method == "notifications/initialized") {
            self.open_get_stream();
        }
        if status == 202 || !matches!(msg, Message::Request(_)) {
            return;
        }
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/event-stream"));
        let body = response.into_body().into_reader();
        let awaited = match &msg {
            Message::Request(r) => Some(&r.id),
            _ => None,
        };
        if is_stream {
            let (why, answered) =
                read_sse_stream(body, name, &self.hub, self.max_message, awaited, |_| false);
            debug!("backend '{name}': a POST response stream ended: {why}");
            if !answered {
                let why = format!(
                    "backend '{name}': the response stream from {} ended without an answer: {why}",
                    self.url
                );
                undeliverable(&self.hub, &msg, why);
            }
        } else {
            let mut text = String::new();
            if let Err(e) = body
                .take(self.max_message as u64 + 1)
                .read_to_string(&mut text)
            {
                let why = format!(
                    "backend '{name}': cannot read the answer from {}: {e}",
                    self.url
                );
                return undeliverable(&self.hub, &msg, why);
            }
            if text.len() > self.max_message {
                let why = format!(
                    "backend '{name}' sent an answer over the {}-byte limit (maxMessageSize)",
                    self.max_message
                );
                return undeliverable(&self.hub, &msg, why);
            }
            self.note_version(&text);
            if !to_hub(&self.hub, name, text.trim(), awaited) {
                let why = format!(
                    "backend '{name}': {} answered without a response to the request",
                    self.url
                );
                undeliverable(&self.hub, &msg, why);
            }
        }
    }

    /// Remembers the protocol version an `initialize` result names.
    fn note_version(&self, text: &str) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
            && let Some(version) = v
                .pointer("/result/protocolVersion")
                .and_then(|v| v.as_str())
            && PROTOCOL_VERSIONS.contains(&version)
        {
            self.lock().version = Some(version.to_string());
        }
    }

    /// Starts a fresh session with the last `initialize` params; its answer stays here.
    fn reinitialize(&self) -> bool {
        let Some(params) = self.lock().init_params.clone() else {
            return false;
        };
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"mcp-gateway-reinitialize","method":"initialize","params":{}}}"#,
            params.get()
        );
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let Ok(response) = request.send(body.as_str()) else {
            return false;
        };
        let Some(id) = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
        else {
            return false;
        };
        // The result may come as JSON or as one SSE event; either way it names the version.
        let mut text = String::new();
        let _ = response
            .into_body()
            .into_reader()
            .take(MAX_BODY)
            .read_to_string(&mut text);
        let json = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .map_or(text.as_str(), str::trim);
        self.note_version(json);
        self.lock().id = Some(id);
        let initialized = Message::Notification(crate::jsonrpc::Notification {
            method: "notifications/initialized".into(),
            params: None,
        });
        self.post(initialized, false);
        true
    }

    /// The GET stream for messages the server sends on its own (once per session).
    fn open_get_stream(self: &Remote) {
        let Some(session) = ({
            let mut s = self.lock();
            let fresh =
                s.id.clone()
                    .filter(|id| s.get_stream_for.as_ref() != Some(id));
            if fresh.is_some() {
                s.get_stream_for = fresh.clone();
            }
            fresh
        }) else {
            return;
        };
        let mut request = self
            .agent
            .get(&self.url)
            .header("Accept", "text/event-stream")
            .header("Mcp-Session-Id", &session);
        if let Some(v) = self.lock().version.clone() {
            request = request.header("MCP-Protocol-Version", &v);
        }
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let (hub, name) = (self.hub.clone(), self.name.clone());
        let max_message = self.max_message;
        let spawned = spawn(format!("backend-{name}-get"), move || {
            match request.call() {
                Ok(r) if r.status().is_success() => {
                    let (why, _) = read_sse_stream(
                        r.into_body().into_reader(),
                        &name,
                        &hub,
                        max_message,
                        None,
                        |_| false,
                    );
                    debug!("backend '{name}': GET stream ended: {why}");
                }
                Ok(r) => debug!(
                    "backend '{name}': no GET stream (HTTP {})",
                    r.status().as_u16()
                ),
                Err(e) => debug!("backend '{name}': no GET stream: {e}"),
            }
        });
        if let Err(e) = spawned {
            warn!("backend '{}': {e}", self.name);
        }
    }

    /// Ends the session at the server (DELETE), as the gateway shuts the backend down.
    fn end_session(&self) {
        let Some(id) = self.lock().id.take() else {
            return;
        };
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls())
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let mut request = agent.delete(&self.url).header("Mcp-Session-Id", &id);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        match request.call() {
            Ok(r) => debug!(
                "backend '{}': DELETE session: HTTP {}",
                self.name,
                r.status().as_u16()
            ),
            Err(e) => debug!("backend '{}': DELETE session failed: {e}", self.name),
        }
    }
}

/// The headers a 2026-07-28 request carries over HTTP: its version, method and the name or
/// URI it is about (base64 in the revision's form when not plain ASCII); none for another.
fn modern_headers(msg: &Message) -> Option<Vec<(&'static str, String)>> {
    let Message::Request(r) = msg else {
        return None;
    };
    let params: serde_json::Value = serde_json::from_str(r.params.as_deref()?.get()).ok()?;
    let version = params
        .pointer("/_meta/io.modelcontextprotocol~1protocolVersion")?
        .as_str()?;
    if version != crate::modern::VERSION {
        return None;
    }
    let mut headers = vec![
        ("MCP-Protocol-Version", version.to_string()),
        ("Mcp-Method", r.method.clone()),
    ];
    if let Some(name) = crate::modern::name_of(&r.method, Some(&params)) {
        headers.push(("Mcp-Name", crate::modern::encode_header(&name)));
    }
    Some(headers)
}
