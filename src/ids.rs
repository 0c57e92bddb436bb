//! Random identifiers: secrets, session ids and `requestState`s.

/// 128 random bits as 32 hex digits (tokens, and the secret part of session ids).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A session id: `<instance>.<32 random hex digits>`.
pub fn new_session_id(instance: &str) -> crate::contract::SessionId {
    format!("{instance}.{}", new_secret())
}

/// The last 8 characters of a session id (its random part), for thread names.
pub fn short(session: &str) -> &str {
    &session[session.len().saturating_sub(8)..]
}
