//! Catalogue mode (a profile's `"catalogue": true`): its sessions list three tools instead
//! of the profile's N, so a client that takes only 40 tools reaches all 400.
//!
//! - `search_tools`: the profile's tools whose name, title or description hold the query's
//!   words, best first (a word in the name counts most, then the title, then the
//!   description), `limit` a page (10 unless asked, at most 50) with a `nextCursor`.
//! - `describe_tool`: one tool's whole definition, input schema included.
//! - `call_tool`: calls one by name with its `arguments`; the call is routed as any other,
//!   and its result or error is the backend's own.
//!
//! Search and describe are answered here, from the profile's view; prompts and resources
//! are as the profile shows them. A tool of the profile called by its own name still works.

use super::{Hub, Params, State};
use crate::jsonrpc::{self, ErrorObject, INVALID_PARAMS};
use crate::registry::Kind;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

pub(super) const SEARCH: &str = "search_tools";
pub(super) const DESCRIBE: &str = "describe_tool";
pub(super) const CALL: &str = "call_tool";
/// A search's page unless `limit` says otherwise, and the most one may ask for.
const PAGE: usize = 10;
const MAX_PAGE: usize = 50;

/// The three tools a catalogue profile's sessions list.
pub(super) fn tools() -> Vec<Box<RawValue>> {
    let tools = [
        json!({
            "name": SEARCH,
            "title": "Search the tools",
            "description": "Finds tools of this gateway by words in their names, titles and descriptions, best match first. Use describe_tool to see one's arguments and call_tool to run it.",
            "inputSchema": {"type": "object", "properties": {
                "query": {"type": "string", "description": "Words to look for; empty lists every tool."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "description": "Tools a page (default 10)."},
                "cursor": {"type": "string", "description": "The nextCursor of the previous page."}
            }},
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        }),
        json!({
            "name": DESCRIBE,
            "title": "Describe a tool",
            "description": "Returns one tool's whole definition: its description and the JSON Schema of its arguments.",
            "inputSchema": {"type": "object", "properties": {
                "name": {"type": "string", "description": "The tool's name, as search_tools gives it."}
            }, "required": ["name"]},
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        }),
        json!({
            "name": CALL,
            "title": "Call a tool",
            "description": "Calls one tool by name with its arguments and returns its result.",
            "inputSchema": {"type": "object", "properties": {
                "name": {"type": "string", "description": "The tool's name, as search_tools gives it."},
                "arguments": {"type": "object", "description": "Its arguments, as describe_tool's inputSchema says."}
            }, "required": ["name"]}
        }),
    ];
    tools.iter().map(jsonrpc::to_raw).collect()
}

/// A tool result of `text` (and `structured`), or a tool error.
fn result(text: String, structured: Option<Value>, error: bool) -> Box<RawValue> {
    let mut r = json!({"content": [{"type": "text", "text": text}]});
    if let Some(s) = structured {
        r["structuredContent"] = s;
    }
    if error {
        r["isError"] = Value::Bool(true);
    }
    jsonrpc::to_raw(&r)
}

/// How well `tool` matches the query's `words` (0: not at all).
fn score(tool: &Value, words: &[String]) -> usize {
    let field = |k: &str| tool[k].as_str().unwrap_or_default().to_lowercase();
    let (name, title, description) = (field("name"), field("title"), field("description"));
    words
        .iter()
        .map(|w| {
            let mut s = 0;
            if name.contains(w.as_str()) {
                s += 6;
            }
            if title.contains(w.as_str()) {
                s += 3;
            }
            if description.contains(w.as_str()) {
                s += 1;
            }
            s
        })
        .sum()
}

impl Hub {
    /// The profile of a session in catalogue mode.
    pub(super) fn catalogue_of(&self, session: &str) -> Option<usize> {
        self.profile_of(session)
            .filter(|&p| self.opts.profiles[p].catalogue)
    }

