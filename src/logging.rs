//! Where log lines go and how many: the per-run log file and stderr (simplelog), files that
//! rotate by size, and a limit on lines repeated from one source (a backend writing junk
//! once produced 2,600 warnings a second).
//!
//! Owns the logger, the one global; everything else in the gateway only calls `log!`.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines from one source (call site and subject) let through each second; the rest are
/// counted and the count is logged with the next line let through.
const LINES_PER_SECOND: u32 = 20;

/// The levels `--log-level` and `logLevel` take: ours, and the names the original Python
/// gateway documented (`warning`, `critical`), in any case.
pub const LEVELS: &str = "debug, info, warning (or warn), error, critical, off, trace";

/// Every level name `parse_level` takes (for the JSON Schema).
pub const LEVEL_NAMES: [&str; 8] = [
    "off", "critical", "error", "warning", "warn", "info", "debug", "trace",
];

/// A log level: what is let through, and the name the log file carries, as the original
/// gateway named its files (`log_<time>_WARNING.log`, `log_<time>_CRITICAL.log`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLevel {
    pub filter: LevelFilter,
    pub name: &'static str,
}

/// A level by name (see `LEVELS`); the error says what is accepted.
pub fn parse_level(name: &str) -> Result<LogLevel, String> {
    let level = |filter, name| Ok(LogLevel { filter, name });
    match name.trim().to_ascii_lowercase().as_str() {
        "off" => level(LevelFilter::Off, "OFF"),
        // The original's most severe level; ours is error.
        "critical" => level(LevelFilter::Error, "CRITICAL"),
        "error" => level(LevelFilter::Error, "ERROR"),
        "warning" | "warn" => level(LevelFilter::Warn, "WARNING"),
        "info" => level(LevelFilter::Info, "INFO"),
        "debug" => level(LevelFilter::Debug, "DEBUG"),
        "trace" => level(LevelFilter::Trace, "TRACE"),
        _ => Err(format!("expected one of {LEVELS}, got '{name}'")),
    }
}

/// How large a log or audit file may grow, and how many full ones are kept beside it.
#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    pub max_bytes: u64,
    pub keep: usize,
}

/// Logs to stderr and to `DIR/log_YYYYMMDD_HHMMSS_LEVEL.log` (rotated as `rotation` says);
/// returns the file's path.
pub fn start(dir: &Path, level: LogLevel, rotation: Rotation) -> Result<PathBuf, String> {
    use simplelog::{CombinedLogger, ConfigBuilder, SharedLogger, WriteLogger};
    let now = time::OffsetDateTime::now_local().unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]_[hour][minute][second]"
        ))
        .map_err(|e| format!("cannot format the time: {e}"))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the log directory '{}': {e}", dir.display()))?;
    let path = dir.join(format!("log_{stamp}_{}.log", level.name));
    let level = level.filter;
    let file = Rotating::open(&path, rotation)
        .map_err(|e| format!("cannot create the log file '{}': {e}", path.display()))?;
    let mut file_config = ConfigBuilder::new();
    let _ = file_config.set_time_offset_to_local();
    // Console lines are printed on stdout already; the terminal logger skips them.
    let term_config = ConfigBuilder::new()
        .add_filter_ignore_str("console")
        .set_time_level(LevelFilter::Off)
        .build();
    let loggers: Vec<Box<dyn SharedLogger>> = vec![
        // Plain lines on stderr (simplelog's TermLogger would bring a colour library).
        WriteLogger::new(level, term_config, io::stderr()),
        WriteLogger::new(level, file_config.build(), file),
    ];
    let limited = Limited {
        inner: CombinedLogger::new(loggers),
        sources: Mutex::default(),
    };
    log::set_boxed_logger(Box::new(limited)).map_err(|e| format!("cannot start logging: {e}"))?;
    log::set_max_level(level);
    // Once a second: counts of lines held back from sources that have gone quiet.
    std::thread::Builder::new()
        .name("log-limit".into())
        .stack_size(64 * 1024)
        .spawn(|| {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                log::logger().flush();
            }
        })
        .map_err(|e| format!("cannot start the log thread: {e}"))?;
    Ok(path)
}

/// A file that, past `max_bytes`, is renamed to `NAME.1` (and `NAME.1` to `NAME.2`, up to
/// `keep`; the oldest is removed) and started again. Appends: two runs started within one
/// second share a file rather than clobber it.
pub struct Rotating {
    path: PathBuf,
    file: File,
    written: u64,
    rotation: Rotation,
}

