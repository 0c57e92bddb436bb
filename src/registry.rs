//! The registry: which exposed tool name belongs to which backend and original name.
//!
//! Pure data, rebuilt whenever a backend's tool list changes: no I/O, no threads, no
//! channels. Exposed names are `<backend>__<tool>`, restricted to what Claude and OpenAI
//! accept (`^[A-Za-z0-9_-]{1,64}$`); routing always goes through `lookup`, never by
//! splitting a name.

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Longest exposed name: the limit Claude and OpenAI put on tool names.
pub const MAX_NAME: usize = 64;
/// `_` plus 8 hex digits, appended to names that had to be shortened or disambiguated.
const HASH_SUFFIX: usize = 9;

#[derive(Debug, Clone, PartialEq)]
pub struct ToolEntry {
    pub exposed: String,
    pub backend: usize,
    pub original: String,
}

/// One ready backend's tools as it listed them, in its own order.
pub struct BackendTools<'a> {
    pub backend: usize,
    pub name: &'a str,
    pub tools: &'a [Map<String, Value>],
}

pub struct Registry {
    /// Sorted by exposed name.
    entries: Vec<ToolEntry>,
    by_name: HashMap<String, usize>,
    /// The aggregated `tools/list` result, built once per change.
    list_result: Box<RawValue>,
    /// Names that were rewritten or contested, for the console and log.
    pub notes: Vec<String>,
}

impl Registry {
    pub fn empty() -> Registry {
        Registry::build(&[])
    }

    /// Builds the table from the ready backends, given in config order: on a contested
    /// name the earlier backend (then the earlier tool) keeps it.
    pub fn build(backends: &[BackendTools<'_>]) -> Registry {
        let mut taken: HashMap<String, usize> = HashMap::new();
        let mut notes = Vec::new();
        let mut listed: Vec<(ToolEntry, Map<String, Value>)> = Vec::new();
        for b in backends {
            for tool in b.tools {
                let Some(original) = tool.get("name").and_then(Value::as_str) else {
                    notes.push(format!(
                        "backend '{}': a tool without a string 'name' was skipped",
                        b.name
                    ));
                    continue;
                };
                let wanted = exposed_name(b.name, original);
                let mut exposed = wanted.clone();
                if taken.contains_key(&exposed) {
                    exposed = with_hash(&wanted, b.name, original);
                    let mut n = 2;
                    while taken.contains_key(&exposed) {
                        exposed = with_hash(&wanted, b.name, &format!("{original}#{n}"));
                        n += 1;
                    }
                    let holder = &listed[taken[&wanted]].0;
                    notes.push(format!(
                        "tool '{original}' of backend '{}' is exposed as '{exposed}': '{wanted}' is already backend '{}' tool '{}'",
                        b.name,
                        backends_name(backends, holder.backend),
                        holder.original
                    ));
                } else if exposed != format!("{}__{original}", b.name) {
                    notes.push(format!(
                        "tool '{original}' of backend '{}' is exposed as '{exposed}' (names are limited to {MAX_NAME} characters of A-Z a-z 0-9 _ -)",
                        b.name
                    ));
                }
                taken.insert(exposed.clone(), listed.len());
                let mut shown = tool.clone();
                shown.insert("name".into(), Value::String(exposed.clone()));
                listed.push((
                    ToolEntry {
                        exposed,
                        backend: b.backend,
                        original: original.to_string(),
                    },
                    shown,
                ));
            }
        }
        listed.sort_by(|a, b| a.0.exposed.cmp(&b.0.exposed));
        let list_result = crate::jsonrpc::to_raw(&serde_json::json!({
            "tools": listed.iter().map(|(_, t)| t).collect::<Vec<_>>()
        }));
        let entries: Vec<ToolEntry> = listed.into_iter().map(|(e, _)| e).collect();
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.exposed.clone(), i))
            .collect();
        Registry {
            entries,
            by_name,
            list_result,
            notes,
        }
    }

    pub fn lookup(&self, exposed: &str) -> Option<&ToolEntry> {
        self.by_name.get(exposed).map(|&i| &self.entries[i])
    }

    pub fn tools(&self) -> &[ToolEntry] {
        &self.entries
    }

    pub fn list_result(&self) -> &RawValue {
        &self.list_result
    }
}

fn backends_name<'a>(backends: &'a [BackendTools<'_>], index: usize) -> &'a str {
    backends
        .iter()
        .find(|b| b.backend == index)
        .map_or("?", |b| b.name)
}

/// `<backend>__<tool>` with characters outside `[A-Za-z0-9_-]` replaced by `_`, and names
/// over the limit shortened with a hash of the original so they stay unique and stable.
pub fn exposed_name(backend: &str, tool: &str) -> String {
    let mut name = String::with_capacity(backend.len() + 2 + tool.len());
    name.push_str(backend);
    name.push_str("__");
    if tool.is_empty() {
        name.push('_');
    }
    name.extend(tool.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            c
        } else {
            '_'
        }
    }));
    if name.len() > MAX_NAME {
        with_hash(&name, backend, tool)
    } else {
        name
    }
}

