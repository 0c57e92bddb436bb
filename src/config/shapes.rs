//! The three shapes a config file comes in, side by side:
//!
//! - the gateway's own (and the original MCP-Gateway's): backends at the top level;
//! - Claude Desktop, Cursor, Cline and most clients: backends under `"mcpServers"`;
//! - VS Code (`.vscode/mcp.json`): backends under `"servers"`, with `"inputs"` beside them.
//!
//! Any of them may have `"gateway"` (the gateway's settings) and `"$schema"`. This picks
//! out the backends, in file order, and what VS Code's `inputs` say of each input.

use super::{OrderedObject, Settings, Validator, kind};
use serde_json::Value;

/// The fields that say an object is one backend's settings, not a map of backends.
const BACKEND_MARKS: &[&str] = &["type", "transport", "command", "url", "server", "args"];

impl Validator<'_> {
    /// Splits the top level into the gateway's settings and the backends' entries.
    pub(super) fn shape(&mut self, mut top: OrderedObject) -> (Settings, Vec<(String, Value)>) {
        let mut settings = Settings::default();
        let holder = if top.get("mcpServers").is_some() {
            Some("mcpServers")
        } else if is_vscode(&top) {
            Some("servers")
        } else {
            None
        };
        // Its own text, parsed again, keeps the backends in file order.
        let nested = holder.and_then(|h| top.text(h)).unwrap_or("{}").to_string();
        // "$schema" points an editor at the JSON Schema (`--print-config-schema`).
        top.0.retain(|(k, _)| k != "$schema");
        if let Some(pos) = top.0.iter().position(|(k, _)| k == "gateway") {
            let (_, value) = top.0.remove(pos);
            settings = self.settings(&value);
        }
        let Some(holder) = holder else {
            return (settings, top.0);
        };
        let mut entries = None;
        for (key, value) in top.0 {
            if key == holder {
                match serde_json::from_str::<OrderedObject>(&nested) {
                    Ok(servers) => entries = Some(servers.0),
                    Err(_) => self.error(format!(
                        "config: '{holder}' must be an object mapping backend names to their settings"
                    )),
                }
            } else if key == "inputs" && holder == "servers" {
                self.inputs(&value);
            } else {
                self.warn(format!("config: unknown top-level field '{key}' (ignored)"));
            }
        }
        (settings, entries.unwrap_or_default())
    }

    /// VS Code's `inputs`: values it prompts for and puts in `${input:ID}`. The gateway
    /// cannot prompt; it keeps the descriptions to say which value a reference wanted.
    fn inputs(&mut self, value: &Value) {
        let Some(items) = value.as_array() else {
            self.error(format!(
                "config: 'inputs' (VS Code's prompted values) must be a list, got {}",
                kind(value)
            ));
            return;
        };
        for (i, item) in items.iter().enumerate() {
            match item.get("id").and_then(Value::as_str) {
                Some(id) => {
                    let description = item
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    self.inputs.push((id.to_string(), description.to_string()));
                }
                None => self.error(format!(
                    "config: 'inputs[{i}]': expected an object with a string 'id', got {item}"
                )),
            }
        }
    }

    /// What to say of `${input:ID}` in a value: the gateway has nobody to ask.
    pub(super) fn input_hint(&self, text: &str) -> String {
        let Some(start) = text.find("${input:") else {
            return String::new();
        };
        let id = text[start + 8..].split('}').next().unwrap_or_default();
        match self.inputs.iter().find(|(known, _)| known == id) {
            Some((_, d)) if !d.is_empty() => format!(" (the input '{id}' is \"{d}\")"),
            _ => String::new(),
        }
    }
}

/// A definition in a few words, to tell two of one name apart: what it runs or reaches.
pub(super) fn brief(value: &Value) -> String {
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    if let Some(command) = text("command") {
        let args: Vec<&str> = value
            .get("args")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let line = std::iter::once(command)
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ");
        format!("command '{}'", crate::lines::clip(&line, 80))
    } else if let Some(url) = text("url") {
        format!("url '{url}'")
    } else if let Some(server) = text("server") {
        format!("built-in '{server}'")
    } else {
        "an entry with neither command, url nor server".into()
    }
}

