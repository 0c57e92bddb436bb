//! The audit log: one JSON line per tool call, in its own file next to the log
//! (`logs/audit_YYYYMMDD_HHMMSS.jsonl`). The hub hands over finished records; a thread of
//! its own writes them, so a slow disk never holds up routing.

use crossbeam_channel::Sender;
use std::io::Write;
use std::path::Path;

use crate::logging::{Rotating, Rotation};

/// How long the writer rests after a write, gathering the records that come meanwhile.
const BATCH: std::time::Duration = std::time::Duration::from_millis(25);

#[derive(Clone)]
pub struct Audit {
    tx: Sender<Entry>,
    /// Whether records carry the call's arguments (`--audit-arguments`).
    pub arguments: bool,
}

enum Entry {
    /// One record, as the JSON text of its line.
    Record(Vec<u8>),
    /// Everything before this is written; then the sender hears so.
    Flush(Sender<()>),
}

impl Audit {
    /// Starts the writer thread for `path`, rotated as `rotation` says. The file is opened
    /// (appended to) with the first record, so a run without tool calls leaves none; its
    /// directory must be there already (the log's).
    pub fn open(path: &Path, arguments: bool, rotation: Rotation) -> Result<Audit, String> {
        let dir = path.parent().unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "cannot open the audit log '{}': its directory is not there",
                path.display()
            ));
        }
        let path = path.to_path_buf();
        let mut file: Option<Rotating> = None;
        let (tx, rx) = crossbeam_channel::unbounded::<Entry>();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || {
                // What has queued up meanwhile goes out in the same write. After each write
                // the thread rests a moment instead of waiting on the channel, so a busy
                // gateway wakes it a few dozen times a second, not once per call (the
                // profile showed it spinning between records: a tenth of the gateway's CPU).
                while let Ok(first) = rx.recv() {
                    let mut lines = Vec::new();
                    let mut flushed = Vec::new();
                    for entry in std::iter::once(first).chain(rx.try_iter()) {
                        match entry {
                            Entry::Record(record) => {
                                lines.extend_from_slice(&record);
                                lines.push(b'\n');
                            }
                            Entry::Flush(done) => flushed.push(done),
                        }
                    }
                    if !lines.is_empty() && file.is_none() {
                        match Rotating::open(&path, rotation) {
                            Ok(f) => file = Some(f),
                            Err(e) => log::warn!(
                                "audit: cannot open '{}': {e}; these records are lost",
                                path.display()
                            ),
                        }
                    }
                    if let Some(f) = file.as_mut()
                        && let Err(e) = f.write_all(&lines)
                    {
                        log::warn!("audit: cannot write: {e}");
                    }
                    for done in flushed {
                        let _ = done.send(());
                    }
                    std::thread::sleep(BATCH);
                }
            })
            .map_err(|e| format!("cannot start the audit thread: {e}"))?;
        Ok(Audit { tx, arguments })
    }

    /// Hands over one record, the JSON text of its line.
    pub fn record(&self, record: Vec<u8>) {
        let _ = self.tx.send(Entry::Record(record));
    }

    /// Waits (at most `limit`) until every record sent before is written: at shutdown.
    pub fn flush(&self, limit: std::time::Duration) {
        let (done, written) = crossbeam_channel::bounded(1);
        if self.tx.send(Entry::Flush(done)).is_ok() {
            let _ = written.recv_timeout(limit);
        }
    }
}

/// The current time as RFC 3339 (UTC), for records.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The current time, serialized as `now()`'s JSON string without a `String` of its own.
pub struct Now;

impl serde::Serialize for Now {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // RFC 3339 with nanoseconds is at most 35 bytes; written into a stack buffer.
        let mut buf = [0u8; 48];
        let mut rest = &mut buf[..];
        let t = time::OffsetDateTime::now_utc();
        let _ = t.format_into(&mut rest, &time::format_description::well_known::Rfc3339);
        // What the writes took off the front of the buffer is what was written.
        let written = 48 - rest.len();
        s.serialize_str(std::str::from_utf8(&buf[..written]).unwrap_or_default())
    }
}