/// `name` cut to leave room for `_xxxxxxxx`, the hash of (backend, tool). `name` is ASCII.
fn with_hash(name: &str, backend: &str, tool: &str) -> String {
    let keep = name.len().min(MAX_NAME - HASH_SUFFIX);
    format!("{}_{:08x}", &name[..keep], fnv1a(backend, tool) as u32)
}

fn fnv1a(backend: &str, tool: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in backend.bytes().chain([0]).chain(tool.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Whether a name is one that Claude and OpenAI accept as a tool name.
pub fn is_client_safe(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools(names: &[&str]) -> Vec<Map<String, Value>> {
        names
            .iter()
            .map(|n| {
                json!({"name": n, "description": format!("does {n}"), "inputSchema": {"type": "object"}})
                    .as_object()
                    .unwrap()
                    .clone()
            })
            .collect()
    }

    fn build(spec: &[(&str, &[&str])]) -> Registry {
        let lists: Vec<_> = spec.iter().map(|(_, names)| tools(names)).collect();
        let backends: Vec<_> = spec
            .iter()
            .zip(&lists)
            .enumerate()
            .map(|(i, ((name, _), tools))| BackendTools {
                backend: i,
                name,
                tools,
            })
            .collect();
        Registry::build(&backends)
    }

    fn names(r: &Registry) -> Vec<&str> {
        r.tools().iter().map(|t| t.exposed.as_str()).collect()
    }

    #[test]
    fn tools_are_prefixed_and_sorted() {
        let r = build(&[("fs", &["read_file", "list"]), ("bash", &["bash"])]);
        assert_eq!(names(&r), ["bash__bash", "fs__list", "fs__read_file"]);
        assert!(r.notes.is_empty());
        let t = r.lookup("fs__read_file").unwrap();
        assert_eq!((t.backend, t.original.as_str()), (0, "read_file"));
        assert!(r.lookup("fs__nope").is_none());
        assert!(r.lookup("read_file").is_none());
    }

    #[test]
    fn listed_json_carries_the_exposed_name_and_everything_else() {
        let r = build(&[("fs", &["read_file"])]);
        let v: Value = serde_json::from_str(r.list_result().get()).unwrap();
        assert_eq!(
            v,
            json!({"tools": [{"name": "fs__read_file", "description": "does read_file", "inputSchema": {"type": "object"}}]})
        );
    }

    #[test]
    fn every_exposed_name_routes_back_to_its_origin() {
        let long = "x".repeat(100);
        let spec: &[(&str, &[&str])] = &[
            (
                "a",
                &[
                    "admin.tools.list",
                    "admin_tools_list",
                    "ok",
                    "",
                    "ünïcode tool",
                    &long,
                ],
            ),
            ("b-2", &["ok", "ok", &long]),
        ];
        let r = build(spec);
        assert_eq!(r.tools().len(), 9);
        for (backend, (_, originals)) in spec.iter().enumerate() {
            for original in originals.iter() {
                assert!(
                    r.tools()
                        .iter()
                        .any(|t| t.backend == backend && t.original == *original),
                    "{original} of {backend} lost"
                );
            }
        }
        for t in r.tools() {
            assert!(
                is_client_safe(&t.exposed),
                "{} is not client-safe",
                t.exposed
            );
            assert_eq!(r.lookup(&t.exposed), Some(t));
        }
        let mut unique = names(&r);
        unique.dedup();
        assert_eq!(unique.len(), 9);
    }

    #[test]
    fn earlier_backend_keeps_a_contested_name_and_it_is_reported() {
        // 'a.b' sanitizes to 'a_b', which backend x also has under that exact name.
        let r = build(&[("x", &["a_b", "a.b"])]);
        assert_eq!(r.lookup("x__a_b").unwrap().original, "a_b");
        let other = r.tools().iter().find(|t| t.original == "a.b").unwrap();
        assert!(other.exposed.starts_with("x__a_b_"), "{}", other.exposed);
        assert_eq!(r.notes.len(), 1);
        assert!(
            r.notes[0].contains("already backend 'x' tool 'a_b'"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn names_are_stable_across_rebuilds_and_order_of_readiness() {
        let long = "very_long_tool_name_".repeat(5);
        let first = build(&[("fs", &[&long, "b"])]);
        let second = build(&[("fs", &["b", &long]), ("zz", &["q"])]);
        let find = |r: &Registry| {
            r.tools()
                .iter()
                .find(|t| t.original == long)
                .unwrap()
                .exposed
                .clone()
        };
        assert_eq!(find(&first), find(&second));
        assert_eq!(find(&first).len(), MAX_NAME);
    }

    #[test]
    fn nameless_tools_are_skipped_with_a_note() {
        let odd = vec![
            json!({"description": "no name"})
                .as_object()
                .unwrap()
                .clone(),
        ];
        let r = Registry::build(&[BackendTools {
            backend: 0,
            name: "w",
            tools: &odd,
        }]);
        assert!(r.tools().is_empty());
        assert_eq!(r.notes.len(), 1);
    }
}
