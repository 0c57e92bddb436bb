//! `config.json`: parsing, `${VAR}` expansion and validation.
//!
//! Pure: takes the file's text and a variable lookup, returns the backends in file order or
//! every problem found, each naming the backend key and field. No I/O, no threads, no
//! process starting: that is `backend.rs`'s job.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;

mod original;
mod settings;
mod shapes;
mod vars;
pub use settings::Settings;
pub use vars::{expand_vars, variable_names};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// In file order: the order decides who keeps a contested name.
    pub backends: Vec<BackendSpec>,
    /// The gateway's own settings: the top-level `"gateway"` object (a reserved name).
    pub settings: Settings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackendSpec {
    pub name: String,
    pub transport: Transport,
    pub scope: Scope,
    pub policy: Policy,
    /// `"enabled": false` keeps a backend in the file without starting it.
    pub enabled: bool,
    /// Which of its tools clients see, and with what descriptions.
    pub view: View,
    /// Tool and prompt names are exposed as `<prefix>__<name>`; `""` exposes them unchanged.
    pub prefix: String,
    /// Whether the gateway is unready (`/readyz` 503) while this backend is not ready.
    pub required: bool,
}

/// What clients see of a backend's tools: `tools.allow`/`tools.deny` glob patterns on the
/// backend's own tool names (deny wins; no allow list means all), and `descriptions`
/// overriding a tool's description.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub descriptions: Vec<(String, String)>,
}

impl View {
    pub fn shows(&self, tool: &str) -> bool {
        !self.deny.iter().any(|p| crate::glob::glob(p, tool))
            && (self.allow.is_empty() || self.allow.iter().any(|p| crate::glob::glob(p, tool)))
    }

    pub fn description(&self, tool: &str) -> Option<&str> {
        self.descriptions
            .iter()
            .find(|(t, _)| t == tool)
            .map(|(_, d)| d.as_str())
    }
}

/// How long requests may take, and what happens when the backend dies.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// How long a request may wait for its answer.
    pub timeout: Duration,
    /// Progress notifications extend a request's time, but not past this.
    pub max_timeout: Duration,
    /// Per-tool `timeout`s, by the backend's own tool name.
    pub tool_timeouts: Vec<(String, Duration)>,
    /// Start the backend again when it exits or stops answering (`"restart": "always"`).
    pub restart: bool,
    /// Largest message taken from the backend, in bytes.
    pub max_message: usize,
    /// Requests one instance works on at once; more wait in line (`maxConcurrent`).
    pub max_concurrent: Option<usize>,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(3600);
pub const DEFAULT_MAX_MESSAGE: usize = 16 * 1024 * 1024;

impl Policy {
    /// The time a call of `tool` (None for other requests) may take.
    pub fn timeout_for(&self, tool: Option<&str>) -> Duration {
        tool.and_then(|t| self.tool_timeouts.iter().find(|(name, _)| name == t))
            .map_or(self.timeout, |(_, d)| *d)
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            timeout: DEFAULT_TIMEOUT,
            max_timeout: DEFAULT_MAX_TIMEOUT,
            tool_timeouts: Vec::new(),
            restart: true,
            max_message: DEFAULT_MAX_MESSAGE,
            max_concurrent: None,
        }
    }
}

/// Who shares one running instance of a backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    /// One instance serves every client (the default).
    Shared,
    /// Each client session gets its own instance, stopped when the session ends or after
    /// `idle` without a request.
    Session { idle: Duration },
}

/// How long a locally started SSE server gets to start listening.
pub const DEFAULT_STARTUP: Duration = Duration::from_secs(30);

/// How long a per-session instance may sit unused before it is stopped.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A child process speaking JSON-RPC over its stdin/stdout.
    Stdio(Launch),
    /// A legacy HTTP+SSE server, optionally started locally first (then given `startup`
    /// to start listening).
    Sse {
        url: String,
        launch: Option<Launch>,
        startup: Duration,
    },
    /// A Streamable HTTP server.
    StreamableHttp {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// A server compiled into this binary, run as `mcp-gateway builtin NAME`.
    Builtin {
        server: String,
        timeout_secs: Option<u64>,
        /// Bytes kept of each command's stdout and stderr.
        max_output: Option<u64>,
        /// Where commands run, what they get in their environment, and which may run.
        cwd: Option<String>,
        env: Vec<(String, String)>,
        allow: Vec<String>,
        deny: Vec<String>,
    },
}

