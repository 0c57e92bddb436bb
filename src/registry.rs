//! The registry: which exposed name or URI belongs to which backend, for tools, prompts,
//! resources and resource templates.
//!
//! Pure data, rebuilt whenever a backend's lists change: no I/O, no threads, no channels.
//! Tools and prompts are exposed as `<backend>__<name>`, restricted to what Claude and
//! OpenAI accept (`^[A-Za-z0-9_-]{1,64}$`). Resource URIs and templates stay as they are
//! unless two backends expose the same one; then the later backend's is rewritten as
//! `mcp-gateway://<backend>/<original>` (`parse_rewritten_uri` is its inverse). Routing
//! always goes through the tables here, never by splitting a name.

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Longest exposed name: the limit Claude and OpenAI put on tool names.
pub const MAX_NAME: usize = 64;
/// `_` plus 8 hex digits, appended to names that had to be shortened or disambiguated.
const HASH_SUFFIX: usize = 9;
/// Scheme of rewritten resource URIs.
pub const URI_PREFIX: &str = "mcp-gateway://";

/// The four lists a backend can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Tools, Kind::Prompts, Kind::Resources, Kind::Templates];

    pub fn list_method(self) -> &'static str {
        match self {
            Kind::Tools => "tools/list",
            Kind::Prompts => "prompts/list",
            Kind::Resources => "resources/list",
            Kind::Templates => "resources/templates/list",
        }
    }

    /// The field of the list result that holds the items.
    pub fn field(self) -> &'static str {
        match self {
            Kind::Tools => "tools",
            Kind::Prompts => "prompts",
            Kind::Resources => "resources",
            Kind::Templates => "resourceTemplates",
        }
    }

    /// The item field that identifies it.
    fn key(self) -> &'static str {
        match self {
            Kind::Tools | Kind::Prompts => "name",
            Kind::Resources => "uri",
            Kind::Templates => "uriTemplate",
        }
    }

    /// The notification that says this list changed (templates share the resources one).
    pub fn changed_notification(self) -> &'static str {
        match self {
            Kind::Tools => "notifications/tools/list_changed",
            Kind::Prompts => "notifications/prompts/list_changed",
            Kind::Resources | Kind::Templates => "notifications/resources/list_changed",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One backend's lists as it gave them, in its own order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lists {
    pub items: [Vec<Map<String, Value>>; 4],
}

impl Lists {
    pub fn get(&self, kind: Kind) -> &[Map<String, Value>] {
        &self.items[kind.index()]
    }
}

/// A backend's place in the hub's table of backends (its config position at first load;
/// never reused for another name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendIx(pub usize);

pub struct BackendLists<'a> {
    pub backend: BackendIx,
    pub name: &'a str,
    /// What tool and prompt names start with: the name unless configured (`""` for none).
    pub prefix: &'a str,
    pub lists: &'a Lists,
    /// Which tools are shown, with which descriptions.
    pub view: &'a crate::config::View,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub exposed: String,
    pub backend: BackendIx,
    pub original: String,
}

/// One kind's exposed items, sorted by exposed key.
pub struct Catalog {
    entries: Vec<Entry>,
    by_exposed: HashMap<String, usize>,
    /// Each item as served (with its exposed name or URI), in the same order as `entries`.
    items: Vec<Box<RawValue>>,
}

impl Catalog {
    pub fn lookup(&self, exposed: &str) -> Option<&Entry> {
        self.by_exposed.get(exposed).map(|&i| &self.entries[i])
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn items(&self) -> &[Box<RawValue>] {
        &self.items
    }

    /// The exposed key of `(backend, original)`, if it is listed.
    fn exposed_of(&self, backend: BackendIx, original: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.backend == backend && e.original == original)
            .map(|e| e.exposed.as_str())
    }
}

pub struct Registry {
    catalogs: [Catalog; 4],
    /// Backend names by index, for rewritten URIs.
    names: HashMap<String, BackendIx>,
    /// Names and URIs that were rewritten or contested, for the console and log.
    pub notes: Vec<String>,
}

