//! The npm wrapper. A backend started as `npx PKG` (or `npm exec PKG`) is three processes:
//! npm, which finds or installs the package and then only waits; a shell; and the
//! package's own program, which inherits the gateway's pipes and is the server. npm's
//! process holds 90–200 MiB for as long as the server runs and does nothing for it.
//!
//! So once an instance of such a backend is up, the program npm ran is read from /proc
//! (the process of its group that has the same stdin and stdout pipes and starts nothing
//! else that has them) with its arguments, environment and working directory, and the
//! backend's later instances run it directly. `"keepWrapper": true` keeps npm.

use crate::config::{Environment, Launch};
use crate::procfs;
use std::collections::HashMap;
use std::path::Path;

/// Whether `launch` runs a package through npm (`npx ...`, `npm exec ...`, `npm x ...`).
pub fn is_wrapper(launch: &Launch) -> bool {
    let program = Path::new(&launch.command)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    match program {
        "npx" => true,
        "npm" => matches!(launch.args.first().map(String::as_str), Some("exec" | "x")),
        _ => false,
    }
}

/// The program the wrapper that leads process group `leader` runs, as a launch of its
/// own: `None` when it cannot be told (not Linux, more than one candidate, unreadable).
pub fn program_under(launch: &Launch, leader: u32) -> Option<Launch> {
    let pipes = (
        procfs::descriptor(leader, 0)?,
        procfs::descriptor(leader, 1)?,
    );
    if !pipes.0.to_string_lossy().starts_with("pipe:") {
        return None;
    }
    let group: Vec<procfs::Proc> = procfs::processes()
        .into_iter()
        .filter(|p| p.pgrp == leader)
        .collect();
    let parent: HashMap<u32, u32> = group.iter().map(|p| (p.pid, p.ppid)).collect();
    let holds_pipes = |pid: u32| {
        procfs::descriptor(pid, 0).as_ref() == Some(&pipes.0)
            && procfs::descriptor(pid, 1).as_ref() == Some(&pipes.1)
    };
    let holders: Vec<u32> = group
        .iter()
        .map(|p| p.pid)
        .filter(|&pid| pid != leader && holds_pipes(pid))
        .collect();
    // The server is the holder no other holder descends from it: npm's shell holds the
    // pipes too, and hands them down.
    let descends_from = |mut pid: u32, ancestor: u32| {
        while let Some(&up) = parent.get(&pid) {
            if up == ancestor {
                return true;
            }
            pid = up;
        }
        false
    };
    let mut leaves = holders
        .iter()
        .copied()
        .filter(|&h| !holders.iter().any(|&o| o != h && descends_from(o, h)));
    let server = leaves.next()?;
    if leaves.next().is_some() {
        return None;
    }
    let running = procfs::running(server)?;
    let (_, args) = running.argv.split_first()?;
    Some(Launch {
        command: running.exe.to_str()?.to_string(),
        args: args.to_vec(),
        // What npm gave it, over the basic variables; what the backend's entry withholds
        // stays withheld.
        env: running.env,
        cwd: Some(running.cwd.to_str()?.to_string()),
        environment: Environment {
            withheld: launch.environment.withheld.clone(),
            only: Some(Vec::new()),
        },
    })
}

/// Whether what `direct` runs is still there: its program, and its script when its first
/// argument is a path (npm's cache may have been cleaned).
pub fn still_there(direct: &Launch) -> bool {
    let script_there = match direct.args.first().map(Path::new) {
        Some(p) if p.is_absolute() => p.exists(),
        _ => true,
    };
    Path::new(&direct.command).exists() && script_there
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(command: &str, args: &[&str]) -> Launch {
        Launch {
            command: command.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            cwd: None,
            environment: Environment::default(),
        }
    }

    #[test]
    fn npx_and_npm_exec_are_wrappers_other_programs_are_not() {
        assert!(is_wrapper(&launch("npx", &["-y", "@playwright/mcp"])));
        assert!(is_wrapper(&launch("/usr/bin/npx", &["pkg"])));
        assert!(is_wrapper(&launch("npx.cmd", &["pkg"])));
        assert!(is_wrapper(&launch("npm", &["exec", "pkg"])));
        assert!(!is_wrapper(&launch("npm", &["run", "serve"])));
        assert!(!is_wrapper(&launch("node", &["server.js"])));
        assert!(!is_wrapper(&launch("uvx", &["mcp-server-fetch"])));
    }

    #[test]
    fn a_direct_program_whose_script_is_gone_is_not_there() {
        let sh = launch("/bin/sh", &["-c", "true"]);
        assert!(still_there(&sh));
        assert!(!still_there(&launch("/bin/sh", &["/nonexistent/cli.js"])));
        assert!(!still_there(&launch("/nonexistent/node", &[])));
    }
}