impl Transport {
    pub fn type_name(&self) -> &'static str {
        match self {
            Transport::Stdio(_) => "stdio",
            Transport::Sse { .. } => "sse",
            Transport::StreamableHttp { .. } => "streamable-http",
            Transport::Builtin { .. } => "builtin",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub command: String,
    pub args: Vec<String>,
    /// Added to the gateway's own environment.
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
}

/// Every problem found in a config file; `Display` prints one per line.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

/// A parsed config, the warnings (unknown fields and the like) worth printing, and what
/// the gateway did differently from what the file says (`notices`, one console line each).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
    pub notices: Vec<String>,
}

/// What parsing needs beyond the text.
pub struct Context<'a> {
    /// Resolves `${VAR}` and `${env:VAR}`.
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Whether a file exists: a script of the original MCP-Gateway that is not there is
    /// served by the matching built-in server.
    pub exists: &'a dyn Fn(&std::path::Path) -> bool,
    /// `--no-prefix`: names are the backends' own unless a backend sets a `prefix`.
    pub no_prefix: bool,
}

/// The JSON Schema of the config file (`--print-config-schema`), for editors and CI.
pub const SCHEMA: &str = include_str!("config.schema.json");

/// Built-in servers this binary can run (see `servers/`).
pub const BUILTIN_SERVERS: &[&str] = &["bash", "cmd", "powershell", "wmi"];

/// Parses and validates a config file's text. `lookup` resolves `${VAR}`; files are taken
/// to exist and names to be prefixed unless the file says otherwise.
#[cfg(test)]
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ConfigError> {
    parse_in(
        text,
        &Context {
            lookup,
            exists: &|_| true,
            no_prefix: false,
        },
    )
}

/// Parses and validates a config file's text in `cx`.
pub fn parse_in(text: &str, cx: &Context<'_>) -> Result<Loaded, ConfigError> {
    let top: OrderedObject = serde_json::from_str(text)
        .map_err(|e| ConfigError(vec![format!("config: not valid JSON: {e}")]))?;
    let mut v = Validator {
        errors: Vec::new(),
        warnings: Vec::new(),
        notices: Vec::new(),
        lookup: cx.lookup,
        exists: cx.exists,
        no_prefix: false,
        inputs: Vec::new(),
    };
    let (settings, entries) = v.shape(top);
    v.no_prefix = cx.no_prefix || settings.prefix == Some(false);
    // A name defined twice keeps its first place and takes its later definition, as the
    // original MCP-Gateway (Python's JSON reader) does; its own shipped config has two.
    let mut unique: Vec<(String, Value)> = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        match unique.iter_mut().find(|(earlier, _)| *earlier == name) {
            Some(earlier) => {
                v.warn(format!(
                    "config: backend '{name}' is defined twice ({} and then {}); the later definition is used",
                    shapes::brief(&earlier.1),
                    shapes::brief(&value)
                ));
                earlier.1 = value;
            }
            None => unique.push((name, value)),
        }
    }
    let mut backends = Vec::new();
    for (name, value) in &unique {
        if let Some(spec) = v.backend(name, value) {
            backends.push(spec);
        }
    }
    if backends.is_empty() && v.errors.is_empty() {
        v.warn("config: no backends are configured; the gateway will serve no tools".into());
    }
    if v.errors.is_empty() {
        Ok(Loaded {
            config: Config { backends, settings },
            warnings: v.warnings,
            notices: v.notices,
        })
    } else {
        Err(ConfigError(v.errors))
    }
}

/// Backend names become name prefixes (`<name>__<tool>`), so they use only characters every
/// client accepts in a tool name, and never the `__` that separates them from the tool.
pub fn check_backend_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a backend name must not be empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "backend name '{name}' has the character {c:?}: only letters, digits, '-' and '_' are allowed, because the name prefixes every tool as '{name}__<tool>'"
        ));
    }
    if name.contains("__") || name.ends_with('_') {
        return Err(format!(
            "backend name '{name}' has '__' or ends in '_': '__' separates the backend from the tool in '{name}__<tool>', so the exposed names would be ambiguous"
        ));
    }
    Ok(())
}

struct Validator<'a> {
    errors: Vec<String>,
    warnings: Vec<String>,
    notices: Vec<String>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    exists: &'a dyn Fn(&std::path::Path) -> bool,
    /// Backends without a `prefix` of their own expose their names unchanged.
    no_prefix: bool,
    /// VS Code's `inputs`: id and description.
    inputs: Vec<(String, String)>,
}

/// Fields every type takes.
const COMMON_FIELDS: &[&str] = &[
    "enabled",
    "tools",
    "descriptions",
    "maxMessageSize",
    "maxConcurrent",
    "type",
    "prefix",
    "scope",
    "idleTimeout",
    "timeout",
    "maxTimeout",
    "toolTimeouts",
    "restart",
    "required",
];
const STDIO_FIELDS: &[&str] = &["command", "args", "env", "cwd"];
const SSE_FIELDS: &[&str] = &["url", "command", "args", "env", "cwd", "startupTimeout"];
const HTTP_FIELDS: &[&str] = &["url", "headers"];
const BUILTIN_FIELDS: &[&str] = &["server", "maxOutput", "cwd", "env", "allow", "deny"];