impl Registry {
    pub fn empty() -> Registry {
        Registry::build(&[])
    }

    /// Builds every table from the ready backends, given in config order: on a contested
    /// name or URI the earlier backend (then the earlier item) keeps it.
    pub fn build(backends: &[BackendLists<'_>]) -> Registry {
        let mut notes = Vec::new();
        let catalogs = Kind::ALL.map(|kind| build_catalog(kind, backends, &mut notes));
        Registry {
            catalogs,
            names: backends
                .iter()
                .map(|b| (b.name.to_string(), b.backend))
                .collect(),
            notes,
        }
    }

    pub fn catalog(&self, kind: Kind) -> &Catalog {
        &self.catalogs[kind.index()]
    }

    pub fn tools(&self) -> &[Entry] {
        self.catalog(Kind::Tools).entries()
    }

    /// Which backend serves `uri`, and the URI it knows it by: a listed resource, a
    /// rewritten URI, or the backend whose template matches with the longest literal prefix.
    pub fn route_uri(&self, uri: &str) -> Option<(BackendIx, String)> {
        if let Some(e) = self.catalog(Kind::Resources).lookup(uri) {
            return Some((e.backend, e.original.clone()));
        }
        if let Some((name, original)) = parse_rewritten_uri(uri)
            && let Some(&backend) = self.names.get(name)
        {
            return Some((backend, original.to_string()));
        }
        self.catalog(Kind::Templates)
            .entries()
            .iter()
            .filter(|e| !e.exposed.starts_with(URI_PREFIX))
            .filter_map(|e| {
                let literal = e.original.split('{').next().unwrap_or("");
                (!literal.is_empty() && uri.starts_with(literal)).then_some((literal.len(), e))
            })
            .max_by(|(la, a), (lb, b)| la.cmp(lb).then(b.backend.cmp(&a.backend)))
            .map(|(_, e)| (e.backend, uri.to_string()))
    }

    /// The URI clients know `original` of `backend` by: its listed exposed URI, or the
    /// rewritten form when the plain URI would route to another backend.
    pub fn exposed_uri(&self, backend: BackendIx, original: &str) -> String {
        if let Some(exposed) = self.catalog(Kind::Resources).exposed_of(backend, original) {
            return exposed.to_string();
        }
        match self.route_uri(original) {
            Some((b, _)) if b != backend => rewrite_uri(self.name_of(backend), original),
            _ => original.to_string(),
        }
    }

    /// Which backend owns the template `exposed` (as listed), and its original text.
    pub fn route_template(&self, exposed: &str) -> Option<(BackendIx, String)> {
        self.catalog(Kind::Templates)
            .lookup(exposed)
            .map(|e| (e.backend, e.original.clone()))
    }

    fn name_of(&self, backend: BackendIx) -> &str {
        self.names
            .iter()
            .find(|&(_, &b)| b == backend)
            .map_or("?", |(n, _)| n.as_str())
    }
}

fn build_catalog(kind: Kind, backends: &[BackendLists<'_>], notes: &mut Vec<String>) -> Catalog {
    let key = kind.key();
    let mut taken: HashMap<String, (BackendIx, String)> = HashMap::new();
    let mut listed: Vec<(Entry, Map<String, Value>)> = Vec::new();
    let what = match kind {
        Kind::Tools => "tool",
        Kind::Prompts => "prompt",
        Kind::Resources => "resource",
        Kind::Templates => "resource template",
    };
    for b in backends {
        for item in b.lists.get(kind) {
            let Some(original) = item.get(key).and_then(Value::as_str) else {
                notes.push(format!(
                    "backend '{}': a {what} without a string '{key}' was skipped",
                    b.name
                ));
                continue;
            };
            if kind == Kind::Tools && !b.view.shows(original) {
                continue;
            }
            let named = matches!(kind, Kind::Tools | Kind::Prompts);
            let wanted = if named {
                exposed_name(b.prefix, original)
            } else {
                original.to_string()
            };
            let mut exposed = wanted.clone();
            if let Some((holder, holder_original)) = taken.get(&wanted) {
                exposed = if named {
                    unique_hashed(&wanted, b.name, original, &taken)
                } else {
                    rewrite_uri(b.name, original)
                };
                let holder_name = backends
                    .iter()
                    .find(|x| x.backend == *holder)
                    .map_or("?", |x| x.name);
                notes.push(format!(
                    "{what} '{original}' of backend '{}' is exposed as '{exposed}': '{wanted}' is already backend '{holder_name}' {what} '{holder_original}'",
                    b.name
                ));
                if taken.contains_key(&exposed) {
                    continue; // the same URI twice from one backend: keep the first
                }
            } else if named && exposed != join_prefix(b.prefix, original) {
                notes.push(format!(
                    "{what} '{original}' of backend '{}' is exposed as '{exposed}' (names are limited to {MAX_NAME} characters of A-Z a-z 0-9 _ -)",
                    b.name
                ));
            }
            taken.insert(exposed.clone(), (b.backend, original.to_string()));
            let mut shown = item.clone();
            shown.insert(key.into(), Value::String(exposed.clone()));
            if kind == Kind::Tools
                && let Some(d) = b.view.description(original)
            {
                shown.insert("description".into(), Value::String(d.to_string()));
            }
            listed.push((
                Entry {
                    exposed,
                    backend: b.backend,
                    original: original.to_string(),
                },
                shown,
            ));
        }
    }
    listed.sort_by(|a, b| a.0.exposed.cmp(&b.0.exposed));
    let items = listed
        .iter()
        .map(|(_, item)| crate::jsonrpc::to_raw(item))
        .collect();
    let entries: Vec<Entry> = listed.into_iter().map(|(e, _)| e).collect();
    let by_exposed = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.exposed.clone(), i))
        .collect();
    Catalog {
        entries,
        by_exposed,
        items,
    }
}

