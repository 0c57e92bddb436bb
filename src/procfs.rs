//! The machine's processes as Linux's /proc shows them: what the status page reports of a
//! backend's process tree (`hub/status.rs`), and what the npm wrapper started
//! (`backend/npm.rs`). Elsewhere the table is empty and callers do without.

use std::collections::HashMap;
use std::path::PathBuf;

/// One process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// Its process group: a backend's process leads a group of its own (`tree.rs`).
    pub pgrp: u32,
    pub rss_kib: u64,
    pub cpu_seconds: f64,
}

/// Every process there is (that could be read).
pub fn processes() -> Vec<Proc> {
    #[cfg(not(target_os = "linux"))]
    return Vec::new();
    #[cfg(target_os = "linux")]
    {
        let mut all = Vec::new();
        // SAFETY: sysconf reads constants.
        let (hz, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK) as f64,
                libc::sysconf(libc::_SC_PAGESIZE) as u64 / 1024,
            )
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return all;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some(p) = parse_stat(pid, &stat, hz, page) {
                all.push(p);
            }
        }
        all
    }
}

/// What a tree of processes holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub processes: usize,
    #[serde(rename = "rssKiB")]
    pub rss_kib: u64,
    pub cpu_seconds: f64,
}

impl Usage {
    /// Adds `other`'s processes.
    pub fn add(&mut self, other: Usage) {
        self.processes += other.processes;
        self.rss_kib += other.rss_kib;
        self.cpu_seconds += other.cpu_seconds;
    }
}

/// The process trees on the machine (Linux, from /proc), by the pid of the process at
/// their root: the resident memory (KiB), CPU seconds and number of processes. A backend's
/// process leads a group of its own (`crate::tree`) and a process belongs to a tree when it
/// descends from its root or is in its group: a browser that Playwright starts in a group
/// of its own is still its server's, and a process whose parent exited is still its group's.
pub fn trees() -> HashMap<u32, Usage> {
    let all = processes();
    let parent: HashMap<u32, u32> = all.iter().map(|p| (p.pid, p.ppid)).collect();
    let mut trees: HashMap<u32, Usage> = HashMap::new();
    for p in &all {
        // Every ancestor (and the group leader) is the root of a tree this process is in;
        // only backends' roots are looked up.
        let mut roots = vec![p.pid, p.pgrp];
        let mut at = p.pid;
        while let Some(&up) = parent.get(&at) {
            if up <= 1 || roots.len() > 64 {
                break;
            }
            roots.push(up);
            at = up;
        }
        roots.sort_unstable();
        roots.dedup();
        for root in roots {
            let t = trees.entry(root).or_default();
            t.rss_kib += p.rss_kib;
            t.cpu_seconds += p.cpu_seconds;
            t.processes += 1;
        }
    }
    trees
}

/// A line of /proc/PID/stat: after the command's closing parenthesis come state, ppid,
/// pgrp, ... utime (14), stime (15), ... rss (24), counting from pid as field 1.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(pid: u32, stat: &str, hz: f64, page_kib: u64) -> Option<Proc> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Proc {
        pid,
        ppid: u32::try_from(field(4)?).ok()?,
        pgrp: u32::try_from(field(5)?).ok()?,
        cpu_seconds: (field(14)? + field(15)?) as f64 / hz,
        rss_kib: field(24)? * page_kib,
    })
}

/// What process `pid` runs: its program, arguments, environment and working directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub exe: PathBuf,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// What process `pid` runs, if it can be read (and is text).
pub fn running(pid: u32) -> Option<Running> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let split = |bytes: Vec<u8>| -> Option<Vec<String>> {
        bytes
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8(s.to_vec()).ok())
            .collect()
    };
    let argv = split(std::fs::read(dir.join("cmdline")).ok()?)?;
    let env = split(std::fs::read(dir.join("environ")).ok()?)?
        .into_iter()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    Some(Running {
        exe: std::fs::read_link(dir.join("exe")).ok()?,
        argv,
        env,
        cwd: std::fs::read_link(dir.join("cwd")).ok()?,
    })
}

/// What process `pid`'s file descriptor `fd` is (e.g. `pipe:[1234]`).
pub fn descriptor(pid: u32, fd: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_after_the_last_parenthesis() {
        // A command name may hold spaces and parentheses.
        let line = "42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 1 0 99 1000 25 0";
        let p = parse_stat(42, line, 100.0, 4).unwrap();
        assert_eq!((p.pid, p.ppid, p.pgrp), (42, 7, 42));
        assert_eq!(p.rss_kib, 100);
        assert!((p.cpu_seconds - 2.0).abs() < 1e-9);
        assert_eq!(parse_stat(1, "garbage", 100.0, 4), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_in_the_table_and_readable() {
        let me = std::process::id();
        assert!(processes().iter().any(|p| p.pid == me));
        let r = running(me).unwrap();
        assert!(!r.argv.is_empty());
        assert!(r.exe.is_absolute());
        assert!(descriptor(me, 0).is_some());
    }
}