impl Validator<'_> {
    fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    fn backend(&mut self, name: &str, value: &Value) -> Option<BackendSpec> {
        if let Err(e) = check_backend_name(name) {
            self.error(format!("config: {e}"));
            return None;
        }
        let ctx = format!("config: backend '{name}'");
        let Some(obj) = value.as_object() else {
            self.error(format!(
                "{ctx}: expected an object with its settings, got {}",
                kind(value)
            ));
            return None;
        };
        // Client configs also say `transport` instead of `type`, and spell the modern
        // transport several ways.
        let (type_field, given) = match (obj.get("type"), obj.get("transport")) {
            (Some(t), _) => ("type", Some(t)),
            (None, Some(t)) => ("transport", Some(t)),
            (None, None) => ("type", None),
        };
        let ty = match given {
            None => infer_type(obj),
            Some(Value::String(t)) => Some(match t.as_str() {
                "streamableHttp" | "streamable_http" | "streamable-http" | "http" => {
                    "streamable-http"
                }
                other => other,
            }),
            Some(other) => {
                self.error(format!(
                    "{ctx}: field '{type_field}': expected a string, got {}",
                    kind(other)
                ));
                return None;
            }
        };
        let (fields, transport) = match ty {
            Some("stdio") => (
                STDIO_FIELDS,
                self.launch(&ctx, obj, true).map(Transport::Stdio),
            ),
            Some("sse") => {
                let url = self.url(&ctx, obj);
                let launch = if obj.contains_key("command") {
                    self.launch(&ctx, obj, true).map(Some)
                } else {
                    self.launch(&ctx, obj, false).map(|_| None)
                };
                let startup = self.seconds(&ctx, obj, "startupTimeout", DEFAULT_STARTUP);
                let transport = match (url, launch, startup) {
                    (Some(url), Some(launch), Some(startup)) => Some(Transport::Sse {
                        url,
                        launch,
                        startup,
                    }),
                    _ => None,
                };
                (SSE_FIELDS, transport)
            }
            Some("streamable-http" | "http") => {
                let url = self.url(&ctx, obj);
                let headers = self.string_map(&ctx, obj, "headers");
                (
                    HTTP_FIELDS,
                    url.zip(headers)
                        .map(|(url, headers)| Transport::StreamableHttp { url, headers }),
                )
            }
            Some("builtin") => (BUILTIN_FIELDS, self.builtin(&ctx, obj)),
            Some(other) => {
                self.error(format!(
                    "{ctx}: field '{type_field}': unknown type '{other}' (expected one of stdio, sse, streamable-http, builtin)"
                ));
                return None;
            }
            None => {
                self.error(format!(
                    "{ctx}: field 'type' is missing and cannot be inferred: give 'type' (stdio, sse, streamable-http, builtin), or 'command' for a stdio server, or 'url' for an HTTP one"
                ));
                return None;
            }
        };
        for key in obj.keys() {
            let known = fields.contains(&key.as_str())
                || COMMON_FIELDS.contains(&key.as_str())
                || (key == "transport" && type_field == "transport");
            if !known {
                self.warn(format!(
                    "{ctx}: unknown field '{key}' for type '{}' (ignored)",
                    ty.unwrap_or_default()
                ));
            }
        }
        let scope = self.scope(&ctx, obj);
        let prefix = match obj.get("prefix") {
            None if self.no_prefix => Some(String::new()),
            None => Some(name.to_string()),
            Some(Value::String(p)) if p.is_empty() => Some(String::new()),
            Some(Value::String(p)) => match check_backend_name(p) {
                Ok(()) => Some(p.clone()),
                Err(e) => {
                    self.error(format!(
                        "{ctx}: field 'prefix': {}",
                        e.replace("backend name", "prefix")
                    ));
                    None
                }
            },
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'prefix': expected a string, got {}",
                    kind(other)
                ));
                None
            }
        };
        let policy = self.policy(&ctx, obj, transport.as_ref());
        let enabled = self.boolean(&ctx, obj, "enabled", true, "true or false");
        let view = self.view(&ctx, obj);
        let required = self.boolean(
            &ctx,
            obj,
            "required",
            false,
            "true (the gateway is not ready without it) or false",
        );
        let transport = match transport {
            Some(Transport::Stdio(launch)) => {
                Some(match original::stand_in(&launch, self.exists) {
                    Some((builtin, server, script)) => {
                        self.notices.push(format!(
                        "backend '{name}': '{script}' (a script of the original MCP-Gateway) is not here; the built-in '{server}' server takes its place"
                    ));
                        builtin
                    }
                    None => Transport::Stdio(launch),
                })
            }
            other => other,
        };
        Some(BackendSpec {
            required: required?,
            enabled: enabled?,
            view: view?,
            name: name.to_string(),
            transport: transport?,
            scope: scope?,
            prefix: prefix?,
            policy: policy?,
        })
    }

    fn view(&mut self, ctx: &str, obj: &Map<String, Value>) -> Option<View> {
        let mut view = View::default();
        match obj.get("tools") {
            None => {}
            Some(Value::Object(filter)) => {
                for (key, value) in filter {
                    let list = match value {
                        Value::Array(items) if items.iter().all(Value::is_string) => items
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_string))
                            .collect(),
                        other => {
                            self.error(format!(
                                "{ctx}: field 'tools.{key}': expected a list of tool name patterns, got {other}"
                            ));
                            return None;
                        }
                    };
                    match key.as_str() {
                        "allow" => view.allow = list,
                        "deny" => view.deny = list,
                        other => self.warn(format!(
                            "{ctx}: field 'tools': unknown key '{other}' (expected allow, deny)"
                        )),
                    }
                }
            }
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'tools': expected {{\"allow\": [...], \"deny\": [...]}}, got {}",
                    kind(other)
                ));
                return None;
            }
        }
        view.descriptions = self.string_map(ctx, obj, "descriptions")?;
        Some(view)
    }

    fn policy(
        &mut self,
        ctx: &str,
        obj: &Map<String, Value>,
        transport: Option<&Transport>,
    ) -> Option<Policy> {
        let mut policy = Policy::default();
        if let Some(Transport::Builtin {
            timeout_secs: Some(t),
            ..
        }) = transport
        {
            // A built-in server's `timeout` bounds each command; the gateway waits a little
            // longer, so the server's own "timed out" result arrives first.
            policy.timeout = DEFAULT_TIMEOUT.max(Duration::from_secs(t + 5));
        } else {
            policy.timeout = self.seconds(ctx, obj, "timeout", DEFAULT_TIMEOUT)?;
        }
        policy.max_timeout = self
            .seconds(
                ctx,
                obj,
                "maxTimeout",
                DEFAULT_MAX_TIMEOUT.max(policy.timeout),
            )?
            .max(policy.timeout);
        match obj.get("toolTimeouts") {
            None => {}
            Some(Value::Object(map)) => {
                for (tool, secs) in map {
                    match secs.as_u64() {
                        Some(n) if n > 0 => policy
                            .tool_timeouts
                            .push((tool.clone(), Duration::from_secs(n))),
                        _ => {
                            self.error(format!(
                                "{ctx}: field 'toolTimeouts': '{tool}' must be a whole number of seconds above 0, got {secs}"
                            ));
                            return None;
                        }
                    }
                }
            }
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'toolTimeouts': expected an object of tool names to seconds, got {}",
                    kind(other)
                ));
                return None;
            }
        }
        if let Some(n) = self.number(ctx, obj, "maxMessageSize", "a number of bytes", 1024)? {
            policy.max_message = usize::try_from(n).unwrap_or(usize::MAX);
        }
        policy.max_concurrent = self
            .number(ctx, obj, "maxConcurrent", "a whole number of requests", 1)?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        policy.restart = match obj.get("restart") {
            None => true,
            Some(Value::String(r)) if r == "always" => true,
            Some(Value::String(r)) if r == "never" => false,
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'restart': expected \"always\" or \"never\", got {other}"
                ));
                return None;
            }
        };
        Some(policy)
    }

    /// An optional true/false field (`what` says what each means, for the error).
    fn boolean(
        &mut self,
        ctx: &str,
        obj: &Map<String, Value>,
        field: &str,
        default: bool,
        what: &str,
    ) -> Option<bool> {
        match obj.get(field) {
            None => Some(default),
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.error(format!(
                    "{ctx}: field '{field}': expected {what}, got {}",
                    kind(other)
                ));
                None
            }
        }
    }

    /// An optional whole-number field of at least `min` (`what` names its unit for the
    /// error): `Some(None)` when absent, `None` when wrong (and reported).
    fn number(
        &mut self,
        ctx: &str,
        obj: &Map<String, Value>,
        field: &str,
        what: &str,
        min: u64,
    ) -> Option<Option<u64>> {
        let Some(v) = obj.get(field) else {
            return Some(None);
        };
        match v.as_u64() {
            Some(n) if n >= min => Some(Some(n)),
            _ => {
                self.error(format!(
                    "{ctx}: field '{field}': expected {what}, at least {min}, got {v}"
                ));
                None
            }
        }
    }

    /// An optional field of whole seconds above 0.
    fn seconds(
        &mut self,
        ctx: &str,
        obj: &Map<String, Value>,
        field: &str,
        default: Duration,
    ) -> Option<Duration> {
        let secs = self.number(ctx, obj, field, "a whole number of seconds", 1)?;
        Some(secs.map_or(default, Duration::from_secs))
    }

    fn scope(&mut self, ctx: &str, obj: &Map<String, Value>) -> Option<Scope> {
        let idle = self.seconds(ctx, obj, "idleTimeout", DEFAULT_IDLE)?;
        match obj.get("scope") {
            None => Some(Scope::Shared),
            Some(Value::String(s)) if s == "shared" => Some(Scope::Shared),
            Some(Value::String(s)) if s == "session" => Some(Scope::Session { idle }),
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'scope': expected \"shared\" or \"session\", got {other}"
                ));
                None
            }
        }
    }

    /// Reads command/args/env/cwd. With `need_command` false only checks the optional ones.
    fn launch(
        &mut self,
        ctx: &str,
        obj: &Map<String, Value>,
        need_command: bool,
    ) -> Option<Launch> {
        let errors_before = self.errors.len();
        let command = match obj.get("command") {
            Some(Value::String(c)) if !c.trim().is_empty() => self.expand(ctx, "command", c),
            Some(Value::String(_)) => {
                self.error(format!("{ctx}: field 'command': must not be empty"));
                None
            }
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'command': expected a string, got {}",
                    kind(other)
                ));
                None
            }
            None if need_command => {
                self.error(format!(
                    "{ctx}: field 'command' is required (the program to start)"
                ));
                None
            }
            None => None,
        };
        let mut args = Vec::new();
        match obj.get("args") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => {
                            if let Some(s) = self.expand(ctx, &format!("args[{i}]"), s) {
                                args.push(s);
                            }
                        }
                        other => self.error(format!(
                            "{ctx}: field 'args': expected a list of strings, item {i} is {}",
                            kind(other)
                        )),
                    }
                }
            }
            Some(other) => self.error(format!(
                "{ctx}: field 'args': expected a list of strings, got {}",
                kind(other)
            )),
        }
        let env = self.string_map(ctx, obj, "env");
        let cwd = match obj.get("cwd") {
            None => None,
            Some(Value::String(s)) => self.expand(ctx, "cwd", s),
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'cwd': expected a string, got {}",
                    kind(other)
                ));
                None
            }
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Launch {
            command: command.unwrap_or_default(),
            args,
            env: env.unwrap_or_default(),
            cwd,
        })
    }

    fn url(&mut self, ctx: &str, obj: &Map<String, Value>) -> Option<String> {
        match obj.get("url") {
            Some(Value::String(u)) => {
                let u = self.expand(ctx, "url", u)?;
                if u.starts_with("http://") || u.starts_with("https://") {
                    Some(u)
                } else {
                    self.error(format!(
                        "{ctx}: field 'url': expected an http:// or https:// URL, got '{u}'"
                    ));
                    None
                }
            }
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'url': expected a string, got {}",
                    kind(other)
                ));
                None
            }
            None => {
                self.error(format!("{ctx}: field 'url' is required"));
                None
            }
        }
    }

    fn builtin(&mut self, ctx: &str, obj: &Map<String, Value>) -> Option<Transport> {
        let server = match obj.get("server") {
            Some(Value::String(s)) if BUILTIN_SERVERS.contains(&s.as_str()) => s.clone(),
            Some(Value::String(s)) => {
                self.error(format!(
                    "{ctx}: field 'server': unknown built-in server '{s}' (this build has: {})",
                    BUILTIN_SERVERS.join(", ")
                ));
                return None;
            }
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'server': expected a string, got {}",
                    kind(other)
                ));
                return None;
            }
            None => {
                self.error(format!(
                    "{ctx}: field 'server' is required (one of: {})",
                    BUILTIN_SERVERS.join(", ")
                ));
                return None;
            }
        };
        let timeout_secs = self.number(ctx, obj, "timeout", "a whole number of seconds", 1)?;
        let max_output = self.number(ctx, obj, "maxOutput", "a number of bytes", 1)?;
        let cwd = match obj.get("cwd") {
            None => None,
            Some(Value::String(d)) => Some(self.expand(ctx, "cwd", d)?),
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'cwd': expected a string, got {}",
                    kind(other)
                ));
                return None;
            }
        };
        let env = self.string_map(ctx, obj, "env")?;
        let mut patterns = |field: &str| -> Option<Vec<String>> {
            match obj.get(field) {
                None => Some(Vec::new()),
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
                    items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect(),
                ),
                Some(other) => {
                    self.error(format!(
                        "{ctx}: field '{field}': expected a list of command patterns (strings, * for anything), got {other}"
                    ));
                    None
                }
            }
        };
        let (allow, deny) = (patterns("allow")?, patterns("deny")?);
        Some(Transport::Builtin {
            server,
            timeout_secs,
            max_output,
            cwd,
            env,
            allow,
            deny,
        })
    }

    fn string_map(
        &mut self,
        ctx: &str,
        obj: &Map<String, Value>,
        field: &str,
    ) -> Option<Vec<(String, String)>> {
        match obj.get(field) {
            None => Some(Vec::new()),
            Some(Value::Object(map)) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (k, v) in map {
                    match v {
                        Value::String(s) => match self.expand(ctx, &format!("{field}.{k}"), s) {
                            Some(s) => out.push((k.clone(), s)),
                            None => ok = false,
                        },
                        other => {
                            self.error(format!(
                                "{ctx}: field '{field}': expected string values, '{k}' is {}",
                                kind(other)
                            ));
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
            Some(other) => {
                self.error(format!(
                    "{ctx}: field '{field}': expected an object of strings, got {}",
                    kind(other)
                ));
                None
            }
        }
    }

    fn expand(&mut self, ctx: &str, field: &str, text: &str) -> Option<String> {
        match expand_vars(text, self.lookup) {
            Ok(s) => Some(s),
            Err(e) => {
                let hint = self.input_hint(text);
                self.error(format!("{ctx}: field '{field}': {e}{hint}"));
                None
            }
        }
    }
}

fn infer_type(obj: &Map<String, Value>) -> Option<&'static str> {
    if obj.contains_key("server") {
        Some("builtin")
    } else if let Some(url) = obj.get("url").and_then(Value::as_str) {
        // Claude Desktop / Cursor shape: a URL ending in /sse is the legacy transport.
        let path = url.split(['?', '#']).next().unwrap_or(url);
        if path.trim_end_matches('/').ends_with("/sse") {
            Some("sse")
        } else {
            Some("streamable-http")
        }
    } else if obj.contains_key("command") {
        Some("stdio")
    } else {
        None
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A JSON object with its keys in file order, duplicates kept (so they can be reported),
/// and each value's text (`.1`, same order), so an object inside keeps its order too.
struct OrderedObject(Vec<(String, Value)>, Vec<Box<serde_json::value::RawValue>>);

impl OrderedObject {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The text of `key`'s value, as written.
    fn text(&self, key: &str) -> Option<&str> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        self.1.get(i).map(|raw| raw.get())
    }
}

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping backend names to their settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
                use serde::de::Error;
                let mut object = OrderedObject(Vec::new(), Vec::new());
                while let Some((key, raw)) =
                    map.next_entry::<String, Box<serde_json::value::RawValue>>()?
                {
                    let value = serde_json::from_str(raw.get()).map_err(A::Error::custom)?;
                    object.0.push((key, value));
                    object.1.push(raw);
                }
                Ok(object)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/u".into()),
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    pub(super) fn ok(text: &str) -> Loaded {
        parse(text, &env).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(super) fn errors(text: &str) -> Vec<String> {
        parse(text, &env).expect_err("config should be rejected").0
    }

    #[test]
    fn gateway_shape_keeps_file_order_and_all_types() {
        let loaded = ok(r#"{
            "zeta": {"type": "stdio", "command": "node", "args": ["${HOME}/s.js"], "env": {"K": "${TOKEN}"}},
            "alpha": {"type": "sse", "url": "http://127.0.0.1:8080/sse", "command": "python3", "args": ["srv.py"]},
            "shell": {"type": "builtin", "server": "bash", "timeout": 5},
            "remote": {"type": "http", "url": "https://example.test/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}}
        }"#);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let b = &loaded.config.backends;
        assert_eq!(
            b.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
            ["zeta", "alpha", "shell", "remote"]
        );
        assert_eq!(
            b[0].transport,
            Transport::Stdio(Launch {
                command: "node".into(),
                args: vec!["/home/u/s.js".into()],
                env: vec![("K".into(), "s3cret".into())],
                cwd: None,
            })
        );
        assert!(
            matches!(&b[1].transport, Transport::Sse { url, launch: Some(l), startup } if url.ends_with("/sse") && l.command == "python3" && *startup == DEFAULT_STARTUP)
        );
        assert_eq!(
            b[2].transport,
            Transport::Builtin {
                server: "bash".into(),
                timeout_secs: Some(5),
                max_output: None,
                cwd: None,
                env: Vec::new(),
                allow: Vec::new(),
                deny: Vec::new(),
            }
        );
        assert!(
            matches!(&b[3].transport, Transport::StreamableHttp { headers, .. } if headers[0].1 == "Bearer s3cret")
        );
    }

    #[test]
    fn claude_desktop_shape_infers_types() {
        let loaded = ok(r#"{"mcpServers": {
            "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
            "legacy": {"url": "http://127.0.0.1:3000/sse"},
            "modern": {"url": "http://127.0.0.1:3000/mcp"}
        }}"#);
        let types: Vec<_> = loaded
            .config
            .backends
            .iter()
            .map(|b| b.transport.type_name())
            .collect();
        assert_eq!(types, ["stdio", "sse", "streamable-http"]);
        let loaded = ok(r#"{"mcpServers": {
            "a": {"url": "http://127.0.0.1:3000/events", "transport": "sse"},
            "b": {"url": "http://127.0.0.1:3000/sse", "type": "streamableHttp"},
            "c": {"url": "http://127.0.0.1:3000/x", "type": "http"}
        }}"#);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let types: Vec<_> = loaded
            .config
            .backends
            .iter()
            .map(|b| b.transport.type_name())
            .collect();
        assert_eq!(types, ["sse", "streamable-http", "streamable-http"]);
    }

    #[test]
    fn errors_name_backend_and_field() {
        let errs = errors(
            r#"{
            "a": {"type": "stdio"},
            "b": {"type": "stdio", "command": "x", "args": "not-a-list"},
            "c": {"type": "stdio", "command": "x", "args": ["ok", 3]},
            "d": {"type": "sse", "url": "ftp://x"},
            "e": {"type": "builtin", "server": "nope"},
            "f": {"type": "warp", "command": "x"},
            "g": {"type": "stdio", "command": "x", "env": {"A": 1}},
            "h": {"type": "stdio", "command": "${MISSING}"},
            "i": "just a string"
        }"#,
        );
        let expect = [
            "backend 'a': field 'command' is required",
            "backend 'b': field 'args': expected a list of strings, got a string",
            "backend 'c': field 'args': expected a list of strings, item 1 is a number",
            "backend 'd': field 'url': expected an http:// or https:// URL, got 'ftp://x'",
            "backend 'e': field 'server': unknown built-in server 'nope'",
            "backend 'f': field 'type': unknown type 'warp'",
            "backend 'g': field 'env': expected string values, 'A' is a number",
            "backend 'h': field 'command': environment variable 'MISSING' is not set",
            "backend 'i': expected an object with its settings, got a string",
        ];
        assert_eq!(errs.len(), expect.len(), "{errs:#?}");
        for (err, want) in errs.iter().zip(expect) {
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn backend_names_must_be_prefix_safe() {
        for bad in ["a__b", "a_", "a b", "a.b", ""] {
            let text = format!(r#"{{"{bad}": {{"command": "x"}}}}"#);
            let errs = errors(&text);
            assert!(
                errs[0].contains("backend name") || errs[0].contains("empty"),
                "{errs:?}"
            );
        }
        ok(r#"{"Fs-2": {"command": "x"}}"#);
        // The original project's names: one underscore at a time is unambiguous.
        ok(r#"{"my_custom_tool": {"command": "x"}, "enscan_go": {"command": "y"}}"#);
    }

    #[test]
    fn duplicates_and_unknown_fields() {
        let loaded = ok(r#"{"a": {"command": "x"}, "b": {"command": "z"}, "a": {"command": "y"}}"#);
        let names: Vec<&str> = loaded
            .config
            .backends
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"], "the first place, the later definition");
        assert!(
            matches!(&loaded.config.backends[0].transport, Transport::Stdio(l) if l.command == "y")
        );
        assert_eq!(
            loaded.warnings,
            [
                "config: backend 'a' is defined twice (command 'x' and then command 'y'); the later definition is used"
            ]
        );
        let loaded = ok(r#"{"a": {"command": "x", "colour": "red"}}"#);
        assert_eq!(
            loaded.warnings,
            ["config: backend 'a': unknown field 'colour' for type 'stdio' (ignored)"]
        );
    }

    #[test]
    fn scope_defaults_to_shared_and_session_takes_an_idle_timeout() {
        let loaded = ok(r#"{
            "a": {"command": "x"},
            "b": {"command": "x", "scope": "session"},
            "c": {"type": "builtin", "server": "bash", "scope": "session", "idleTimeout": 30}
        }"#);
        let scopes: Vec<_> = loaded.config.backends.iter().map(|b| b.scope).collect();
        assert_eq!(
            scopes,
            [
                Scope::Shared,
                Scope::Session { idle: DEFAULT_IDLE },
                Scope::Session {
                    idle: Duration::from_secs(30)
                }
            ]
        );
        let errs = errors(
            r#"{"a": {"command": "x", "scope": "everyone"}, "b": {"command": "x", "idleTimeout": -1}}"#,
        );
        assert!(
            errs[0].contains("field 'scope': expected \"shared\" or \"session\""),
            "{errs:?}"
        );
        assert!(errs[1].contains("field 'idleTimeout'"), "{errs:?}");
    }

    #[test]
    fn prefix_defaults_to_the_name_and_may_be_empty() {
        let loaded = ok(
            r#"{"a": {"command": "x"}, "b": {"command": "x", "prefix": ""}, "c": {"command": "x", "prefix": "fs2"}}"#,
        );
        let prefixes: Vec<_> = loaded
            .config
            .backends
            .iter()
            .map(|b| b.prefix.as_str())
            .collect();
        assert_eq!(prefixes, ["a", "", "fs2"]);
        // A prefix follows the rule for names: one '_' at a time.
        ok(r#"{"a": {"command": "x", "prefix": "my_fs"}}"#);
        let errs = errors(r#"{"a": {"command": "x", "prefix": "my__fs"}}"#);
        assert!(errs[0].contains("field 'prefix'"), "{errs:?}");
    }

    #[test]
    fn timeouts_and_restart_policy() {
        let loaded = ok(r#"{
            "a": {"command": "x"},
            "b": {"command": "x", "timeout": 5, "toolTimeouts": {"slow": 60}, "restart": "never", "maxTimeout": 30},
            "c": {"type": "builtin", "server": "bash", "timeout": 300}
        }"#);
        let p: Vec<&Policy> = loaded.config.backends.iter().map(|b| &b.policy).collect();
        assert_eq!(*p[0], Policy::default());
        assert_eq!(p[1].timeout, Duration::from_secs(5));
        assert_eq!(p[1].timeout_for(Some("slow")), Duration::from_secs(60));
        assert_eq!(p[1].timeout_for(Some("other")), Duration::from_secs(5));
        assert_eq!(p[1].max_timeout, Duration::from_secs(30));
        assert!(!p[1].restart);
        assert_eq!(
            p[2].timeout,
            Duration::from_secs(305),
            "a built-in's command timeout plus grace"
        );
        let errs = errors(
            r#"{"a": {"command": "x", "restart": "sometimes"}, "b": {"command": "x", "toolTimeouts": {"t": 0}}}"#,
        );
        assert!(errs[0].contains("field 'restart'"), "{errs:?}");
        assert!(errs[1].contains("field 'toolTimeouts': 't'"), "{errs:?}");
    }

    #[test]
    fn the_schema_names_exactly_the_fields_the_parser_reads() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let keys = |v: &Value| {
            let mut k: Vec<String> = v["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        let mut settings: Vec<String> = settings::SETTINGS_FIELDS
            .iter()
            .map(|s| s.to_string())
            .collect();
        settings.sort();
        assert_eq!(keys(&schema["$defs"]["settings"]), settings);
        let mut fields: Vec<String> = [
            COMMON_FIELDS,
            STDIO_FIELDS,
            SSE_FIELDS,
            HTTP_FIELDS,
            BUILTIN_FIELDS,
            &["transport"],
        ]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect();
        fields.sort();
        fields.dedup();
        assert_eq!(keys(&schema["$defs"]["backend"]), fields);
        let servers: Vec<&str> = schema["$defs"]["backend"]["properties"]["server"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(servers, BUILTIN_SERVERS);
    }

    #[test]
    fn enabled_filters_and_descriptions() {
        let loaded = ok(r#"{
            "a": {"command": "x", "enabled": false},
            "b": {"command": "x", "tools": {"allow": ["read_*", "list"], "deny": ["read_secret*"]}, "descriptions": {"list": "Lists things."}}
        }"#);
        let b = &loaded.config.backends;
        assert!(!b[0].enabled && b[1].enabled);
        let v = &b[1].view;
        assert!(v.shows("read_file") && v.shows("list"));
        assert!(!v.shows("read_secret_key") && !v.shows("write_file"));
        assert_eq!(v.description("list"), Some("Lists things."));
        assert!(View::default().shows("anything"));
        let errs = errors(r#"{"a": {"command": "x", "enabled": "no", "tools": ["x"]}}"#);
        assert!(
            errs.iter().any(|e| e.contains("field 'enabled'")),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e.contains("field 'tools'")), "{errs:?}");
    }

    #[test]
    fn not_json_is_one_clear_error() {
        let errs = errors("{ nope");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("config: not valid JSON"), "{errs:?}");
        let errs = errors("[1,2]");
        assert!(errs[0].starts_with("config: not valid JSON"), "{errs:?}");
    }
}
