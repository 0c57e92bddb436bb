//! A backend over the legacy HTTP+SSE transport: a reader on the GET stream and a writer
//! that POSTs to the endpoint the stream announces (and, for a server the gateway starts
//! itself, that process, which it waits for to listen).

use super::remote::{CONNECT_TIMEOUT, agent, read_sse_stream, spawn, undeliverable};
use super::{BackendHandle, Hub};
use crate::config::Launch;
use crate::jsonrpc::Message;
use crossbeam_channel::{Receiver, select};
use log::{debug, info, warn};
use std::net::{TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

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

/// Connects to a legacy SSE server (starting it first when `launch` is given): a reader on
/// the GET stream and a writer that POSTs to the endpoint it announces.
pub fn start(
    name: &str,
    url: &str,
    launch: Option<&Launch>,
    startup: Duration,
    hub: Hub,
    max_message: usize,
) -> Result<BackendHandle, String> {
    let child = match launch {
        Some(l) => Some(super::spawn_logged(name, l)?),
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
                hub.exited(reason);
            }
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    Ok(BackendHandle::new(tx, stop_tx, supervisor))
}

/// Runs an SSE connection until it ends (returning why) or the hub stops it (`None`).
#[allow(clippy::too_many_arguments)] // one call site; the pieces are unrelated
fn run_sse(
    name: &str,
    url: &str,
    child: Option<&mut super::LoggedChild>,
    startup: Duration,
    hub: &Hub,
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
            let (why, _) = read_sse_stream(body, &name, &hub, max_message, None, |event| {
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
                        &msg,
                        format!(
                            "backend '{name}': POST {endpoint} answered HTTP {}",
                            r.status().as_u16()
                        ),
                    ),
                    Err(e) => undeliverable(
                        &hub,
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
    child: &mut super::LoggedChild,
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
