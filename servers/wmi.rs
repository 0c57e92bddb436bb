//! The built-in `wmi` server: tool `query_wmi {wmi_class, properties?, filter?}`, through
//! PowerShell's `Get-CimInstance`.
//!
//! PowerShell is `powershell.exe` on Windows, `pwsh` where it is on the PATH elsewhere, or
//! `$MCP_GATEWAY_POWERSHELL` anywhere (the tests put a stand-in there). `query_wmi` never
//! builds a script from what the client sends: the class and property names must be
//! identifiers, and they and the filter reach a fixed script as environment variables,
//! that is, as data.

use super::Interpreter;
use super::command::{Job, Runner, Settings, output_schema};
use super::toolserver::{CallContext, ToolServer, text_result};
use serde_json::{Map, Value, json};

/// The one script `query_wmi` runs; everything the client chose arrives in `$env:`.
const WMI_SCRIPT: &str = "$ErrorActionPreference = 'Stop'; \
$p = @{ ClassName = $env:MCPGW_WMI_CLASS }; \
if ($env:MCPGW_WMI_FILTER) { $p.Filter = $env:MCPGW_WMI_FILTER }; \
$props = if ($env:MCPGW_WMI_PROPERTIES) { $env:MCPGW_WMI_PROPERTIES -split ',' } else { '*' }; \
Get-CimInstance @p | Select-Object -Property $props | ConvertTo-Json -Depth 3";

/// PowerShell's flags before a command (`-Command` takes the command next).
pub const PS_FLAGS: [&str; 3] = ["-NoProfile", "-NonInteractive", "-Command"];

pub fn powershell() -> Interpreter {
    Interpreter::find("MCP_GATEWAY_POWERSHELL", "powershell.exe", Some("pwsh"))
}

pub struct Wmi {
    settings: Settings,
    runner: Runner,
    ps: Interpreter,
}

impl Wmi {
    pub fn new(settings: Settings) -> Wmi {
        Wmi {
            settings,
            runner: Runner::default(),
            ps: powershell(),
        }
    }
}

/// A WMI class or property name: letters, digits and `_`, not starting with a digit.
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The class, properties and filter of a `query_wmi` call, checked.
fn wmi_query(args: &Map<String, Value>) -> Result<(String, Vec<String>, Option<String>), String> {
    let class =
        match args.get("wmi_class") {
            Some(Value::String(c)) if is_identifier(c) => c.clone(),
            Some(Value::String(c)) => {
                return Err(format!(
                    "'wmi_class' must be a WMI class name (letters, digits and _), got {c:?}"
                ));
            }
            _ => return Err(
                "missing required argument 'wmi_class' (a string such as Win32_OperatingSystem)"
                    .into(),
            ),
        };
    let properties: Vec<String> = match args.get("properties") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| match p.as_str() {
                Some(s) if is_identifier(s) => Ok(s.to_string()),
                _ => Err(format!(
                    "'properties' must be property names (letters, digits and _), got {p}"
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .map(|p| {
                if is_identifier(p) {
                    Ok(p.to_string())
                } else {
                    Err(format!(
                        "'properties' must be property names (letters, digits and _), got {p:?}"
                    ))
                }
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("'properties' must be a list of names, got {other}")),
    };
    let filter = match args.get("filter") {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) if f.trim().is_empty() => None,
        Some(Value::String(f)) => Some(f.clone()),
        Some(other) => {
            return Err(format!(
                "'filter' must be a string (a WQL condition), got {other}"
            ));
        }
    };
    Ok((class, properties, filter))
}

impl ToolServer for Wmi {
    fn name(&self) -> &'static str {
        "mcp-gateway-wmi"
    }

    fn tools(&self) -> Vec<Value> {
        vec![json!({
            "name": "query_wmi",
            "description": "Query Windows Management Instrumentation (Get-CimInstance) for a class, optionally only some properties and a WQL filter; returns JSON.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "wmi_class": {"type": "string", "description": "The class, e.g. Win32_OperatingSystem"},
                    "properties": {"type": "array", "items": {"type": "string"}, "description": "Property names to return (all when omitted)"},
                    "filter": {"type": "string", "description": "A WQL condition, e.g. Name = 'explorer.exe'"},
                },
                "required": ["wmi_class"],
            },
            "outputSchema": output_schema(),
        })]
    }

    fn call(&self, tool: &str, args: &Map<String, Value>, ctx: &CallContext) -> Option<Value> {
        if tool != "query_wmi" {
            return None;
        }
        let (class, properties, filter) = match wmi_query(args) {
            Ok(q) => q,
            Err(e) => return Some(text_result(e, true, None)),
        };
        let ps = match self.ps.program() {
            Ok(ps) => ps,
            Err(missing) => return Some(text_result(missing, true, None)),
        };
        let shown = format!(
            "query_wmi {class} [{}] {}",
            properties.join(","),
            filter.as_deref().unwrap_or("")
        );
        let mut env = vec![
            ("MCPGW_WMI_CLASS".to_string(), class),
            ("MCPGW_WMI_PROPERTIES".to_string(), properties.join(",")),
        ];
        env.push(("MCPGW_WMI_FILTER".to_string(), filter.unwrap_or_default()));
        let mut args: Vec<String> = PS_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(WMI_SCRIPT.to_string());
        let job = Job {
            program: ps,
            args,
            env,
            cwd: self.settings.cwd.clone(),
            timeout: self.settings.timeout,
            shown: &shown,
        };
        Some(self.runner.run(job, &self.settings, ctx))
    }

    fn shutdown(&self) {
        self.runner.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wmi_arguments_are_checked_before_anything_runs() {
        let q = |v: Value| wmi_query(v.as_object().unwrap());
        let (class, props, filter) = q(json!({"wmi_class": "Win32_Process", "properties": ["Name", "ProcessId"], "filter": "Name = 'x'; Remove-Item C:\\\\"})).unwrap();
        assert_eq!((class.as_str(), props.len()), ("Win32_Process", 2));
        assert_eq!(
            filter.as_deref(),
            Some("Name = 'x'; Remove-Item C:\\\\"),
            "a filter is data, kept as it is"
        );
        assert_eq!(
            q(json!({"wmi_class": "Win32_BIOS", "properties": "Name, Version"}))
                .unwrap()
                .1,
            ["Name", "Version"]
        );
        for bad in [
            json!({"wmi_class": "Win32_Process; Remove-Item x"}),
            json!({"wmi_class": "$(evil)"}),
            json!({"wmi_class": "1abc"}),
            json!({"wmi_class": ""}),
            json!({}),
            json!({"wmi_class": "Win32_Process", "properties": ["Name", "x;y"]}),
            json!({"wmi_class": "Win32_Process", "properties": "Name,$(evil)"}),
            json!({"wmi_class": "Win32_Process", "filter": 5}),
        ] {
            assert!(q(bad.clone()).is_err(), "{bad}");
        }
    }
}
