//! The 2026-07-28 front end: each stateless request run in a hub session of its own,
//! whatever transport brought it (`/mcp`, `--stdio`). `serve.rs` serves one request (a
//! backend's questions as `input_required`, parked calls, `subscriptions/listen`);
//! `tasks.rs` is the tasks extension over backends' 2025-11-25 tasks. What the revision
//! says, as data, is `crate::modern`.

pub mod serve;
pub mod tasks;

pub use serve::{Ends, Reply, serve};
