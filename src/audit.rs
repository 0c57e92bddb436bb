//! The audit log: one JSON line per tool call, in its own file next to the log
//! (`logs/audit_YYYYMMDD_HHMMSS.jsonl`). The hub hands over finished records; a thread of
//! its own writes them, so a slow disk never holds up routing.

use crossbeam_channel::Sender;
use serde_json::Value;
use std::io::Write;
use std::path::Path;

use crate::logging::{Rotating, Rotation};

#[derive(Clone)]
pub struct Audit {
    tx: Sender<Value>,
    /// Whether records carry the call's arguments (`--audit-arguments`).
    pub arguments: bool,
}

impl Audit {
    /// Opens (appends to) `path`, rotated as `rotation` says, and starts the writer thread.
    pub fn open(path: &Path, arguments: bool, rotation: Rotation) -> Result<Audit, String> {
        let mut file = Rotating::open(path, rotation)
            .map_err(|e| format!("cannot open the audit log '{}': {e}", path.display()))?;
        let (tx, rx) = crossbeam_channel::unbounded::<Value>();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                // What has queued up meanwhile goes out in the same write.
                while let Ok(first) = rx.recv() {
                    let mut lines = String::new();
                    for record in std::iter::once(first).chain(rx.try_iter()) {
                        lines.push_str(&record.to_string());
                        lines.push('\n');
                    }
                    if let Err(e) = file.write_all(lines.as_bytes()) {
                        log::warn!("audit: cannot write: {e}");
                    }
                }
            })
            .map_err(|e| format!("cannot start the audit thread: {e}"))?;
        Ok(Audit { tx, arguments })
    }

    pub fn record(&self, record: Value) {
        let _ = self.tx.send(record);
    }
}

/// The current time as RFC 3339 (UTC), for records.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
