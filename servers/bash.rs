//! The built-in `bash` server: one tool, `bash {command, cwd?, timeout_ms?}`, run with
//! `bash -c` (or `$MCP_GATEWAY_BASH -c`).

use super::command::{Job, Runner, Settings, output_schema};
use super::toolserver::{CallContext, ToolServer, text_result};
use super::{Interpreter, command_tool, job_limits};
use serde_json::{Map, Value};

pub struct Bash {
    settings: Settings,
    runner: Runner,
    bash: Interpreter,
}

impl Bash {
    pub fn new(settings: Settings) -> Bash {
        Bash {
            settings,
            runner: Runner::default(),
            bash: Interpreter::find("MCP_GATEWAY_BASH", "bash", Some("bash")),
        }
    }
}

impl ToolServer for Bash {
    fn name(&self) -> &'static str {
        "mcp-gateway-bash"
    }

    fn tools(&self) -> Vec<Value> {
        vec![command_tool(
            "bash",
            "Run a command with `bash -c` on the gateway's host and return its exit code, stdout and stderr.",
            &self.settings,
            output_schema(),
        )]
    }

    fn call(&self, tool: &str, args: &Map<String, Value>, ctx: &CallContext) -> Option<Value> {
        if tool != "bash" {
            return None;
        }
        Some(match job_limits(args, &self.settings) {
            Err(e) => text_result(e, true, None),
            Ok((command, cwd, timeout)) => {
                match (self.settings.refuse(&command), self.bash.program()) {
                    (Some(why), _) => {
                        eprintln!("bash: refused {command:?}: {why}");
                        text_result(format!("refused: {why}"), true, None)
                    }
                    (None, Err(missing)) => text_result(missing, true, None),
                    (None, Ok(bash)) => self.runner.run(
                        Job {
                            program: bash,
                            args: vec!["-c".into(), command.clone()],
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
