//! Backends reached over HTTP: the legacy HTTP+SSE transport and Streamable HTTP.
//!
//! Owns the HTTP connections of one instance (and, for an SSE server the gateway starts
//! itself, that process). Like `backend.rs` for stdio, it hands what the server sends to
//! `backend::ToHub` (plain answers straight to their client, the rest to the hub) and
//! sends what the hub queues; it never routes. A request the
//! server cannot be reached for is answered here with a JSON-RPC error naming the backend
//! and URL, so the hub's pending entry always gets its one answer.

use crate::backend::ToHub;
use crate::backend::{self, BackendHandle};
use crate::config::Launch;
use crate::hub::{HubEvent, InstanceId, PROTOCOL_VERSIONS};
use crate::jsonrpc::{INTERNAL_ERROR, Id, Message, Response};
use crate::sse;
use crossbeam_channel::{Receiver, select};
use log::{debug, info, warn};
use std::io::{BufReader, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use ureq::Agent;

/// Time to connect to a backend; reading has no limit (streams stay open for hours).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JSON body read from a backend.
const MAX_BODY: u64 = 64 * 1024 * 1024;
/// Room for a TLS handshake (rustls needs more than 128 KiB in a debug build); only what
/// is touched costs memory.
const THREAD_STACK: usize = 512 * 1024;

fn agent() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .tls_config(tls())
        .build()
        .into()
}

/// Where Unix systems keep their CA bundle (Debian/Ubuntu/Alpine/Arch, Fedora/RHEL,
/// openSUSE, RHEL's extracted bundle, BSD/macOS/Alpine).
#[cfg(not(windows))]
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// TLS to HTTPS backends: on Unix, trusting the system's CA bundle (or `SSL_CERT_FILE`),
/// read once; on Windows, the bundled Mozilla roots.
fn tls() -> ureq::tls::TlsConfig {
    #[cfg(not(windows))]
    {
        static ROOTS: std::sync::OnceLock<ureq::tls::RootCerts> = std::sync::OnceLock::new();
        let roots = ROOTS.get_or_init(|| {
            let given = std::env::var("SSL_CERT_FILE")
                .ok()
                .filter(|f| !f.is_empty());
            let (path, certs) = load_roots(given.as_deref());
            match &path {
                Some(p) => info!("HTTPS backends: {} CA certificate(s) from {p}", certs.len()),
                None => warn!(
                    "HTTPS backends: no CA bundle found (looked at {}); set SSL_CERT_FILE to one",
                    CA_BUNDLES.join(", ")
                ),
            }
            certs.into()
        });
        ureq::tls::TlsConfig::builder()
            .root_certs(roots.clone())
            .build()
    }
    #[cfg(windows)]
    ureq::tls::TlsConfig::default()
}

/// The certificates of the first CA bundle found: `given`, else the usual places.
#[cfg(not(windows))]
fn load_roots(given: Option<&str>) -> (Option<String>, Vec<ureq::tls::Certificate<'static>>) {
    let candidates: Vec<&str> = match given {
        Some(g) => vec![g],
        None => CA_BUNDLES.to_vec(),
    };
    for path in candidates {
        let Ok(pem) = std::fs::read(path) else {
            continue;
        };
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if !certs.is_empty() {
            return (Some(path.to_string()), certs);
        }
    }
    (None, Vec::new())
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    thread::Builder::new()
        .name(name)
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map(|_| ())
        .map_err(|e| format!("cannot start a thread: {e}"))
}

/// Hands a backend's message to the hub; says whether it was the answer to `awaited`.
fn to_hub(hub: &ToHub, instance: InstanceId, name: &str, text: &str, awaited: Option<&Id>) -> bool {
    match Message::parse(text) {
        Ok(msg) => {
            debug!("< {name}: {text}");
            let answers = matches!((&msg, awaited), (Message::Response(r), Some(id)) if r.id.as_ref() == Some(id));
            hub.message(instance, msg);
            answers
        }
        Err(e) => {
            warn!(
                "backend '{name}': skipped a message that is not JSON-RPC ({e}): {}",
                backend::clip(text, 200)
            );
            false
        }
    }
}

