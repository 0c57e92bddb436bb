//! `config.json`: parsing, `${VAR}` expansion and validation.
//!
//! Pure: takes the file's text and a variable lookup, returns the backends in file order or
//! every problem found, each naming the backend key and field. No I/O, no threads, no
//! process starting: that is the `backend` module's job.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;

mod near;
mod original;
pub mod profiles;
pub mod settings;
mod shapes;
mod vars;
pub use settings::{Kind, Merged, Settings, Val};
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
    /// What a process it starts inherits of the gateway's environment.
    pub environment: Environment,
    /// `"start"`: at launch, or on demand; None: the gateway's `start` setting.
    pub on_demand: Option<bool>,
    /// `"idleStop"`: how long an on-demand backend runs after its last request ends;
    /// None: the gateway's `idleStop` setting.
    pub idle_stop: Option<Duration>,
    /// `"keepWrapper"`: an `npx` backend keeps npm's process (`npm.rs`); None: the
    /// gateway's `keepWrapper` setting.
    pub keep_wrapper: Option<bool>,
}

/// What a process the gateway starts for a backend (its server, a local SSE server, a
/// built-in server and every command that runs) inherits of the gateway's environment,
/// besides what the backend's own `env` sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Environment {
    /// The variables any backend's `env`, `headers` or `args` name (`${VAR}`), the basic
    /// ones aside: kept from every process, so one backend's secret is not every
    /// backend's (a backend gets a value only through its own `env`).
    pub withheld: Vec<String>,
    /// `inheritEnv`: when set, only the basic variables and those matching these glob
    /// patterns are inherited.
    pub only: Option<Vec<String>>,
}

/// Variables every process is given (unless `withheld` by name in none of them): what
/// programs need to run at all, as the official SDKs' stdio transports pass by default,
/// and their Windows counterparts.
pub const BASIC_VARIABLES: &[&str] = &[
    "HOME",
    "LOGNAME",
    "PATH",
    "SHELL",
    "TERM",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "APPDATA",
    "HOMEDRIVE",
    "HOMEPATH",
    "LOCALAPPDATA",
    "PATHEXT",
    "PROCESSOR_ARCHITECTURE",
    "PROGRAMFILES",
    "SYSTEMDRIVE",
    "SYSTEMROOT",
    "TEMP",
    "TMP",
    "USERNAME",
    "USERPROFILE",
    "WINDIR",
    "COMSPEC",
];

impl Environment {
    /// Whether a process inherits the gateway's variable `name`.
    pub fn inherits(&self, name: &str) -> bool {
        let basic = BASIC_VARIABLES.iter().any(|b| b.eq_ignore_ascii_case(name));
        if self.withheld.iter().any(|w| w == name) {
            return false;
        }
        basic
            || self
                .only
                .as_ref()
                .is_none_or(|only| only.iter().any(|p| crate::glob::glob(p, name)))
    }
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
    /// Added to what it inherits of the gateway's environment.
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    /// What it inherits (set from its backend's `environment` when it is started).
    pub environment: Environment,
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

/// The JSON Schema of the config file (`--print-config-schema`, for editors and CI):
/// `config.schema.json` with the gateway's settings filled in from their table.
pub fn schema() -> String {
    const TEXT: &str = include_str!("config.schema.json");
    let mut rows: Vec<String> = settings::TABLE
        .iter()
        .map(|s| format!("        \"{}\": {}", s.key, s.schema()))
        .collect();
    rows.push(
        r##"        "tokens": {"description": "Client tokens, by label (which names them in logs and the audit): each opens only the profiles it names.", "type": "object", "additionalProperties": {"$ref": "#/$defs/clientToken"}}"##
            .into(),
    );
    rows.push(
        r##"        "profiles": {"description": "Named views of the catalogue, by name.", "type": "object", "propertyNames": {"pattern": "^[A-Za-z0-9_-]{1,64}$"}, "additionalProperties": {"$ref": "#/$defs/profile"}}"##
            .into(),
    );
    TEXT.replace(
        "\"properties\": \"SETTINGS\"",
        &format!("\"properties\": {{\n{}\n      }}", rows.join(",\n")),
    )
}

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
        referenced: std::collections::BTreeSet::new(),
    };
    let (settings, entries) = v.shape(top);
    v.no_prefix = cx.no_prefix || settings.flag("prefix") == Some(false);
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
    // What any backend names in its env, headers or args is kept from every process's
    // inherited environment (the gateway-wide `inheritEnv` is applied as they start).
    let withheld: Vec<String> = v
        .referenced
        .iter()
        .filter(|n| !BASIC_VARIABLES.iter().any(|b| b.eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    for b in &mut backends {
        b.environment.withheld = withheld.clone();
    }
    v.check_profiles(&settings.profiles, &backends);
    v.check_tokens(&settings.tokens, &settings.profiles);
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
    /// The variables backends' `env`, `headers` and `args` name.
    referenced: std::collections::BTreeSet<String>,
}

mod fields;
#[cfg(test)]
use fields::{BUILTIN_FIELDS, COMMON_FIELDS, HTTP_FIELDS, SSE_FIELDS, STDIO_FIELDS};

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
mod tests;