    /// `search_tools` and `describe_tool`, answered from profile `p`'s tools.
    pub(super) fn catalogue_answer(&self, p: usize, tool: &str, params: &Params) -> Box<RawValue> {
        let args: Map<String, Value> = params
            .get("arguments")
            .and_then(|a| serde_json::from_str(a.get()).ok())
            .unwrap_or_default();
        let tools: Vec<Value> = self
            .profile_tools(p)
            .iter()
            .filter_map(|t| serde_json::from_str(t.get()).ok())
            .collect();
        if tool == DESCRIBE {
            let name = args.get("name").and_then(Value::as_str).unwrap_or_default();
            return match tools.into_iter().find(|t| t["name"] == name) {
                Some(t) => result(
                    serde_json::to_string_pretty(&t).unwrap_or_default(),
                    Some(t),
                    false,
                ),
                None => result(
                    format!("no tool is named '{name}' here: search_tools finds the names"),
                    None,
                    true,
                ),
            };
        }
        let query = args
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let words: Vec<String> = query
            .split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        let limit = args
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(PAGE, |l| (l as usize).clamp(1, MAX_PAGE));
        let start = match args.get("cursor") {
            None | Some(Value::Null) => 0,
            Some(c) => match c.as_str().and_then(|c| c.parse::<usize>().ok()) {
                Some(n) => n,
                None => {
                    return result(
                        format!("invalid cursor {c}: pass the nextCursor of the previous page"),
                        None,
                        true,
                    );
                }
            },
        };
        let mut ranked: Vec<(usize, &Value)> = tools
            .iter()
            .map(|t| {
                (
                    if words.is_empty() {
                        1
                    } else {
                        score(t, &words)
                    },
                    t,
                )
            })
            .filter(|(s, _)| *s > 0)
            .collect();
        ranked.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| a.1["name"].as_str().cmp(&b.1["name"].as_str()))
        });
        let total = ranked.len();
        let page: Vec<Value> = ranked
            .iter()
            .skip(start)
            .take(limit)
            .map(|(_, t)| {
                let mut brief = json!({"name": t["name"], "description": t["description"]});
                if let Some(title) = t.get("title") {
                    brief["title"] = title.clone();
                }
                brief
            })
            .collect();
        let mut text = format!(
            "{total} of {} tools match '{query}'; {} from {}:",
            tools.len(),
            page.len(),
            start + usize::from(!page.is_empty())
        );
        for t in &page {
            text.push_str(&format!(
                "\n- {}: {}",
                t["name"].as_str().unwrap_or_default(),
                t["description"].as_str().unwrap_or_default()
            ));
        }
        let mut structured = json!({"tools": page, "total": total});
        if start + limit < total {
            structured["nextCursor"] = Value::from((start + limit).to_string());
            text.push_str(&format!("\n(more: cursor \"{}\")", start + limit));
        }
        // Backends of this view that have not listed their tools yet: a search now cannot
        // find what they have.
        let starting: Vec<&str> = self
            .live()
            .into_iter()
            .filter(|b| b.state == State::Starting && b.lists.get(Kind::Tools).is_empty())
            .filter(|b| self.opts.profiles[p].shows_backend(&b.spec))
            .map(|b| b.spec.name.as_str())
            .collect();
        if !starting.is_empty() {
            text.push_str(&format!(
                "\n(still starting, their tools not searchable yet: {}; search again shortly)",
                starting.join(", ")
            ));
            structured["starting"] = json!(starting);
        }
        result(text, Some(structured), false)
    }

    /// A `call_tool`'s params as the call of the tool it names.
    pub(super) fn catalogue_call(params: &mut Params) -> Result<String, ErrorObject> {
        let args: Map<String, Value> = params
            .get("arguments")
            .and_then(|a| serde_json::from_str(a.get()).ok())
            .unwrap_or_default();
        let name = args
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ErrorObject::new(
                    INVALID_PARAMS,
                    format!("{CALL}: 'arguments.name' must name a tool (search_tools finds them)"),
                )
            })?
            .to_string();
        let inner = args.get("arguments").cloned().unwrap_or_else(|| json!({}));
        params.insert("name".into(), jsonrpc::to_raw(&name));
        params.insert("arguments".into(), jsonrpc::to_raw(&inner));
        Ok(name)
    }
}