impl Rotating {
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Rotating> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Rotating {
            path: path.to_path_buf(),
            file,
            written,
            rotation,
        })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        name.into()
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.rotation.keep == 0 {
            self.file.set_len(0)?;
        } else {
            let _ = std::fs::remove_file(self.numbered(self.rotation.keep));
            for n in (1..self.rotation.keep).rev() {
                let _ = std::fs::rename(self.numbered(n), self.numbered(n + 1));
            }
            std::fs::rename(&self.path, self.numbered(1))?;
            self.file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.written = 0;
        Ok(())
    }
}

impl Write for Rotating {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.rotation.max_bytes {
            // Writing on to the full file beats losing lines; said once per failure.
            if let Err(e) = self.rotate() {
                eprintln!("cannot rotate '{}': {e}", self.path.display());
                self.written = 0;
            }
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The logger: lines at info and above from one source beyond `LINES_PER_SECOND` are
/// counted instead of written. Console lines and debug/trace lines are never limited.
struct Limited<L> {
    inner: L,
    sources: Mutex<HashMap<String, Window>>,
}

/// One source's current second.
struct Window {
    started: Instant,
    lines: u32,
    suppressed: u64,
}

/// `text` with every control character (C0 but tab, DEL, C1) written as an escape
/// (`\n`, `\r`, `\u{1b}`), so that what a client or a backend names (a client's name, a
/// tool, a URI, a stderr line) can neither forge a log line nor reach the operator's
/// terminal as an escape sequence.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() && c != '\t';
    if !text.chars().any(bad) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if bad(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The source of a line: its call site and the start of its text up to the first ':'
/// (which names the backend or session in the gateway's lines), so one noisy backend does
/// not silence another.
fn source(record: &Record, text: &str) -> String {
    let subject = text.split(':').next().unwrap_or("");
    let subject: String = subject.chars().take(60).collect();
    format!(
        "{}:{}:{subject}",
        record.file().unwrap_or(""),
        record.line().unwrap_or(0)
    )
}

impl<L: Log> Limited<L> {
    /// Whether the line may go out, and how many of its source's lines were held back
    /// since the last one that did.
    fn admit(&self, record: &Record, text: &str) -> (bool, u64) {
        if record.level() > Level::Info || record.target() == "console" {
            return (true, 0);
        }
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        // Forget quiet sources now and then, so the table stays small.
        if sources.len() > 1000 {
            sources.retain(|_, w| w.started.elapsed() < Duration::from_secs(1));
        }
        let w = sources.entry(source(record, text)).or_insert(Window {
            started: Instant::now(),
            lines: 0,
            suppressed: 0,
        });
        if w.started.elapsed() >= Duration::from_secs(1) {
            w.started = Instant::now();
            w.lines = 0;
        }
        if w.lines >= LINES_PER_SECOND {
            w.suppressed += 1;
            return (false, 0);
        }
        w.lines += 1;
        (true, std::mem::take(&mut w.suppressed))
    }
}

impl<L: Log> Log for Limited<L> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        let text = record.args().to_string();
        let (admitted, suppressed) = self.admit(record, &text);
        if !admitted {
            return;
        }
        if suppressed > 0 {
            self.inner.log(
                &Record::builder()
                    .args(format_args!(
                        "{suppressed} more line(s) like the next were not logged (over {LINES_PER_SECOND} a second)"
                    ))
                    .level(Level::Warn)
                    .target(record.target())
                    .file(record.file())
                    .line(record.line())
                    .module_path(record.module_path())
                    .build(),
            );
        }
        let clean = escape_controls(&text);
        self.inner.log(
            &Record::builder()
                .args(format_args!("{clean}"))
                .level(record.level())
                .target(record.target())
                .file(record.file())
                .line(record.line())
                .module_path(record.module_path())
                .build(),
        );
    }

