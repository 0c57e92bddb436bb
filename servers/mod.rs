//! Built-in MCP servers, compiled into the gateway binary.
//!
//! Each runs as its own process (`mcp-gateway builtin NAME`), speaking MCP over stdio, so
//! a hung or crashing command can never stall the gateway. `toolserver.rs` is the shared
//! stdio loop; each server supplies only its tools. Nothing here touches the gateway's
//! routing: to the gateway these are ordinary stdio backends.

mod bash;
mod toolserver;

use std::process::ExitCode;
use std::time::Duration;

/// Runs built-in server `name` on stdin/stdout until stdin closes.
pub fn run(name: &str, mut parser: lexopt::Parser) -> ExitCode {
    let mut timeout = Duration::from_secs(60);
    let parsed = (|| -> Result<(), lexopt::Error> {
        use lexopt::prelude::*;
        while let Some(arg) = parser.next()? {
            match arg {
                Long("timeout") => {
                    let secs: u64 = parser.value()?.parse()?;
                    if secs == 0 {
                        return Err("--timeout must be at least 1 second".into());
                    }
                    timeout = Duration::from_secs(secs);
                }
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
        "bash" => toolserver::serve(bash::Bash::new(timeout)),
        other => {
            eprintln!(
                "error: unknown built-in server '{other}' (this build has: {})",
                crate::config::BUILTIN_SERVERS.join(", ")
            );
            ExitCode::from(2)
        }
    }
}