/// Answers a request that could not be delivered, so nobody waits for it.
fn undeliverable(hub: &ToHub, instance: InstanceId, msg: &Message, why: String) {
    if let Message::Request(r) = msg {
        let reply = Response::error(Some(r.id.clone()), INTERNAL_ERROR, why);
        hub.message(instance, Message::Response(reply));
    } else {
        debug!("{why}");
    }
}

/// Resolves an `endpoint` event (often a path) against the SSE URL.
fn resolve(base: &str, endpoint: &str) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        return endpoint.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if endpoint.starts_with('/') {
        format!("{scheme}://{authority}{endpoint}")
    } else {
        let path = rest.split(['?', '#']).next().unwrap_or(rest);
        let dir = path.rsplit_once('/').map_or(authority, |(d, _)| d);
        format!("{scheme}://{dir}/{endpoint}")
    }
}

/// `host:port` of a URL, for checking that something listens there.
fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']'));
    Some(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", if scheme == "https" { 443 } else { 80 })
    })
}

// ---- legacy HTTP+SSE --------------------------------------------------------------

/// Connects to a legacy SSE server (starting it first when `launch` is given): a reader on
/// the GET stream and a writer that POSTs to the endpoint it announces.
pub fn start_sse(
    instance: InstanceId,
    name: &str,
    url: &str,
    launch: Option<&Launch>,
    startup: Duration,
    hub: ToHub,
    max_message: usize,
) -> Result<BackendHandle, String> {
    let child = match launch {
        Some(l) => Some(backend::spawn_logged(name, l)?),
        None => None,
    };
    let (tx, rx) = crossbeam_channel::unbounded::<Message>();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let (name, url) = (name.to_string(), url.to_string());
    let supervisor = thread::Builder::new()
        .name(format!("backend-{name}"))
        .spawn(move || {
            let mut child = child;
            let why = run_sse(
                instance,
                &name,
                &url,
                child.as_mut(),
                startup,
                &hub,
                rx,
                &stop_rx,
                max_message,
            );
            if let Some(c) = child.as_mut() {
                crate::tree::kill_child(&mut c.child);
            }
            if let Some(reason) = why {
                warn!("backend '{name}': {reason}");
                let _ = hub.hub.send(HubEvent::BackendExited { instance, reason });
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    Ok(BackendHandle::new(tx, stop_tx, supervisor))
}

/// Runs an SSE connection until it ends (returning why) or the hub stops it (`None`).
#[allow(clippy::too_many_arguments)] // one call site; the pieces are unrelated
fn run_sse(
    instance: InstanceId,
    name: &str,
    url: &str,
    child: Option<&mut backend::LoggedChild>,
    startup: Duration,
    hub: &ToHub,
    rx: Receiver<Message>,
    stop: &Receiver<()>,
    max_message: usize,
) -> Option<String> {
    if let Some(c) = child {
        let started = Instant::now();
        if let Err(e) = wait_until_listening(url, c, startup, stop) {
            return Some(e);
        }
        info!(
            "backend '{name}': listening on {url} after {:.0} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    let agent = agent();
    let response = match agent.get(url).header("Accept", "text/event-stream").call() {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => return Some(format!("GET {url} answered HTTP {}", r.status().as_u16())),
        Err(e) => return Some(format!("cannot connect to {url}: {e}")),
    };
    let (endpoint_tx, endpoint_rx) = crossbeam_channel::bounded::<String>(1);
    let (ended_tx, ended_rx) = crossbeam_channel::bounded::<String>(1);
    let reader = {
        let (hub, name, url) = (hub.clone(), name.to_string(), url.to_string());
        let body = response.into_body().into_reader();
        spawn(format!("backend-{name}-reader"), move || {
            let (why, _) =
                read_sse_stream(body, instance, &name, &hub, max_message, None, |event| {
                    if event.event == "endpoint" {
                        let _ = endpoint_tx.try_send(resolve(&url, event.data.trim()));
                        true
                    } else {
                        false
                    }
                });
            let _ = ended_tx.send(why);
        })
    };
    if let Err(e) = reader {
        return Some(e);
    }
    let endpoint = select! {
        recv(endpoint_rx) -> e => match e {
            Ok(e) => e,
            Err(_) => return Some(ended_rx.recv().unwrap_or_else(|_| "the SSE stream ended".into())),
        },
        recv(stop) -> _ => return None,
        default(CONNECT_TIMEOUT) => return Some(format!("{url} sent no 'endpoint' event within {CONNECT_TIMEOUT:?}")),
    };
    debug!("backend '{name}': posting to {endpoint}");
    let writer = {
        let (hub, name) = (hub.clone(), name.to_string());
        spawn(format!("backend-{name}-writer"), move || {
            for msg in rx {
                let body = msg.to_json();
                debug!("> {name}: {body}");
                let result = agent
                    .post(&endpoint)
                    .header("Content-Type", "application/json")
                    .send(body.as_str());
                match result {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => undeliverable(
                        &hub,
                        instance,
                        &msg,
                        format!(
                            "backend '{name}': POST {endpoint} answered HTTP {}",
                            r.status().as_u16()
                        ),
                    ),
                    Err(e) => undeliverable(
                        &hub,
                        instance,
                        &msg,
                        format!("backend '{name}': POST {endpoint} failed: {e}"),
                    ),
                }
            }
        })
    };
    if let Err(e) = writer {
        return Some(e);
    }
    select! {
        recv(ended_rx) -> why => Some(why.unwrap_or_else(|_| "the SSE stream ended".into())),
        recv(stop) -> _ => None,
    }
}

/// Waits until something accepts connections at the URL's address, or the command exits,
/// or `startup` passes. Polls every 50 ms: no fixed sleep.
fn wait_until_listening(
    url: &str,
    child: &mut backend::LoggedChild,
    startup: Duration,
    stop: &Receiver<()>,
) -> Result<(), String> {
    let target = host_port(url).ok_or_else(|| format!("cannot tell the address of {url}"))?;
    let deadline = Instant::now() + startup;
    loop {
        if let Ok(Some(status)) = child.child.try_wait() {
            // Its last words explain it: let the output threads finish reading them.
            let _ = child.drained.recv_timeout(Duration::from_secs(1));
            let last = child
                .last_words
                .lock()
                .map(|w| w.summary())
                .unwrap_or_default();
            let tail = if last.is_empty() {
                String::new()
            } else {
                format!("; its output ends: {last}")
            };
            return Err(format!(
                "its command exited ({status}) before listening on {url}{tail}"
            ));
        }
        let listening = target
            .to_socket_addrs()
            .ok()
            .into_iter()
            .flatten()
            .any(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok());
        if listening {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "its command did not start listening on {url} within {} s",
                startup.as_secs()
            ));
        }
        if stop.recv_timeout(Duration::from_millis(50)).is_ok() {
            return Err("stopped while starting".into());
        }
    }
}

/// Reads SSE events from `body`, giving each to `special` first (which returns true when it
/// took the event) and the `message` events to the hub. Returns why the stream ended, and
/// whether the answer to `awaited` came.
fn read_sse_stream(
    body: impl Read,
    instance: InstanceId,
    name: &str,
    hub: &ToHub,
    limit: usize,
    awaited: Option<&Id>,
    mut special: impl FnMut(&sse::Event) -> bool,
) -> (String, bool) {
    let mut answered = false;
    let mut reader = BufReader::with_capacity(64 * 1024, body);
    let mut parser = sse::Parser::default();
    let mut line = Vec::new();
    loop {
        match backend::read_line_limited(&mut reader, &mut line, limit) {
            Ok(backend::Line::End) => return ("the stream ended".into(), answered),
            Ok(backend::Line::Text) => {}
            Ok(backend::Line::TooLong(size)) => {
                answered |= awaited.is_some();
                if let Some(reply) = backend::oversized(name, &line, size, limit) {
                    hub.message(instance, Message::Response(reply));
                }
                continue;
            }
            Err(e) => return (format!("the stream broke: {e}"), answered),
        }
        let Some(event) = parser.line(&String::from_utf8_lossy(&line)) else {
            continue;
        };
        if special(&event) || event.data.trim().is_empty() {
            continue;
        }
        if event.event == "message" {
            answered |= to_hub(hub, instance, name, &event.data, awaited);
        }
    }
}

// ---- Streamable HTTP --------------------------------------------------------------

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
    instance: InstanceId,
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    agent: Agent,
    hub: ToHub,
    session: Mutex<HttpSession>,
    max_message: usize,
}

/// Connects to a Streamable HTTP server: every message is a POST (a request's on its own
/// thread, since its answer may stream for a long time), plus the GET stream once the
/// session is up.
pub fn start_http(
    instance: InstanceId,
    name: &str,
    url: &str,
    headers: &[(String, String)],
    hub: ToHub,
    max_message: usize,
) -> Result<BackendHandle, String> {
    let remote = Arc::new(Remote {
        max_message,
        instance,
        name: name.to_string(),
        url: url.to_string(),
        headers: headers.to_vec(),
        agent: agent(),
        hub,
        session: Mutex::new(HttpSession::default()),
    });
    let (tx, rx) = crossbeam_channel::unbounded::<Message>();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let writer = remote.clone();
    spawn(format!("backend-{name}-writer"), move || {
        for msg in rx {
            if matches!(msg, Message::Request(_)) {
                let r = writer.clone();
                let name = format!("backend-{}-post", writer.name);
                if let Err(e) = spawn(name, move || r.post(msg, true)) {
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
        if let Some(v) = &version {
            request = request.header("MCP-Protocol-Version", v);
        }
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        let response = match request.send(body.as_str()) {
            Ok(r) => r,
            Err(e) => {
                let why = format!("backend '{name}': cannot reach {}: {e}", self.url);
                return undeliverable(&self.hub, self.instance, &msg, why);
            }
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let mut text = String::new();
            let _ = response
                .into_body()
                .into_reader()
                .take(500)
                .read_to_string(&mut text);
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
            return undeliverable(&self.hub, self.instance, &msg, why);
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
            let (why, answered) = read_sse_stream(
                body,
                self.instance,
                name,
                &self.hub,
                self.max_message,
                awaited,
                |_| false,
            );
            debug!("backend '{name}': a POST response stream ended: {why}");
            if !answered {
                let why = format!(
                    "backend '{name}': the response stream from {} ended without an answer: {why}",
                    self.url
                );
                undeliverable(&self.hub, self.instance, &msg, why);
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
                return undeliverable(&self.hub, self.instance, &msg, why);
            }
            if text.len() > self.max_message {
                let why = format!(
                    "backend '{name}' sent an answer over the {}-byte limit (maxMessageSize)",
                    self.max_message
                );
                return undeliverable(&self.hub, self.instance, &msg, why);
            }
            self.note_version(&text);
            if !to_hub(&self.hub, self.instance, name, text.trim(), awaited) {
                let why = format!(
                    "backend '{name}': {} answered without a response to the request",
                    self.url
                );
                undeliverable(&self.hub, self.instance, &msg, why);
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
        let (hub, name, instance) = (self.hub.clone(), self.name.clone(), self.instance);
        let max_message = self.max_message;
        let spawned = spawn(format!("backend-{name}-get"), move || {
            match request.call() {
                Ok(r) if r.status().is_success() => {
                    let (why, _) = read_sse_stream(
                        r.into_body().into_reader(),
                        instance,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_against_the_stream_url() {
        let base = "http://127.0.0.1:8080/sse";
        assert_eq!(
            resolve(base, "/messages?sessionId=1"),
            "http://127.0.0.1:8080/messages?sessionId=1"
        );
        assert_eq!(
            resolve(base, "messages?sessionId=1"),
            "http://127.0.0.1:8080/messages?sessionId=1"
        );
        assert_eq!(resolve("http://h/a/b/sse", "msg"), "http://h/a/b/msg");
        assert_eq!(resolve(base, "https://other/x"), "https://other/x");
    }

    #[test]
    fn host_port_defaults_by_scheme() {
        assert_eq!(
            host_port("http://127.0.0.1:8080/sse").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            host_port("http://localhost/sse").as_deref(),
            Some("localhost:80")
        );
        assert_eq!(
            host_port("https://example.test/mcp").as_deref(),
            Some("example.test:443")
        );
        assert_eq!(host_port("http://[::1]:9/x").as_deref(), Some("[::1]:9"));
        assert_eq!(host_port("http://user:pw@h:5/x").as_deref(), Some("h:5"));
    }
}
