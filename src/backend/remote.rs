//! What the HTTP backends share: the HTTP agent and its TLS roots, their threads, and
//! handing what a server sent to the hub (`to_hub`, `read_sse_stream`), answering a
//! request that could not be delivered so nobody waits for it.

use super::Hub;
use crate::jsonrpc::{INTERNAL_ERROR, Id, Message, Response};
use crate::{lines, sse};
use log::{debug, warn};
use std::io::{BufReader, Read};
use std::time::Duration;
use ureq::Agent;

/// Time to connect to a backend; reading has no limit (streams stay open for hours).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JSON body read from a backend.
pub(super) const MAX_BODY: u64 = 64 * 1024 * 1024;
/// Room for a TLS handshake (rustls needs more than 128 KiB in a debug build); only what
/// is touched costs memory.
const THREAD_STACK: usize = 512 * 1024;

pub(super) fn agent() -> Agent {
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
pub(super) fn tls() -> ureq::tls::TlsConfig {
    #[cfg(not(windows))]
    {
        static ROOTS: std::sync::OnceLock<ureq::tls::RootCerts> = std::sync::OnceLock::new();
        let roots = ROOTS.get_or_init(|| {
            let given = std::env::var("SSL_CERT_FILE")
                .ok()
                .filter(|f| !f.is_empty());
            let (path, certs) = load_roots(given.as_deref());
            match &path {
                Some(p) => log::info!("HTTPS backends: {} CA certificate(s) from {p}", certs.len()),
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

/// Starts one of an HTTP backend's threads.
pub(super) fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<(), String> {
    super::spawn_sized(name, THREAD_STACK, f)
}

/// Hands a backend's message to the hub; says whether it was the answer to `awaited`. A
/// request that came on the stream of `awaited`'s answer belongs to that call.
pub(super) fn to_hub(hub: &Hub, name: &str, text: &str, awaited: Option<&Id>) -> bool {
    match Message::parse(text) {
        Ok(msg) => {
            debug!("< {name}: {text}");
            let answers = matches!((&msg, awaited), (Message::Response(r), Some(id)) if r.id.as_ref() == Some(id));
            match (awaited, &msg) {
                (Some(id), Message::Request(_)) => hub.message_during(msg, id),
                _ => hub.message(msg),
            };
            answers
        }
        Err(e) => {
            warn!(
                "backend '{name}': skipped a message that is not JSON-RPC ({e}): {}",
                lines::clip(text, 200)
            );
            false
        }
    }
}

/// Answers a request that could not be delivered, so nobody waits for it.
pub(super) fn undeliverable(hub: &Hub, msg: &Message, why: String) {
    if let Message::Request(r) = msg {
        let reply = Response::error(Some(r.id.clone()), INTERNAL_ERROR, why);
        hub.message(Message::Response(reply));
    } else {
        debug!("{why}");
    }
}

/// Reads SSE events from `body`, giving each to `special` first (which returns true when it
/// took the event) and the `message` events to the hub. Returns why the stream ended, and
/// whether the answer to `awaited` came.
pub(super) fn read_sse_stream(
    body: impl Read,
    name: &str,
    hub: &Hub,
    limit: usize,
    awaited: Option<&Id>,
    mut special: impl FnMut(&sse::Event) -> bool,
) -> (String, bool) {
    let mut answered = false;
    let mut reader = BufReader::with_capacity(64 * 1024, body);
    let mut parser = sse::Parser::default();
    let mut line = Vec::new();
    loop {
        match lines::read_line_limited(&mut reader, &mut line, limit) {
            Ok(lines::Line::End) => return ("the stream ended".into(), answered),
            Ok(lines::Line::Text) => {}
            Ok(lines::Line::TooLong(size)) => {
                answered |= awaited.is_some();
                if let Some(reply) = lines::oversized(name, &line, size, limit) {
                    hub.message(Message::Response(reply));
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
            answered |= to_hub(hub, name, &event.data, awaited);
        }
    }
}

// ---- Streamable HTTP --------------------------------------------------------------
