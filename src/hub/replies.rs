//! Replies completed where they arrive. A backend's reader thread that reads the answer to
//! a client's request takes the request's entry out of the shared pending table, restores
//! the client's id and offers the answer to the client's sink itself, instead of handing
//! it to the hub first: one thread hand-off less on every call.
//!
//! What the reader may do alone is narrow, and anything else goes to the hub as before:
//! the entry must be a client request on this instance with nothing to do after the
//! answer (no URI to map back, no subscription to undo), the backend must have no
//! concurrency limit (the hub sends queued requests when a slot frees), and the hub must
//! have handled every message this reader sent it before (so an answer never overtakes a
//! progress or log notification of the same request). Whoever removes an entry answers it:
//! the reader here, or the hub on a deadline, a cancellation or the instance's end.

use super::pending::{After, AuditCall, GatewayId, Pending, PendingTable};
use super::router::Published;
use crate::audit::Audit;
use crate::compat;
use crate::contract::{HubEvent, Inbox, InstanceId, Order, Outbound, Refused, SessionId, Sink};
use crate::jsonrpc::{self, Id, Message, Response};
use crate::metrics::Metrics;
use crossbeam_channel::Sender;
use log::debug;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// What the hub shares with the backends' readers.
pub struct Replies {
    pending: Mutex<PendingTable>,
    /// The next gateway id (also instance ids): taken by the hub and the routers.
    next_id: AtomicU64,
    /// What the routers route by (`router.rs`).
    pub(super) published: Published,
    pub(super) metrics: Arc<Mutex<Metrics>>,
    audit: Option<Audit>,
}

/// A reader's means to complete its instance's replies.
#[derive(Clone)]
pub(super) struct Direct {
    pub(super) replies: Arc<Replies>,
    pub order: Arc<Order>,
    pub(super) instance: InstanceId,
    pub(super) backend: String,
}

/// What became of a reply offered to `Direct::complete`.
pub(super) enum Completed {
    /// Delivered (or its client is gone): nothing more to do.
    Done,
    /// The client's sink refused it: the hub must end that session.
    Refused(SessionId, Refused),
    /// Not one the reader may complete: the hub gets it.
    ToHub(Response),
}

impl Direct {
    /// Completes `resp` here when it is the plain answer to a client's request.
    pub(super) fn complete(&self, resp: Response) -> Completed {
        if !self.order.may_complete() {
            return Completed::ToHub(resp);
        }
        let Some(gid) = GatewayId::of(resp.id.as_ref()) else {
            return Completed::ToHub(resp);
        };
        let entry = {
            let mut table = self.replies.pending();
            match table.get(gid) {
                Some(Pending::Client {
                    instance, after, ..
                }) if *instance == self.instance && after.is_nothing() => table.remove(gid),
                _ => None,
            }
        };
        let Some(Ok((finished, _))) = entry.map(Finished::take) else {
            return Completed::ToHub(resp);
        };
        self.order.heard_now();
        match self
            .replies
            .finish(&self.backend, finished, resp.outcome, true)
        {
            Ok(()) => Completed::Done,
            Err((session, why)) => Completed::Refused(session, why),
        }
    }
}

/// The hub's `Inbox` for one instance: replies its reader may complete go straight to
/// their client (`Direct`), everything else to the hub, counted so that a direct reply
/// never overtakes a message still on its way through the hub.
pub(super) struct ToHub {
    pub(super) hub: Sender<HubEvent>,
    pub(super) instance: InstanceId,
    pub(super) direct: Direct,
}

impl Inbox for ToHub {
    fn message(&self, msg: Message) -> bool {
        let msg = match msg {
            Message::Response(resp) => match self.direct.complete(resp) {
                Completed::Done => return true,
                Completed::Refused(session, why) => {
                    debug!("session {session}: did not take its answer");
                    return self.hub.send(HubEvent::Refused { session, why }).is_ok();
                }
                Completed::ToHub(resp) => Message::Response(resp),
            },
            other => other,
        };
        self.to_hub(msg, None)
    }

    fn message_during(&self, msg: Message, request: &Id) -> bool {
        match msg {
            Message::Request(_) => self.to_hub(msg, Some(request.clone())),
            other => self.message(other),
        }
    }

    fn exited(&self, reason: String) {
        let instance = self.instance;
        let _ = self.hub.send(HubEvent::BackendExited { instance, reason });
    }
}

impl ToHub {
    fn to_hub(&self, msg: Message, during: Option<Id>) -> bool {
        self.direct.order.sending();
        let instance = self.instance;
        self.hub
            .send(HubEvent::FromBackend {
                instance,
                msg,
                during,
            })
            .is_ok()
    }
}

/// A client request taken out of the table, to be answered.
pub(super) struct Finished {
    pub(super) session: SessionId,
    pub(super) id: Id,
    pub(super) method: String,
    pub(super) started: Instant,
    pub(super) audit: Option<Box<AuditCall>>,
    pub(super) sink: Option<Arc<dyn Sink>>,
    pub(super) version: &'static str,
}

