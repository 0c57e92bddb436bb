//! The original MCP-Gateway (Python) shipped its shell servers as scripts, and its
//! config.json runs them: `"command": "python", "args": ["servers/bash_server.py"]`.
//! Those scripts are not part of this gateway; the built-in servers do their work. So a
//! stdio entry that runs one of them, where that file does not exist, is served by the
//! matching built-in, and the console says so.

use super::{Launch, Transport};
use std::path::{Path, PathBuf};

/// The original's scripts and the built-in server that does the same work.
const SCRIPTS: &[(&str, &str)] = &[
    ("bash_server.py", "bash"),
    ("cmd_server.py", "cmd"),
    ("powershell_server.py", "powershell"),
    ("wmi_server.py", "wmi"),
];

/// The built-in that stands in for `launch`, its name, and the script argument it
/// replaces: when
/// an argument is `servers/<script>` (or the older `stdio_servers/<script>`) and that file
/// is not there (relative paths from the backend's `cwd`, else the gateway's directory).
pub(super) fn stand_in(
    launch: &Launch,
    exists: &dyn Fn(&Path) -> bool,
) -> Option<(Transport, &'static str, String)> {
    launch.args.iter().find_map(|arg| {
        let path = Path::new(arg);
        let file = path.file_name()?.to_str()?;
        let dir = path.parent()?.file_name()?.to_str()?;
        if !matches!(dir, "servers" | "stdio_servers") {
            return None;
        }
        let (_, server) = SCRIPTS.iter().find(|(script, _)| *script == file)?;
        let full: PathBuf = match &launch.cwd {
            Some(cwd) => Path::new(cwd).join(path),
            None => path.to_path_buf(),
        };
        if exists(&full) {
            return None;
        }
        let builtin = Transport::Builtin {
            server: server.to_string(),
            timeout_secs: None,
            max_output: None,
            cwd: launch.cwd.clone(),
            env: launch.env.clone(),
            allow: Vec::new(),
            deny: Vec::new(),
        };
        Some((builtin, *server, arg.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(command: &str, args: &[&str]) -> Launch {
        Launch {
            command: command.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: vec![("K".into(), "v".into())],
            cwd: None,
            environment: Default::default(),
        }
    }

    #[test]
    fn the_originals_scripts_become_built_ins_only_when_missing() {
        let nowhere = |_: &Path| false;
        for (args, server) in [
            (&["servers/bash_server.py"][..], "bash"),
            (&["run", "servers/cmd_server.py"][..], "cmd"),
            (&["run", "servers/powershell_server.py"][..], "powershell"),
            (&["stdio_servers/wmi_server.py"][..], "wmi"),
        ] {
            let (t, name, arg) = stand_in(&launch("python", args), &nowhere).expect("a stand-in");
            assert!(
                matches!(&t, Transport::Builtin { server: s, env, .. } if s == server && env.len() == 1),
                "{t:?}"
            );
            assert_eq!(name, server);
            assert_eq!(&arg, args.last().unwrap());
        }
        // There after all, or not the original's: left alone.
        let everywhere = |_: &Path| true;
        assert!(stand_in(&launch("python", &["servers/bash_server.py"]), &everywhere).is_none());
        for args in [
            &["bash_server.py"][..],
            &["tools/bash_server.py"],
            &["servers/mine.py"],
        ] {
            assert!(
                stand_in(&launch("python", args), &nowhere).is_none(),
                "{args:?}"
            );
        }
        // A cwd is where a relative script is looked for.
        let mut l = launch("uv", &["run", "servers/bash_server.py"]);
        l.cwd = Some("/opt/gw".into());
        let seen = std::cell::RefCell::new(PathBuf::new());
        stand_in(&l, &|p: &Path| {
            *seen.borrow_mut() = p.to_path_buf();
            false
        });
        assert_eq!(*seen.borrow(), Path::new("/opt/gw/servers/bash_server.py"));
    }
}
