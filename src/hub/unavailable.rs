//! Why a request cannot reach its backend now, as a type: the hub branches on it (a start
//! failure a retry will not fix fails the backend for good), and a client gets its
//! JSON-RPC error (code, message and data) from one place.

use super::demand;
use crate::jsonrpc::{self, ErrorObject, INTERNAL_ERROR};
use std::time::Duration;

/// Why backend `backend` cannot take a request.
#[derive(Debug)]
pub(super) enum Unavailable {
    /// A reload took it out of the config.
    Removed { backend: String },
    /// It failed (for good, or until a retry): why.
    Failed { backend: String, reason: String },
    /// It is between restarts: why it stopped, and when it is tried again.
    Restarting {
        backend: String,
        reason: String,
        next: Duration,
    },
    /// No instance of it runs.
    NotRunning { backend: String },
    /// Its process or connection could not be started; `permanent` when trying again
    /// will not help (the program is not there, the package does not exist).
    CannotStart {
        backend: String,
        reason: String,
        permanent: bool,
    },
}

impl Unavailable {
    /// A start that failed with `reason` (what the spawner said).
    pub(super) fn cannot_start(backend: &str, reason: String) -> Unavailable {
        Unavailable::CannotStart {
            backend: backend.to_string(),
            permanent: demand::is_permanent(&reason),
            reason,
        }
    }

    /// What the backend's state and log say: the reason, without the backend's name.
    pub(super) fn into_reason(self) -> String {
        match self {
            Unavailable::Failed { reason, .. }
            | Unavailable::Restarting { reason, .. }
            | Unavailable::CannotStart { reason, .. } => reason,
            Unavailable::Removed { .. } => "removed from the config".into(),
            Unavailable::NotRunning { .. } => "not running".into(),
        }
    }

    /// The state a client's error names (`error.data.state`).
    fn state(&self) -> &'static str {
        match self {
            Unavailable::Removed { .. } => "removed",
            Unavailable::Failed { .. } => "failed",
            Unavailable::Restarting { .. } => "restarting",
            Unavailable::NotRunning { .. } => "stopped",
            Unavailable::CannotStart { .. } => "cannot start",
        }
    }

    fn backend(&self) -> &str {
        match self {
            Unavailable::Removed { backend }
            | Unavailable::Failed { backend, .. }
            | Unavailable::Restarting { backend, .. }
            | Unavailable::NotRunning { backend }
            | Unavailable::CannotStart { backend, .. } => backend,
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.backend();
        match self {
            Unavailable::Removed { .. } => {
                write!(f, "backend '{name}' was removed from the config")
            }
            Unavailable::Failed { reason, .. } => {
                write!(f, "backend '{name}' is not available: {reason}")
            }
            Unavailable::Restarting { reason, next, .. } => write!(
                f,
                "backend '{name}' is restarting ({reason}); next attempt in {:.0} s",
                next.as_secs_f64()
            ),
            Unavailable::NotRunning { .. } => write!(f, "backend '{name}' is not running"),
            Unavailable::CannotStart { reason, .. } => {
                write!(f, "backend '{name}' could not be started: {reason}")
            }
        }
    }
}

/// The client's error: -32603 (the backend, not the request, is at fault), the message
/// above, and `data` a client can act on: the backend, its state, and for a restart the
/// seconds until the next attempt.
impl From<Unavailable> for ErrorObject {
    fn from(u: Unavailable) -> ErrorObject {
        let mut data = serde_json::json!({"backend": u.backend(), "state": u.state()});
        if let Unavailable::Restarting { next, .. } = &u {
            data["retryAfterSeconds"] = next.as_secs().into();
        }
        let mut e = ErrorObject::new(INTERNAL_ERROR, u.to_string());
        e.data = Some(jsonrpc::to_raw(&data));
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_the_code_the_message_and_the_state() {
        let e = ErrorObject::from(Unavailable::Restarting {
            backend: "fs".into(),
            reason: "exited (exit status: 1)".into(),
            next: Duration::from_secs(4),
        });
        assert_eq!(e.code, INTERNAL_ERROR);
        assert_eq!(
            e.message,
            "backend 'fs' is restarting (exited (exit status: 1)); next attempt in 4 s"
        );
        let data: serde_json::Value = serde_json::from_str(e.data.unwrap().get()).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"backend": "fs", "state": "restarting", "retryAfterSeconds": 4})
        );
    }

    #[test]
    fn a_start_that_cannot_succeed_is_told_from_one_that_may() {
        let gone =
            Unavailable::cannot_start("x", "cannot start 'nope' (not found on the PATH)".into());
        assert!(matches!(
            gone,
            Unavailable::CannotStart {
                permanent: true,
                ..
            }
        ));
        let busy = Unavailable::cannot_start("x", "connection refused".into());
        assert!(matches!(
            busy,
            Unavailable::CannotStart {
                permanent: false,
                ..
            }
        ));
        assert_eq!(busy.into_reason(), "connection refused");
    }
}