fn unique_hashed(
    wanted: &str,
    backend: &str,
    original: &str,
    taken: &HashMap<String, (BackendIx, String)>,
) -> String {
    let mut exposed = with_hash(wanted, backend, original);
    let mut n = 2;
    while taken.contains_key(&exposed) {
        exposed = with_hash(wanted, backend, &format!("{original}#{n}"));
        n += 1;
    }
    exposed
}

fn join_prefix(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}__{name}")
    }
}

/// `<prefix>__<name>` (just `<name>` with an empty prefix) with characters outside
/// `[A-Za-z0-9_-]` replaced by `_`, and names over the limit shortened with a hash of the
/// original so they stay unique and stable.
pub fn exposed_name(prefix: &str, tool: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + 2 + tool.len());
    if !prefix.is_empty() {
        name.push_str(prefix);
        name.push_str("__");
    }
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
        with_hash(&name, prefix, tool)
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

/// The URI a contested resource (or template) of `backend` is exposed as.
pub fn rewrite_uri(backend: &str, original: &str) -> String {
    format!("{URI_PREFIX}{backend}/{original}")
}

/// The inverse of `rewrite_uri`: `(backend name, original URI)`.
pub fn parse_rewritten_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix(URI_PREFIX)?;
    let (backend, original) = rest.split_once('/')?;
    (!backend.is_empty() && !original.is_empty()).then_some((backend, original))
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

    fn items(key: &str, values: &[&str]) -> Vec<Map<String, Value>> {
        values
            .iter()
            .map(|v| {
                json!({key: v, "description": format!("about {v}")})
                    .as_object()
                    .unwrap()
                    .clone()
            })
            .collect()
    }

    fn lists(tools: &[&str], prompts: &[&str], resources: &[&str], templates: &[&str]) -> Lists {
        Lists {
            items: [
                items("name", tools),
                items("name", prompts),
                items("uri", resources),
                items("uriTemplate", templates),
            ],
        }
    }

    static NO_FILTER: crate::config::View = crate::config::View {
        allow: Vec::new(),
        deny: Vec::new(),
        descriptions: Vec::new(),
    };

    fn build(spec: &[(&str, Lists)]) -> Registry {
        let backends: Vec<_> = spec
            .iter()
            .enumerate()
            .map(|(i, (name, lists))| BackendLists {
                backend: BackendIx(i),
                name,
                prefix: name.strip_prefix("noprefix-").map_or(name, |_| ""),
                lists,
                view: &NO_FILTER,
            })
            .collect();
        Registry::build(&backends)
    }

    fn tools_only(spec: &[(&str, &[&str])]) -> Registry {
        let spec: Vec<_> = spec
            .iter()
            .map(|(n, t)| (*n, lists(t, &[], &[], &[])))
            .collect();
        build(&spec)
    }

    fn names(r: &Registry, kind: Kind) -> Vec<&str> {
        r.catalog(kind)
            .entries()
            .iter()
            .map(|t| t.exposed.as_str())
            .collect()
    }

    #[test]
    fn tools_are_prefixed_and_sorted() {
        let r = tools_only(&[("fs", &["read_file", "list"]), ("bash", &["bash"])]);
        assert_eq!(
            names(&r, Kind::Tools),
            ["bash__bash", "fs__list", "fs__read_file"]
        );
        assert!(r.notes.is_empty());
        let t = r.catalog(Kind::Tools).lookup("fs__read_file").unwrap();
        assert_eq!(
            (t.backend, t.original.as_str()),
            (BackendIx(0), "read_file")
        );
        assert!(r.catalog(Kind::Tools).lookup("fs__nope").is_none());
        assert!(r.catalog(Kind::Tools).lookup("read_file").is_none());
    }

    #[test]
    fn listed_items_carry_the_exposed_key_and_everything_else() {
        let r = tools_only(&[("fs", &["read_file"])]);
        let item: Value = serde_json::from_str(r.catalog(Kind::Tools).items()[0].get()).unwrap();
        assert_eq!(
            item,
            json!({"name": "fs__read_file", "description": "about read_file"})
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
        let r = tools_only(spec);
        assert_eq!(r.tools().len(), 9);
        for (backend, (_, originals)) in spec.iter().enumerate() {
            for original in originals.iter() {
                assert!(
                    r.tools()
                        .iter()
                        .any(|t| t.backend == BackendIx(backend) && t.original == *original),
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
            assert_eq!(r.catalog(Kind::Tools).lookup(&t.exposed), Some(t));
        }
        let mut unique = names(&r, Kind::Tools);
        unique.dedup();
        assert_eq!(unique.len(), 9);
    }

    #[test]
    fn earlier_backend_keeps_a_contested_name_and_it_is_reported() {
        // 'a.b' sanitizes to 'a_b', which backend x also has under that exact name.
        let r = tools_only(&[("x", &["a_b", "a.b"])]);
        assert_eq!(
            r.catalog(Kind::Tools).lookup("x__a_b").unwrap().original,
            "a_b"
        );
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
        let first = tools_only(&[("fs", &[&long, "b"])]);
        let second = tools_only(&[("fs", &["b", &long]), ("zz", &["q"])]);
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
    fn nameless_items_are_skipped_with_a_note() {
        let mut l = Lists::default();
        l.items[0] = vec![
            json!({"description": "no name"})
                .as_object()
                .unwrap()
                .clone(),
        ];
        let r = build(&[("w", l)]);
        assert!(r.tools().is_empty());
        assert_eq!(r.notes.len(), 1);
    }

    #[test]
    fn prompts_are_prefixed_like_tools_and_same_names_coexist() {
        let r = build(&[
            ("a", lists(&[], &["greet"], &[], &[])),
            ("b", lists(&[], &["greet"], &[], &[])),
        ]);
        assert_eq!(names(&r, Kind::Prompts), ["a__greet", "b__greet"]);
        assert_eq!(
            r.catalog(Kind::Prompts).lookup("b__greet").unwrap().backend,
            BackendIx(1)
        );
    }

    #[test]
    fn unique_uris_stay_and_a_clash_is_rewritten_reversibly() {
        let r = build(&[
            (
                "a",
                lists(
                    &[],
                    &[],
                    &["file:///etc/hosts", "mem://a"],
                    &["file:///{path}"],
                ),
            ),
            (
                "b",
                lists(
                    &[],
                    &[],
                    &["file:///etc/hosts", "mem://b"],
                    &["file:///{path}", "db://{table}"],
                ),
            ),
        ]);
        assert_eq!(
            names(&r, Kind::Resources),
            [
                "file:///etc/hosts",
                "mem://a",
                "mem://b",
                "mcp-gateway://b/file:///etc/hosts"
            ]
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        assert_eq!(
            r.route_uri("file:///etc/hosts"),
            Some((BackendIx(0), "file:///etc/hosts".into()))
        );
        assert_eq!(
            r.route_uri("mcp-gateway://b/file:///etc/hosts"),
            Some((BackendIx(1), "file:///etc/hosts".into()))
        );
        assert_eq!(
            r.route_uri("mem://b"),
            Some((BackendIx(1), "mem://b".into()))
        );
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        // Templates: the clash is rewritten; an expanded rewritten template routes back.
        assert_eq!(
            r.route_template("mcp-gateway://b/file:///{path}"),
            Some((BackendIx(1), "file:///{path}".into()))
        );
        assert_eq!(
            r.route_uri("mcp-gateway://b/file:///tmp/x"),
            Some((BackendIx(1), "file:///tmp/x".into()))
        );
        // Unlisted URIs route by template: longest literal prefix, then config order.
        assert_eq!(
            r.route_uri("file:///tmp/x"),
            Some((BackendIx(0), "file:///tmp/x".into()))
        );
        assert_eq!(
            r.route_uri("db://users"),
            Some((BackendIx(1), "db://users".into()))
        );
        assert_eq!(r.route_uri("nothing://here"), None);
        // And back: what clients see for a backend's own URI.
        assert_eq!(
            r.exposed_uri(BackendIx(1), "file:///etc/hosts"),
            "mcp-gateway://b/file:///etc/hosts"
        );
        assert_eq!(
            r.exposed_uri(BackendIx(0), "file:///etc/hosts"),
            "file:///etc/hosts"
        );
        assert_eq!(
            r.exposed_uri(BackendIx(1), "file:///tmp/x"),
            "mcp-gateway://b/file:///tmp/x"
        );
        assert_eq!(r.exposed_uri(BackendIx(1), "db://users"), "db://users");
    }

    #[test]
    fn an_empty_prefix_exposes_names_unchanged_and_still_resolves_clashes() {
        let r = tools_only(&[
            ("noprefix-a", &["test_simple_text", "x.y"]),
            ("b", &["echo"]),
            ("noprefix-c", &["test_simple_text"]),
        ]);
        assert_eq!(
            r.catalog(Kind::Tools)
                .lookup("test_simple_text")
                .unwrap()
                .backend,
            BackendIx(0)
        );
        assert_eq!(
            r.catalog(Kind::Tools).lookup("x_y").unwrap().original,
            "x.y"
        );
        assert!(r.catalog(Kind::Tools).lookup("b__echo").is_some());
        let other = r
            .tools()
            .iter()
            .find(|t| t.backend == BackendIx(2))
            .unwrap();
        assert!(
            other.exposed.starts_with("test_simple_text_"),
            "{}",
            other.exposed
        );
    }

    #[test]
    fn rewritten_uris_parse_back() {
        for (backend, uri) in [
            ("b", "file:///x"),
            ("my-fs", "mcp-gateway://c/y"),
            ("z", "a/b/c"),
        ] {
            let rewritten = rewrite_uri(backend, uri);
            assert_eq!(parse_rewritten_uri(&rewritten), Some((backend, uri)));
        }
        assert_eq!(parse_rewritten_uri("file:///x"), None);
        assert_eq!(parse_rewritten_uri("mcp-gateway://nobackend"), None);
    }
}
