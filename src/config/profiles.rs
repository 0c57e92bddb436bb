//! Profiles (`"gateway": {"profiles": {NAME: {...}}}`): named views of the catalogue,
//! each served at its own endpoints (`/p/NAME/mcp`, `/p/NAME/sse`, `--stdio --profile
//! NAME`). A profile names the backends it shows (without `backends`: every one but the
//! built-in servers, which a profile must name), allow and deny globs on exposed tool and
//! prompt names and on resource URIs (and URI templates), and tool descriptions of its
//! own. The endpoints without a profile serve the whole catalogue, as before profiles.
//! Part of the pure config parser: no I/O.

use super::{BackendSpec, Transport, Validator, View, kind};
use serde_json::{Map, Value};

/// One profile, as configured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    pub name: String,
    pub description: Option<String>,
    /// The backends it shows, by name; `None`: every one but the built-in servers.
    pub backends: Option<Vec<String>>,
    /// Globs on exposed tool names, and descriptions by exposed name.
    pub tools: View,
    /// Globs on exposed prompt names.
    pub prompts: View,
    /// Globs on resource URIs and URI templates as exposed.
    pub resources: View,
    /// Catalogue mode: its sessions list three tools (search, describe, call) that reach
    /// all of its tools, for clients that take only so many.
    pub catalogue: bool,
}

impl Profile {
    /// Whether the profile's resource globs let a client reach `uri`. With any glob, a URI
    /// with a `.` or `..` path segment (also written `%2e`, or behind an encoded `/` or a
    /// `\\`) is refused: a glob checks the text, and a backend that resolves the path
    /// would reach what the glob does not show (`test://template/../..` passes
    /// `test://template/*`).
    pub fn shows_uri(&self, uri: &str) -> bool {
        let filtered = !self.resources.allow.is_empty() || !self.resources.deny.is_empty();
        self.resources.shows(uri) && !(filtered && has_dot_segments(uri))
    }

    /// Whether the profile shows the backend `spec`.
    pub fn shows_backend(&self, spec: &BackendSpec) -> bool {
        match &self.backends {
            Some(names) => names.contains(&spec.name),
            None => !matches!(spec.transport, Transport::Builtin { .. }),
        }
    }
}

/// Whether a URI's path has a `.` or `..` segment, read as a server might: `%2e` as `.`,
/// `%2f` and `\\` as `/`.
pub fn has_dot_segments(uri: &str) -> bool {
    let decoded = uri
        .replace("%2e", ".")
        .replace("%2E", ".")
        .replace("%2f", "/")
        .replace("%2F", "/")
        .replace("%5c", "/")
        .replace("%5C", "/")
        .replace('\\', "/");
    let rest = decoded
        .split_once("://")
        .map_or(decoded.as_str(), |(_, r)| r);
    let path = rest.split(['?', '#']).next().unwrap_or(rest);
    path.split(['/', ':']).any(|s| s == "." || s == "..")
}

/// Whether `name` can be a profile's: a path segment of letters, digits, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The fields a profile has (the schema's too).
pub(super) const FIELDS: &[&str] = &[
    "description",
    "backends",
    "tools",
    "descriptions",
    "prompts",
    "resources",
    "catalogue",
];

impl Validator<'_> {
    /// The entries of `gateway.<field>`, an object of objects by name (`one` says what one
    /// is, for messages), each with the context its errors name; unknown fields of an entry
    /// (not in `fields`) are warned about, an entry that is not an object is an error.
    fn entries<'v>(
        &mut self,
        value: &'v Value,
        field: &str,
        one: &str,
        fields: &[&str],
    ) -> Vec<(&'v String, String, &'v Map<String, Value>)> {
        let Some(obj) = value.as_object() else {
            self.error(format!(
                "config: 'gateway': field '{field}': expected an object mapping names to each {one}'s settings, got {}",
                kind(value)
            ));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in obj {
            let ctx = format!("config: 'gateway': {one} '{name}'");
            let Some(entry) = value.as_object() else {
                self.error(format!("{ctx}: expected an object, got {}", kind(value)));
                continue;
            };
            for key in entry.keys().filter(|k| !fields.contains(&k.as_str())) {
                self.warn(format!(
                    "{ctx}: unknown field '{key}' (ignored; known: {})",
                    fields.join(", ")
                ));
            }
            out.push((name, ctx, entry));
        }
        out
    }

    /// `gateway.profiles`, by name.
    pub(super) fn profiles(&mut self, value: &Value) -> Vec<Profile> {
        let mut out = Vec::new();
        for (name, ctx, obj) in self.entries(value, "profiles", "profile", FIELDS) {
            if !valid_name(name) {
                self.error(format!(
                    "{ctx}: a profile's name is part of its URL (/p/NAME/mcp): use letters, digits, '-' and '_' (at most 64)"
                ));
                continue;
            }
            if let Some(p) = self.profile(&ctx, name, obj) {
                out.push(p);
            }
        }
        out
    }

    fn profile(&mut self, ctx: &str, name: &str, obj: &Map<String, Value>) -> Option<Profile> {
        let description = match obj.get("description") {
            None => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'description': expected a string, got {}",
                    kind(other)
                ));
                return None;
            }
        };
        let backends = match obj.get("backends") {
            None => None,
            Some(v) => Some(self.strings(ctx, "backends", v, "backend names")?),
        };
        let catalogue = match obj.get("catalogue") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'catalogue': expected true or false, got {other}"
                ));
                return None;
            }
        };
        let tools = self.view(ctx, obj)?;
        let (allow, deny) = self.filter(ctx, obj, "prompts", "prompt name")?;
        let prompts = View {
            allow,
            deny,
            ..View::default()
        };
        let (allow, deny) = self.filter(ctx, obj, "resources", "resource URI")?;
        let resources = View {
            allow,
            deny,
            ..View::default()
        };
        Some(Profile {
            name: name.to_string(),
            description,
            backends,
            tools,
            prompts,
            resources,
            catalogue,
        })
    }

    /// Every backend a profile names is configured.
    pub(super) fn check_profiles(&mut self, profiles: &[Profile], backends: &[BackendSpec]) {
        for p in profiles {
            for name in p.backends.iter().flatten() {
                if !backends.iter().any(|b| b.name == *name) {
                    self.error(format!(
                        "config: 'gateway': profile '{}': field 'backends': no backend is named '{name}'",
                        p.name
                    ));
                }
            }
        }
    }
}

