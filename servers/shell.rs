//! The built-in shell servers: `bash` (`bash -c`), `cmd` (`cmd.exe /D /S /C`) and
//! `powershell` (`powershell.exe -NoProfile -NonInteractive -Command`, or `pwsh`). Each has
//! one tool, `{command, cwd?, timeout_ms?}`; they differ only in the program and the flags
//! before the command.

use super::command::{Job, Runner, Settings, output_schema};
use super::toolserver::{CallContext, ToolServer, text_result};
use super::{Interpreter, command_tool, job_limits};
use serde_json::{Map, Value};

pub struct Shell {
    server: &'static str,
    tool: &'static str,
    what: &'static str,
    interpreter: Interpreter,
    /// What goes before the command on the interpreter's command line.
    flags: &'static [&'static str],
    settings: Settings,
    runner: Runner,
}

impl Shell {
    pub fn bash(settings: Settings) -> Shell {
        Shell {
            server: "mcp-gateway-bash",
            tool: "bash",
            what: "Run a command with `bash -c` on the gateway's host and return its exit code, stdout and stderr.",
            interpreter: Interpreter::find("MCP_GATEWAY_BASH", "bash", Some("bash")),
            flags: &["-c"],
            settings,
            runner: Runner::default(),
        }
    }

    pub fn cmd(settings: Settings) -> Shell {
        Shell {
            server: "mcp-gateway-cmd",
            tool: "cmd",
            what: "Run a command with the Windows command interpreter (`cmd.exe /D /S /C`) and return its exit code, stdout and stderr.",
            interpreter: Interpreter::find("MCP_GATEWAY_CMD", "cmd.exe", None),
            flags: &["/D", "/S", "/C"],
            settings,
            runner: Runner::default(),
        }
    }

    pub fn powershell(settings: Settings) -> Shell {
        Shell {
            server: "mcp-gateway-powershell",
            tool: "PowerShell",
            what: "Run a PowerShell command (`-NoProfile -NonInteractive -Command`) and return its exit code, stdout and stderr.",
            interpreter: super::wmi::powershell(),
            flags: &super::wmi::PS_FLAGS,
            settings,
            runner: Runner::default(),
        }
    }
}

impl ToolServer for Shell {
    fn name(&self) -> &'static str {
        self.server
    }

    fn tools(&self) -> Vec<Value> {
        vec![command_tool(
            self.tool,
            self.what,
            &self.settings,
            output_schema(),
        )]
    }

    fn call(&self, tool: &str, args: &Map<String, Value>, ctx: &CallContext) -> Option<Value> {
        if tool != self.tool {
            return None;
        }
        let (command, cwd, timeout) = match job_limits(args, &self.settings) {
            Ok(j) => j,
            Err(e) => return Some(text_result(e, true, None)),
        };
        if let Some(why) = self.settings.refuse(&command) {
            eprintln!("{}: refused {command:?}: {why}", self.server);
            return Some(text_result(format!("refused: {why}"), true, None));
        }
        let program = match self.interpreter.program() {
            Ok(p) => p,
            Err(missing) => return Some(text_result(missing, true, None)),
        };
        let mut argv: Vec<String> = self.flags.iter().map(|f| f.to_string()).collect();
        argv.push(command.clone());
        let job = Job {
            program,
            args: argv,
            env: Vec::new(),
            cwd,
            timeout,
            shown: &command,
        };
        Some(self.runner.run(job, &self.settings, ctx))
    }

    fn shutdown(&self) {
        self.runner.kill_all();
    }
}
