//! The hub's requests in flight: what each gateway id stands for and what its answer needs.

use super::*;

/// What the audit log needs to know of a tool call.
pub(super) struct AuditCall {
    pub(super) tool: String,
    pub(super) original: String,
    pub(super) arguments: Option<Value>,
}

/// What to do with a routed request's answer besides passing it on.
pub(super) enum After {
    Nothing,
    /// A `resources/read` whose URI was rewritten: put the exposed URI back in the result.
    MapUri {
        original: String,
        exposed: String,
    },
    /// A `resources/subscribe`: on error, forget the subscription.
    Subscribed {
        uri: String,
    },
}

pub(super) enum Pending {
    /// A client's request, routed to a backend.
    Client {
        session: SessionId,
        id: Id,
        instance: InstanceId,
        method: String,
        /// The client's own progress token; the backend got the gateway id instead.
        progress: Option<Value>,
        after: After,
        /// When the client gets a timeout error instead; progress moves it on, up to
        /// `limit`.
        deadline: Instant,
        limit: Instant,
        timeout: Duration,
        /// What it asked for, for the timeout message (`tools/call 'x'`).
        what: String,
        started: Instant,
        audit: Option<Box<AuditCall>>,
    },
    /// A backend's request to a client (sampling, elicitation, roots), sent on to `session`.
    ServerRequest {
        session: SessionId,
        instance: InstanceId,
        backend_id: Id,
    },
    Initialize {
        instance: InstanceId,
    },
    List {
        instance: InstanceId,
        kind: Kind,
    },
    /// The gateway's own request whose answer only gets logged (setLevel, unsubscribe).
    Ignore {
        instance: InstanceId,
    },
    /// A health check.
    Ping {
        instance: InstanceId,
    },
}

impl Pending {
    pub(super) fn instance(&self) -> InstanceId {
        match self {
            Pending::Client { instance, .. }
            | Pending::ServerRequest { instance, .. }
            | Pending::Initialize { instance }
            | Pending::List { instance, .. }
            | Pending::Ignore { instance }
            | Pending::Ping { instance } => *instance,
        }
    }
}