impl Finished {
    /// A client request's entry as what answering it needs, and what to do after; any
    /// other entry back (as large as a client request's: see `Pending`).
    #[allow(clippy::result_large_err)]
    pub(super) fn take(entry: Pending) -> Result<(Finished, After), Pending> {
        match entry {
            Pending::Client {
                session,
                id,
                method,
                after,
                started,
                audit,
                sink,
                version,
                ..
            } => Ok((
                Finished {
                    session,
                    id,
                    method,
                    started,
                    audit,
                    sink,
                    version,
                },
                after,
            )),
            other => Err(other),
        }
    }
}

impl Replies {
    pub(super) fn new(audit: Option<Audit>) -> Arc<Replies> {
        Arc::new(Replies {
            pending: Mutex::new(PendingTable::default()),
            next_id: AtomicU64::new(1),
            published: Published::default(),
            metrics: Arc::new(Mutex::new(Metrics::default())),
            audit,
        })
    }

    pub(super) fn alloc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn pending(&self) -> MutexGuard<'_, PendingTable> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn metrics(&self) -> MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn audit(&self) -> Option<&Audit> {
        self.audit.as_ref()
    }

    /// Answers a client's request with `outcome` from `backend`: the metrics, the audit
    /// line, what an older client must not see, and the client's sink (`direct`: by a
    /// backend's reader, counted in the metrics). `Err` names a
    /// session whose sink refused it (full, or closed): the hub ends it.
    pub(super) fn finish(
        &self,
        backend: &str,
        call: Finished,
        mut outcome: Result<Box<RawValue>, jsonrpc::ErrorObject>,
        direct: bool,
    ) -> Result<(), (SessionId, Refused)> {
        let outcome_name = if outcome.is_ok() { "ok" } else { "error" };
        {
            let mut metrics = self.metrics();
            metrics.record(backend, &call.method, outcome_name, call.started.elapsed());
            metrics.direct += u64::from(direct);
            if let Err(e) = &outcome {
                metrics.error(backend, &call.method, &e.message);
            }
        }
        if let (Some(audit), Some(record)) = (&self.audit, &call.audit) {
            let result = match &outcome {
                Ok(r) => Ok(r.as_ref()),
                Err(e) => Err(e.message.as_str()),
            };
            audit.record(audit_record(
                &call.session,
                record,
                backend,
                call.started,
                result,
            ));
        }
        let Some(sink) = &call.sink else {
            return Ok(());
        };
        let version = call.version;
        if let Ok(result) = &mut outcome
            && matches!(call.method.as_str(), "tools/call" | "prompts/get")
            && compat::result_may_need_downgrade(version, result.get())
            && let Ok(mut v) = serde_json::from_str::<Value>(result.get())
        {
            compat::downgrade_result(&call.method, &mut v, version);
            *result = jsonrpc::to_raw(&v);
        }
        let reply = Response {
            id: Some(call.id.clone()),
            outcome,
        };
        let out = Outbound {
            related: Some(call.id),
            msg: Message::Response(reply),
        };
        sink.offer(out).map_err(|why| (call.session, why))
    }
}

/// The audit line of a finished tool call: `result` is the raw result, or the error
/// message. Written straight into one buffer, its keys in order, as a JSON object.
pub(super) fn audit_record(
    session: &str,
    call: &AuditCall,
    backend: &str,
    started: Instant,
    result: Result<&RawValue, &str>,
) -> Vec<u8> {
    #[derive(Deserialize)]
    struct R {
        #[serde(rename = "isError")]
        is_error: Option<bool>,
    }
    let (bytes, is_error, error) = match result {
        Ok(raw) => {
            // Parsed only when it can say something: results can be megabytes.
            let r: Option<R> = raw
                .get()
                .contains("isError")
                .then(|| serde_json::from_str(raw.get()).ok())
                .flatten();
            (
                raw.get().len(),
                r.and_then(|r| r.is_error).unwrap_or(false),
                None,
            )
        }
        Err(e) => (0, true, Some(e)),
    };
    let duration = (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let mut out = Vec::with_capacity(256);
    let mut field = |key: &str, value: &dyn erased::Json| {
        out.push(if out.is_empty() { b'{' } else { b',' });
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        value.write(&mut out);
    };
    if let Some(args) = &call.arguments {
        field("arguments", args);
    }
    field("backend", &backend);
    field("client", &&*call.client);
    field("durationMs", &duration);
    field("error", &error);
    field("isError", &is_error);
    field("original", &&*call.original);
    if let Some(profile) = &call.profile {
        field("profile", &profile.as_str());
    }
    field("resultBytes", &bytes);
    field("session", &session);
    field("time", &crate::audit::Now);
    if let Some(token) = &call.token {
        field("token", &&**token);
    }
    field("tool", &call.tool.as_str());
    out.push(b'}');
    out
}

/// Values written as JSON into a buffer, through one function the record's fields share.
mod erased {
    /// A value that writes itself as JSON.
    pub trait Json {
        fn write(&self, out: &mut Vec<u8>);
    }

    impl<T: serde::Serialize> Json for T {
        fn write(&self, out: &mut Vec<u8>) {
            // Writing to a Vec cannot fail, and these values all serialize.
            let _ = serde_json::to_writer(&mut *out, self);
        }
    }
}