/// VS Code's shape: `"servers"` holds backends (an object of objects, not itself one
/// backend's settings), usually next to `"inputs"`.
fn is_vscode(top: &OrderedObject) -> bool {
    let Some(Value::Object(servers)) = top.get("servers") else {
        return false;
    };
    top.get("inputs").is_some()
        || (!BACKEND_MARKS.iter().any(|m| servers.contains_key(*m))
            && servers.values().all(Value::is_object))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{errors, ok, types};
    use super::super::{Context, Transport, parse_in};

    #[test]
    fn vscode_servers_and_inputs() {
        let loaded = ok(r#"{
            "inputs": [{"type": "promptString", "id": "key", "description": "API key", "password": true}],
            "servers": {
                "files": {"type": "stdio", "command": "npx", "args": ["-y", "x"], "env": {"H": "${env:HOME}"}},
                "remote": {"type": "http", "url": "https://example.com/mcp"},
                "legacy": {"type": "sse", "url": "http://127.0.0.1:8001/sse"}
            }}"#);
        let b = &loaded.config.backends;
        let names: Vec<&str> = b.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["files", "remote", "legacy"]);
        assert_eq!(types(&loaded), ["stdio", "streamable-http", "sse"]);
        assert!(
            matches!(&b[0].transport, Transport::Stdio(l) if l.env == [("H".to_string(), "/home/u".to_string())])
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        // A prompted value: which backend and field, which input, and what to do instead.
        let errs = errors(
            r#"{"inputs": [{"id": "key", "description": "API key"}],
                "servers": {"s": {"command": "x", "env": {"K": "${input:key}"}}}}"#,
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        for part in [
            "config: backend 's': field 'env.K': '${input:key}' asks VS Code to prompt",
            "'${env:NAME}'",
            "(the input 'key' is \"API key\")",
        ] {
            assert!(errs[0].contains(part), "{part}: {errs:?}");
        }
        let errs = errors(r#"{"inputs": {}, "servers": {"s": {"command": "x"}}}"#);
        assert!(errs[0].contains("'inputs' (VS Code's prompted values) must be a list"));
        // Without inputs: still VS Code's shape when "servers" holds backends...
        assert_eq!(
            ok(r#"{"servers": {"a": {"command": "x"}}}"#)
                .config
                .backends[0]
                .name,
            "a"
        );
        // ...but a backend may still be called "servers".
        let loaded = ok(r#"{"servers": {"command": "x"}}"#);
        assert_eq!(loaded.config.backends[0].name, "servers");
    }

    #[test]
    fn names_keep_their_own_form_when_prefixes_are_off() {
        let text = r#"{"gateway": {"prefix": false},
            "a": {"command": "x"}, "b": {"command": "x", "prefix": "bee"}}"#;
        let prefixes: Vec<String> = ok(text)
            .config
            .backends
            .iter()
            .map(|b| b.prefix.clone())
            .collect();
        assert_eq!(prefixes, ["", "bee"]);
        // --no-prefix does the same for a file that says nothing.
        let loaded = parse_in(
            r#"{"a": {"command": "x"}, "b": {"command": "x", "prefix": "bee", "required": true}}"#,
            &Context {
                lookup: &|_| None,
                exists: &|_| true,
                no_prefix: true,
            },
        )
        .unwrap();
        let b = &loaded.config.backends;
        assert_eq!((b[0].prefix.as_str(), b[1].prefix.as_str()), ("", "bee"));
        assert_eq!((b[0].required, b[1].required), (false, true));
        let errs = errors(r#"{"gateway": {"prefix": "no"}, "a": {"command": "x", "required": 1}}"#);
        assert!(
            errs.iter()
                .any(|e| e.contains("field 'prefix': expected true")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("field 'required': expected true")),
            "{errs:?}"
        );
    }

    #[test]
    fn the_originals_shipped_config_runs_its_scripts_as_built_ins() {
        let text = r#"{"bash": {"type": "stdio", "command": "python", "args": ["servers/bash_server.py"]},
            "cmd": {"type": "stdio", "command": "uv", "args": ["run", "servers/cmd_server.py"]},
            "cmd": {"type": "stdio", "command": "python", "args": ["servers/cmd_server.py"]},
            "mine": {"type": "stdio", "command": "python", "args": ["servers/mine.py"]}}"#;
        let loaded = parse_in(
            text,
            &Context {
                lookup: &|_| None,
                exists: &|_| false,
                no_prefix: false,
            },
        )
        .unwrap();
        assert_eq!(types(&loaded), ["builtin", "builtin", "stdio"]);
        assert_eq!(loaded.notices.len(), 2, "{:?}", loaded.notices);
        assert!(
            loaded.notices[0].contains("backend 'bash': 'servers/bash_server.py' (a script of the original MCP-Gateway) is not here; the built-in 'bash' server takes its place"),
            "{:?}",
            loaded.notices
        );
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    }
}
