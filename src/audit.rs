//! The audit log: one JSON line per tool call, in its own file next to the log
//! (`logs/audit_YYYYMMDD_HHMMSS.jsonl`). The hub hands over finished records; a thread of
//! its own writes them, so a slow disk never holds up routing.

use crossbeam_channel::Sender;
use serde_json::Value;
use std::io::Write;
use std::path::Path;

#[derive(Clone)]
pub struct Audit {
    tx: Sender<Value>,
    /// Whether records carry the call's arguments (`--audit-arguments`).
    pub arguments: bool,
}

impl Audit {
    /// Opens (appends to) `path` and starts the writer thread.
    pub fn open(path: &Path, arguments: bool) -> Result<Audit, String> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("cannot open the audit log '{}': {e}", path.display()))?;
        let (tx, rx) = crossbeam_channel::unbounded::<Value>();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                for record in rx {
                    let mut line = record.to_string();
                    line.push('\n');
                    if let Err(e) = file.write_all(line.as_bytes()).and_then(|_| file.flush()) {
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