    /// Also says how many lines were held back from sources quiet for a second since.
    fn flush(&self) {
        let quiet: Vec<(String, u64)> = {
            let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
            sources
                .iter_mut()
                .filter(|(_, w)| w.suppressed > 0 && w.started.elapsed() >= Duration::from_secs(1))
                .map(|(source, w)| (source.clone(), std::mem::take(&mut w.suppressed)))
                .collect()
        };
        for (source, n) in quiet {
            self.inner.log(
                &Record::builder()
                    .args(format_args!(
                        "{n} line(s) from {source} were not logged (over {LINES_PER_SECOND} a second)"
                    ))
                    .level(Level::Warn)
                    .target("mcp_gateway::logging")
                    .build(),
            );
        }
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Records what reaches it.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl Log for Seen {
        fn enabled(&self, _: &Metadata) -> bool {
            true
        }
        fn log(&self, record: &Record) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }

    fn line(limited: &Limited<Seen>, level: Level, text: &str) {
        limited.log(
            &Record::builder()
                .args(format_args!("{text}"))
                .level(level)
                .target("mcp_gateway::backend")
                .file(Some("src/backend.rs"))
                .line(Some(10))
                .build(),
        );
    }

    /// Moves every source's window a second on.
    fn next_second(limited: &Limited<Seen>) {
        let mut sources = limited.sources.lock().unwrap();
        for w in sources.values_mut() {
            w.started -= Duration::from_secs(2);
        }
    }

    #[test]
    fn a_flood_from_one_source_is_counted_not_written() {
        let seen = Seen::default();
        let limited = Limited {
            inner: seen.clone(),
            sources: Mutex::default(),
        };
        for _ in 0..100 {
            line(&limited, Level::Warn, "backend 'noisy': skipped a line");
        }
        // Another backend and debug lines are not held back by it.
        line(&limited, Level::Warn, "backend 'quiet': skipped a line");
        for _ in 0..30 {
            line(&limited, Level::Debug, "backend 'noisy': < raw");
        }
        let lines = seen.0.lock().unwrap().clone();
        let noisy = lines
            .iter()
            .filter(|l| l.contains("'noisy': skipped"))
            .count();
        assert_eq!(noisy, LINES_PER_SECOND as usize);
        assert!(lines.iter().any(|l| l.contains("'quiet'")));
        assert_eq!(lines.iter().filter(|l| l.contains("< raw")).count(), 30);
        // The next second, the count comes out with the next line.
        next_second(&limited);
        line(&limited, Level::Warn, "backend 'noisy': skipped a line");
        let lines = seen.0.lock().unwrap().clone();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("80 more line(s) like the next")),
            "{lines:?}"
        );
        // A source that goes quiet has its count said by the next flush.
        for _ in 0..25 {
            line(&limited, Level::Warn, "backend 'noisy': skipped a line");
        }
        limited.flush();
        let said = |prefix: &str| seen.0.lock().unwrap().iter().any(|l| l.starts_with(prefix));
        assert!(!said("6 line(s)"), "not while the source is in its second");
        next_second(&limited);
        limited.flush();
        assert!(said(
            "6 line(s) from src/backend.rs:10:backend 'noisy' were not logged"
        ));
    }

    #[test]
    fn control_characters_in_a_line_are_escaped_so_nothing_forges_a_line() {
        let seen = Seen::default();
        let limited = Limited {
            inner: seen.clone(),
            sources: Mutex::default(),
        };
        line(
            &limited,
            Level::Info,
            "session x: initialize from 'evil\n12:00:00 [WARN] FORGED\u{1b}]0;title\u{7}\u{1b}[2J\r\u{9b}'\tok",
        );
        let lines = seen.0.lock().unwrap().clone();
        assert_eq!(
            lines,
            [
                "session x: initialize from 'evil\\n12:00:00 [WARN] FORGED\\u{1b}]0;title\\u{7}\\u{1b}[2J\\r\\u{9b}'\tok"
            ]
        );
        assert_eq!(escape_controls("plain ü"), "plain ü");
    }

    #[test]
    fn levels_by_our_names_and_the_original_gateways() {
        let level = |n| parse_level(n).map(|l| (l.filter, l.name));
        assert_eq!(level("warning"), Ok((LevelFilter::Warn, "WARNING")));
        assert_eq!(level("WARN"), Ok((LevelFilter::Warn, "WARNING")));
        assert_eq!(level("critical"), Ok((LevelFilter::Error, "CRITICAL")));
        assert_eq!(level("error"), Ok((LevelFilter::Error, "ERROR")));
        assert_eq!(level("Debug"), Ok((LevelFilter::Debug, "DEBUG")));
        for name in LEVEL_NAMES {
            assert!(parse_level(name).is_ok(), "{name}");
        }
        let e = parse_level("loud").unwrap_err();
        assert!(e.contains("'loud'") && e.contains(LEVELS), "{e}");
    }

    #[test]
    fn files_rotate_by_size_keeping_so_many() {
        let dir = std::env::temp_dir().join(format!("mcp-gateway-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.log");
        let mut f = Rotating::open(
            &path,
            Rotation {
                max_bytes: 100,
                keep: 2,
            },
        )
        .unwrap();
        for i in 0..10 {
            f.write_all(format!("{i}{}\n", "x".repeat(48)).as_bytes())
                .unwrap();
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        // 50-byte lines, two to a file: the newest in log.log, then .1 and .2; older gone.
        assert!(
            read(path.clone()).starts_with('8'),
            "{}",
            read(path.clone())
        );
        assert!(read(dir.join("log.log.1")).starts_with('6'));
        assert!(read(dir.join("log.log.2")).starts_with('4'));
        assert!(!dir.join("log.log.3").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
