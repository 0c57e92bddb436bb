//! The built-in `cmd` server: one tool, `cmd {command, cwd?, timeout_ms?}`, run with
//! `cmd.exe /D /S /C` on Windows (or `$MCP_GATEWAY_CMD` anywhere, which the tests use to
//! put a stand-in in its place on Linux).

use super::command::{Job, Runner, Settings, output_schema};
use super::toolserver::{CallContext, ToolServer, text_result};
use super::{Interpreter, command_tool, job_limits};
use serde_json::{Map, Value};

pub struct Cmd {
    settings: Settings,
    runner: Runner,
    cmd: Interpreter,
}

impl Cmd {
    pub fn new(settings: Settings) -> Cmd {
        Cmd {
            settings,
            runner: Runner::default(),
            cmd: Interpreter::find("MCP_GATEWAY_CMD", "cmd.exe", None),
        }
    }
}

impl ToolServer for Cmd {
    fn name(&self) -> &'static str {
        "mcp-gateway-cmd"
    }

    fn tools(&self) -> Vec<Value> {
        vec![command_tool(
            "cmd",
            "Run a command with the Windows command interpreter (`cmd.exe /D /S /C`) and return its exit code, stdout and stderr.",
            &self.settings,
            output_schema(),
        )]
    }

    fn call(&self, tool: &str, args: &Map<String, Value>, ctx: &CallContext) -> Option<Value> {
        if tool != "cmd" {
            return None;
        }
        Some(match job_limits(args, &self.settings) {
            Err(e) => text_result(e, true, None),
            Ok((command, cwd, timeout)) => {
                match (self.settings.refuse(&command), self.cmd.program()) {
                    (Some(why), _) => {
                        eprintln!("cmd: refused {command:?}: {why}");
                        text_result(format!("refused: {why}"), true, None)
                    }
                    (None, Err(missing)) => text_result(missing, true, None),
                    (None, Ok(cmd)) => self.runner.run(
                        Job {
                            program: cmd,
                            args: vec!["/D".into(), "/S".into(), "/C".into(), command.clone()],
                            env: Vec::new(),
                            cwd,
                            timeout,
                            shown: &command,
                        },
                        &self.settings,
                        ctx,
                    ),
                }
            }
        })
    }

    fn shutdown(&self) {
        self.runner.kill_all();
    }
}
