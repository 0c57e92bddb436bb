//! Built-in MCP servers, compiled into the gateway binary.
//!
//! Each runs as its own process (`mcp-gateway builtin NAME`), speaking MCP over stdio, so
//! a hung or crashing command can never stall the gateway. `toolserver.rs` is the shared
//! stdio loop, `command.rs` runs one command safely; `shell.rs` is bash, cmd and
//! PowerShell, `wmi.rs` is query_wmi.
//! Nothing here touches the gateway's routing: to the gateway these are ordinary stdio
//! backends.

mod command;
mod shell;
mod toolserver;
mod wmi;

use command::Settings;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Runs built-in server `name` on stdin/stdout until stdin closes.
pub fn run(name: &str, mut parser: lexopt::Parser) -> ExitCode {
    let mut settings = Settings::default();
    let parsed = (|| -> Result<(), lexopt::Error> {
        use lexopt::prelude::*;
        while let Some(arg) = parser.next()? {
            match arg {
                Long("timeout") => {
                    let secs: u64 = parser.value()?.parse()?;
                    if secs == 0 {
                        return Err("--timeout must be at least 1 second".into());
                    }
                    settings.timeout = Duration::from_secs(secs);
                }
                Long("max-output") => settings.max_output = parser.value()?.parse()?,
                Long("cwd") => settings.cwd = Some(parser.value()?.into()),
                Long("allow") => settings.allow.push(parser.value()?.string()?),
                Long("deny") => settings.deny.push(parser.value()?.string()?),
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(())
    })();
    if let Err(e) = parsed {
        eprintln!("error: builtin {name}: {e}");
        return ExitCode::from(2);
    }
    match name {
        "bash" => toolserver::serve(shell::Shell::bash(settings)),
        "cmd" => toolserver::serve(shell::Shell::cmd(settings)),
        "powershell" => toolserver::serve(shell::Shell::powershell(settings)),
        "wmi" => toolserver::serve(wmi::Wmi::new(settings)),
        other => {
            eprintln!(
                "error: unknown built-in server '{other}' (this build has: {})",
                crate::config::BUILTIN_SERVERS.join(", ")
            );
            ExitCode::from(2)
        }
    }
}

/// A command interpreter: from an environment variable when set (so tests and unusual
/// installs can point elsewhere), else the Windows program on Windows, else a program
/// found on the PATH. Missing, its tools say so; the server still starts.
pub struct Interpreter(Result<String, String>);

impl Interpreter {
    pub fn find(variable: &str, windows: &str, elsewhere: Option<&str>) -> Interpreter {
        if let Some(p) = std::env::var(variable).ok().filter(|p| !p.is_empty()) {
            return Interpreter(Ok(p));
        }
        if cfg!(windows) {
            return Interpreter(Ok(windows.to_string()));
        }
        match elsewhere.filter(|p| on_path(p)) {
            Some(p) => Interpreter(Ok(p.to_string())),
            None => Interpreter(Err(format!(
                "{windows} is not available on this system{} (set {variable} to an interpreter to use)",
                elsewhere
                    .map(|e| format!(" and neither is {e}"))
                    .unwrap_or_default()
            ))),
        }
    }

    pub fn program(&self) -> Result<&str, String> {
        self.0.as_deref().map_err(Clone::clone)
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The definition of a `{command, cwd?, timeout_ms?}` tool.
pub fn command_tool(name: &str, what: &str, settings: &Settings, output: Value) -> Value {
    json!({
        "name": name,
        "description": format!(
            "{what} Commands are killed, with everything they started, after {} s (or timeout_ms); \
             output beyond {} KiB per stream is cut.",
            settings.timeout.as_secs(),
            settings.max_output / 1024
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command line to run"},
                "cwd": {"type": "string", "description": "Directory to run it in"},
                "timeout_ms": {"type": "integer", "minimum": 1, "description": "A shorter time limit for this command, in milliseconds"},
            },
            "required": ["command"],
        },
        "outputSchema": output,
    })
}

/// The command, directory and time limit a call asks for, checked; the error is for the
/// client (a tool error, not a protocol one).
pub fn job_limits(
    args: &Map<String, Value>,
    settings: &Settings,
) -> Result<(String, Option<PathBuf>, Duration), String> {
    let command = match args.get("command") {
        Some(Value::String(c)) if !c.trim().is_empty() => c.clone(),
        Some(Value::String(_)) => return Err("'command' must not be empty".into()),
        Some(_) => return Err("'command' must be a string".into()),
        None => return Err("missing required argument 'command'".into()),
    };
    let cwd = match args.get("cwd") {
        None | Some(Value::Null) => settings.cwd.clone(),
        Some(Value::String(d)) => Some(PathBuf::from(d)),
        Some(_) => return Err("'cwd' must be a string".into()),
    };
    // A call may ask for less time than the backend allows, never more.
    let timeout = match args.get("timeout_ms") {
        None | Some(Value::Null) => settings.timeout,
        Some(v) => match v.as_u64() {
            Some(ms) if ms > 0 => Duration::from_millis(ms).min(settings.timeout),
            _ => {
                return Err(format!(
                    "'timeout_ms' must be a whole number of milliseconds above 0, got {v}"
                ));
            }
        },
    };
    Ok((command, cwd, timeout))
}