/// A client token (`"gateway": {"tokens": {LABEL: {...}}}`): a secret, in the config
/// (`${VAR}` expanded) or in a file, and the profiles it opens. Its label names it in logs
/// and the audit; the secret is never printed.
#[derive(Clone, PartialEq)]
pub struct ClientToken {
    pub label: String,
    pub secret: Secret,
    pub profiles: Vec<String>,
}

#[derive(Clone, PartialEq)]
pub enum Secret {
    Text(String),
    /// A file holding it (read at start, surrounding whitespace taken off).
    File(String),
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = match &self.secret {
            Secret::Text(_) => "(hidden)".to_string(),
            Secret::File(path) => format!("(in {path})"),
        };
        f.debug_struct("ClientToken")
            .field("label", &self.label)
            .field("secret", &secret)
            .field("profiles", &self.profiles)
            .finish()
    }
}

/// The fields a client token has (the schema's too).
pub(super) const TOKEN_FIELDS: &[&str] = &["token", "tokenFile", "profiles"];

impl Validator<'_> {
    /// `gateway.tokens`, by label; the variables their secrets name join the gateway's
    /// own secrets (`secrets`), which no backend inherits.
    pub(super) fn tokens(&mut self, value: &Value, secrets: &mut Vec<String>) -> Vec<ClientToken> {
        let mut out = Vec::new();
        for (label, ctx, obj) in self.entries(value, "tokens", "token", TOKEN_FIELDS) {
            let secret = match (obj.get("token"), obj.get("tokenFile")) {
                (Some(Value::String(t)), None) => {
                    secrets.extend(super::variable_names(t));
                    match self.expand(&ctx, "token", t) {
                        Some(t) if !t.trim().is_empty() => Secret::Text(t.trim().to_string()),
                        Some(_) => {
                            self.error(format!("{ctx}: field 'token': it is empty"));
                            continue;
                        }
                        None => continue,
                    }
                }
                (None, Some(Value::String(path))) => match self.expand(&ctx, "tokenFile", path) {
                    Some(path) => Secret::File(path),
                    None => continue,
                },
                _ => {
                    self.error(format!(
                        "{ctx}: needs exactly one of 'token' (a string) and 'tokenFile' (a file holding it)"
                    ));
                    continue;
                }
            };
            let what = "the names of the profiles it opens (at least one)";
            let profiles = match obj.get("profiles") {
                Some(v) => match self.strings(&ctx, "profiles", v, what) {
                    Some(list) if !list.is_empty() => list,
                    Some(_) => {
                        self.error(format!("{ctx}: field 'profiles': expected {what}, got []"));
                        continue;
                    }
                    None => continue,
                },
                None => {
                    self.error(format!(
                        "{ctx}: field 'profiles': expected {what}, got nothing"
                    ));
                    continue;
                }
            };
            out.push(ClientToken {
                label: label.clone(),
                secret,
                profiles,
            });
        }
        out
    }

    /// Every profile a client token names is configured, and no two tokens are the same.
    pub(super) fn check_tokens(&mut self, tokens: &[ClientToken], profiles: &[Profile]) {
        for (i, t) in tokens.iter().enumerate() {
            for name in &t.profiles {
                if !profiles.iter().any(|p| p.name == *name) {
                    self.error(format!(
                        "config: 'gateway': token '{}': field 'profiles': no profile is named '{name}'",
                        t.label
                    ));
                }
            }
            if let Some(other) = tokens[..i].iter().find(|o| o.secret == t.secret) {
                self.error(format!(
                    "config: 'gateway': tokens '{}' and '{}' have the same secret: give each client its own",
                    other.label, t.label
                ));
            }
        }
    }
}
