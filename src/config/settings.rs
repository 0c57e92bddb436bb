//! The gateway's own settings, as one table: each setting's config key, command-line
//! flag, kind (which checks its value the same way in the file and on the command line),
//! default and description. The table drives the config's `"gateway"` object, the flags
//! and their lines of `--help` (`cli.rs`), the merge (flag, then file, then default: `Merged`), the reload's report of
//! what changed, and the settings part of the JSON Schema. Adding a setting is one row
//! here and one use where it takes effect. Part of the pure config parser: no I/O.

use super::{Validator, kind, variable_names};
use log::LevelFilter;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a setting's value is, and how it is checked.
#[derive(Clone, Copy)]
pub enum Kind {
    /// A string (`${VAR}` expanded in the file).
    Text,
    Port,
    /// A log level name.
    Level,
    /// A whole number, at least `min`; `unit` follows "a whole number" in messages.
    Count {
        min: u64,
        unit: &'static str,
    },
    /// Whole seconds, at least `min`; `zero` says what 0 means when it is allowed.
    Seconds {
        min: u64,
        zero: &'static str,
    },
    /// true or false; its flag takes no value and sets `flag_sets`. `what` for messages.
    Bool {
        flag_sets: bool,
        what: &'static str,
    },
    /// Strings; the flag is repeated for more.
    List {
        what: &'static str,
    },
    /// One of these words.
    Choice {
        values: &'static [&'static str],
    },
}

/// A setting's default, for the merge and the schema.
#[derive(Clone, Copy)]
pub enum Fallback {
    /// None: the gateway works it out (or goes without).
    None,
    Num(u64),
    Text(&'static str),
    Bool(bool),
}

/// One row of the table.
pub struct Setting {
    /// The key in the config's `"gateway"` object.
    pub key: &'static str,
    pub flag: &'static str,
    pub kind: Kind,
    pub default: Fallback,
    /// What it does: the JSON Schema's description and the line of `--help`.
    pub help: &'static str,
    /// The flag's value in `--help` (`SECS`, `DIR`...); the kind's word unless a row says.
    pub value: &'static str,
}

const fn row(
    key: &'static str,
    flag: &'static str,
    kind: Kind,
    default: Fallback,
    help: &'static str,
) -> Setting {
    Setting {
        key,
        flag,
        kind,
        default,
        help,
        value: kind.value(),
    }
}

impl Setting {
    /// The row, its flag's value named `value` in `--help`.
    const fn takes(self, value: &'static str) -> Setting {
        Setting { value, ..self }
    }
}

impl Kind {
    /// The word `--help` shows for a flag's value.
    const fn value(&self) -> &'static str {
        match self {
            Kind::Text => "TEXT",
            Kind::Port => "PORT",
            Kind::Level => "LEVEL",
            Kind::Count { .. } => "N",
            Kind::Seconds { .. } => "SECS",
            Kind::Bool { .. } => "",
            Kind::List { .. } => "VALUE",
            Kind::Choice { .. } => "WORD",
        }
    }
}

const SECONDS: Kind = Kind::Seconds { min: 1, zero: "" };
const COUNT: Kind = Kind::Count { min: 1, unit: "" };
use Fallback::{Num, Text};

/// Every setting, in the order messages and the schema list them.
pub const TABLE: &[Setting] = &[
    row(
        "host",
        "--host",
        Kind::Text,
        Text("127.0.0.1"),
        "Address to listen on.",
    )
    .takes("HOST"),
    row(
        "port",
        "--port",
        Kind::Port,
        Num(9000),
        "Port to listen on; 0 picks a free one.",
    ),
    row(
        "token",
        "--token",
        Kind::Text,
        Fallback::None,
        "Bearer token clients must send; on a non-loopback host one is generated and printed when none is given.",
    )
    .takes("TOKEN"),
    row(
        "logLevel",
        "--log-level",
        Kind::Level,
        Text("info"),
        "How much goes to the log: off, critical, error, warning, info, debug or trace (critical and warning are the original Python gateway's names; critical logs what error does, and warn is taken for warning).",
    ),
    row(
        "logDir",
        "--log-dir",
        Kind::Text,
        Text("logs"),
        "Where the log and audit files go.",
    )
    .takes("DIR"),
    row(
        "logMaxSize",
        "--log-max-size",
        Kind::Count {
            min: 1,
            unit: " of MiB",
        },
        Num(100),
        "Size in MiB at which the log and audit files are rotated.",
    )
    .takes("MIB"),
    row(
        "logKeep",
        "--log-keep",
        Kind::Count { min: 0, unit: "" },
        Num(5),
        "Rotated log and audit files kept (NAME.1 newest).",
    ),
    row(
        "auditArguments",
        "--audit-arguments",
        Kind::Bool {
            flag_sets: true,
            what: "true or false",
        },
        Fallback::Bool(false),
        "Record each tool call's arguments in the audit log.",
    ),
    row(
        "maxSessions",
        "--max-sessions",
        COUNT,
        Num(10_000),
        "Sessions beyond this get 503.",
    ),
    row(
        "pageSize",
        "--page-size",
        COUNT,
        Num(500),
        "Most items in one page of an aggregated list.",
    ),
    row(
        "sessionIdle",
        "--session-idle",
        SECONDS,
        Num(1800),
        "End a Streamable HTTP session idle this long.",
    ),
    row(
        "sessionUnused",
        "--session-unused",
        SECONDS,
        Num(60),
        "End a session (either transport) that has sent no request but initialize this long after it opened; at the session limit the longest-open such session makes room for a new one, and failing that a Streamable HTTP session idle this long with no stream open and nothing in flight.",
    ),
    row(
        "initTimeout",
        "--init-timeout",
        SECONDS,
        Num(60),
        "Time a backend gets to start and list its tools.",
    ),
    row(
        "pingInterval",
        "--ping-interval",
        SECONDS,
        Num(30),
        "Ping a backend quiet this long.",
    ),
    row(
        "pingTimeout",
        "--ping-timeout",
        SECONDS,
        Num(10),
        "Restart a backend that does not answer a ping in time.",
    ),
    row(
        "sseKeepalive",
        "--sse-keepalive",
        SECONDS,
        Num(15),
        "Idle time before a keep-alive comment on a stream.",
    ),
    row(
        "allowOrigins",
        "--allow-origin",
        Kind::List {
            what: "a list of origins (strings)",
        },
        Fallback::None,
        "Browser origins accepted besides loopback ones ('*' for any).",
    )
    .takes("ORIGIN"),
    row(
        "inheritEnv",
        "--inherit-env",
        Kind::List {
            what: "a list of variable names or glob patterns (strings)",
        },
        Fallback::None,
        "Variables the processes backends start inherit besides the basic ones (PATH, HOME, USER, LANG, TMPDIR…; glob patterns); unset: all but those any backend's env, headers or args name. A backend's own 'inheritEnv' overrides it.",
    )
    .takes("PATTERN"),
    row(
        "headerTimeout",
        "--header-timeout",
        SECONDS,
        Num(60),
        "Time from a connection's first byte to the end of a request head (408 after); a new connection's first request must also arrive within 10 s of its opening.",
    ),
    row(
        "bodyTimeout",
        "--body-timeout",
        SECONDS,
        Num(60),
        "Time for a whole request body to arrive (408 after).",
    ),
    row(
        "connectionIdle",
        "--connection-idle",
        SECONDS,
        Num(75),
        "Close a kept-alive connection with no new request for this long. A write to a client must also move 64 KiB (or finish) within every period of this or 10 s, whichever is shorter, or the connection is closed.",
    ),
    row(
        "maxConnections",
        "--max-connections",
        COUNT,
        Fallback::None,
        "Client connections open at once; beyond them new ones get 503 at once. Default: what the open-file limit allows, at most 20000.",
    ),
    row(
        "startupWait",
        "--startup-wait",
        Kind::Seconds {
            min: 0,
            zero: " (0: lists do not wait)",
        },
        Num(30),
        "How long tools/list, prompts/list, resources/list and resources/templates/list wait, right after the start, for every backend's first start to finish (ready or failed), so a client that lists once sees everything; 0: they do not wait.",
    ),
    row(
        "start",
        "--start",
        Kind::Choice {
            values: &["at-launch", "on-demand"],
        },
        Text("at-launch"),
        "When backends without a 'start' of their own run: at-launch (from the start, for as long as the gateway runs) or on-demand (only while a request needs them; their lists come from the catalogue cache).",
    )
    .takes("WHEN"),
    row(
        "idleStop",
        "--idle-stop",
        SECONDS,
        Num(300),
        "An on-demand backend stops this long after the last request that needed it ends (a backend's own 'idleStop' overrides it).",
    ),
    row(
        "keepWrapper",
        "--keep-wrapper",
        Kind::Bool {
            flag_sets: true,
            what: "true (npx's process stays) or false",
        },
        Fallback::Bool(false),
        "Backends started with npx (or npm exec) keep npm's process for as long as their server runs; by default the program npm started is run directly from a backend's second start on (a backend's own 'keepWrapper' overrides it).",
    ),
    row(
        "stateDir",
        "--state-dir",
        Kind::Text,
        Fallback::None,
        "Where the catalogue cache is kept (owner-only). Default: 'state' beside the log directory.",
    )
    .takes("DIR"),
    row(
        "prefix",
        "--no-prefix",
        Kind::Bool {
            flag_sets: false,
            what: "true (names are '<backend>__<name>') or false (names are the backends' own)",
        },
        Fallback::Bool(true),
        "Names are '<backend>__<name>'; false (the flag): every backend without its own 'prefix' exposes its tools, prompts and resources under their own names (as the original MCP-Gateway did), and a name two backends share goes to the one earlier in the file, with a warning.",
    ),
];

/// The row of a config key.
pub fn by_key(key: &str) -> Option<&'static Setting> {
    TABLE.iter().find(|s| s.key == key)
}

/// The row of a command-line flag (`--name`).
pub fn by_flag(flag: &str) -> Option<&'static Setting> {
    TABLE.iter().find(|s| s.flag == flag)
}

/// The keys of `"gateway"`, for the error messages.
pub fn keys() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|s| s.key)
}

/// A setting's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Text(String),
    /// Counts, ports and seconds.
    Num(u64),
    Bool(bool),
    List(Vec<String>),
    Level(crate::logging::LogLevel),
}

impl Kind {
    /// What it takes, for messages: "a whole number of seconds, at least 1".
    pub fn what(&self) -> String {
        match self {
            Kind::Text => "a string".into(),
            Kind::Port => "a port number from 0 to 65535".into(),
            Kind::Level => "a log level".into(),
            Kind::Count { min: 0, unit } => format!("a whole number{unit}"),
            Kind::Count { min, unit } => format!("a whole number{unit}, at least {min}"),
            Kind::Seconds { min: 0, zero } => format!("a whole number of seconds{zero}"),
            Kind::Seconds { min, zero } => {
                format!("a whole number of seconds{zero}, at least {min}")
            }
            Kind::Bool { what, .. } | Kind::List { what } => what.to_string(),
            Kind::Choice { values } => format!("one of {}", values.join(", ")),
        }
    }

    fn min(&self) -> u64 {
        match self {
            Kind::Count { min, .. } | Kind::Seconds { min, .. } => *min,
            _ => 0,
        }
    }

    /// A value from the command line; the error says what was expected and what came.
    pub fn read_text(&self, text: &str) -> Result<Val, String> {
        let refused = || format!("expected {}, got '{text}'", self.what());
        match self {
            Kind::Text => Ok(Val::Text(text.to_string())),
            Kind::Choice { values } if values.contains(&text) => Ok(Val::Text(text.to_string())),
            Kind::Choice { .. } => Err(refused()),
            Kind::List { .. } => Ok(Val::List(vec![text.to_string()])),
            Kind::Level => crate::logging::parse_level(text).map(Val::Level),
            Kind::Bool { .. } => match text {
                "true" => Ok(Val::Bool(true)),
                "false" => Ok(Val::Bool(false)),
                _ => Err(refused()),
            },
            Kind::Port => text
                .trim()
                .parse::<u16>()
                .map(|p| Val::Num(p.into()))
                .map_err(|_| refused()),
            Kind::Count { .. } | Kind::Seconds { .. } => match text.trim().parse::<u64>() {
                Ok(n) if n >= self.min() => Ok(Val::Num(n)),
                _ => Err(refused()),
            },
        }
    }

    /// A value from the config file (strings already expanded); the error says what was
    /// expected and what came.
    fn read_json(&self, value: &Value) -> Result<Val, String> {
        let refused = || {
            let got = value.to_string();
            format!(
                "expected {}, got {}",
                self.what(),
                crate::lines::clip(&got, 80)
            )
        };
        match (self, value) {
            (Kind::Text | Kind::Level | Kind::Choice { .. }, Value::String(t)) => self.read_text(t),
            (Kind::Bool { .. }, Value::Bool(b)) => Ok(Val::Bool(*b)),
            (Kind::List { .. }, Value::Array(items)) if items.iter().all(Value::is_string) => {
                Ok(Val::List(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect(),
                ))
            }
            (Kind::Port, v) if v.as_u64().is_some_and(|p| p <= u16::MAX.into()) => {
                Ok(Val::Num(v.as_u64().unwrap_or_default()))
            }
            (Kind::Count { .. } | Kind::Seconds { .. }, v)
                if v.as_u64().is_some_and(|n| n >= self.min()) =>
            {
                Ok(Val::Num(v.as_u64().unwrap_or_default()))
            }
            (Kind::Text, other) | (Kind::Level, other) => {
                Err(format!("expected a string, got {}", kind(other)))
            }
            _ => Err(refused()),
        }
    }

    /// Its JSON Schema, without description and default.
    fn schema(&self) -> Value {
        match self {
            Kind::Text => json!({"type": "string"}),
            Kind::Port => json!({"type": "integer", "minimum": 0, "maximum": 65535}),
            Kind::Level => json!({"enum": crate::logging::LEVEL_NAMES}),
            Kind::Seconds { min: 1, .. } => json!({"$ref": "#/$defs/seconds"}),
            Kind::Count { min, .. } | Kind::Seconds { min, .. } => {
                json!({"type": "integer", "minimum": min})
            }
            Kind::Bool { .. } => json!({"type": "boolean"}),
            Kind::List { .. } => json!({"$ref": "#/$defs/strings"}),
            Kind::Choice { values } => json!({"enum": values}),
        }
    }
}

impl Setting {
    /// Its JSON Schema property.
    pub fn schema(&self) -> Value {
        let mut s = self.kind.schema();
        let given = match self.key {
            "token" => format!("{} or MCP_GATEWAY_TOKEN", self.flag),
            _ => self.flag.to_string(),
        };
        s["description"] = Value::from(format!("{} Command line: {given}.", self.help));
        match self.default {
            Fallback::None => {}
            Fallback::Num(n) => s["default"] = n.into(),
            Fallback::Text(t) => s["default"] = t.into(),
            Fallback::Bool(b) => s["default"] = b.into(),
        }
        s
    }
}

/// Settings from one source (the config file's `"gateway"` object, or the command line),
/// by key; a setting not given has no entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    values: BTreeMap<&'static str, Val>,
    /// The environment variables the `token` setting names (`${VAR}`): the gateway's own
    /// secrets, which no backend inherits.
    pub secret_variables: Vec<String>,
    /// Named views of the catalogue (`profiles.rs`), by name.
    pub profiles: Vec<super::profiles::Profile>,
    /// Client tokens and the profiles each opens, by label.
    pub tokens: Vec<super::profiles::ClientToken>,
}

impl Settings {
    /// Sets `key` (a list grows).
    pub fn set(&mut self, key: &'static str, value: Val) {
        debug_assert!(by_key(key).is_some(), "'{key}' is in the table");
        match (self.values.get_mut(key), value) {
            (Some(Val::List(items)), Val::List(more)) => items.extend(more),
            (_, value) => {
                self.values.insert(key, value);
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Val> {
        debug_assert!(by_key(key).is_some(), "'{key}' is in the table");
        self.values.get(key)
    }

    pub fn text(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Val::Text(t)) => Some(t),
            _ => None,
        }
    }

    pub fn num(&self, key: &str) -> Option<u64> {
        match self.get(key) {
            Some(Val::Num(n)) => Some(*n),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn secs(&self, key: &str) -> Option<Duration> {
        self.num(key).map(Duration::from_secs)
    }

    pub fn flag(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Some(Val::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn list(&self, key: &str) -> &[String] {
        match self.get(key) {
            Some(Val::List(items)) => items,
            _ => &[],
        }
    }

    pub fn level(&self, key: &str) -> Option<crate::logging::LogLevel> {
        match self.get(key) {
            Some(Val::Level(l)) => Some(*l),
            _ => None,
        }
    }

    /// The settings (by their config names) that differ between `self` and `other`.
    pub fn changed_fields(&self, other: &Settings) -> Vec<&'static str> {
        let mut changed: Vec<&'static str> = keys()
            .filter(|k| self.values.get(k) != other.values.get(k))
            .collect();
        if self.profiles != other.profiles {
            changed.push("profiles");
        }
        if self.tokens != other.tokens {
            changed.push("tokens");
        }
        changed
    }
}

/// The command line's settings over the config file's over the defaults.
pub struct Merged<'a> {
    pub flags: &'a Settings,
    pub file: &'a Settings,
}

impl Merged<'_> {
    fn given(&self, key: &str) -> Option<&Val> {
        self.flags.get(key).or(self.file.get(key))
    }

    /// Whether the flag or the file gave `key` (rather than the default).
    pub fn is_set(&self, key: &str) -> bool {
        Merged::default(key);
        self.given(key).is_some()
    }

    /// `key`'s default. Every key the code reads is a row of the table: a typo fails the
    /// first start that reads it, in every test that starts the gateway.
    fn default(key: &str) -> Fallback {
        match by_key(key) {
            Some(row) => row.default,
            None => panic!("no setting '{key}' in the settings table"),
        }
    }

    pub fn num(&self, key: &str) -> Option<u64> {
        let given = self.flags.num(key).or(self.file.num(key));
        match Merged::default(key) {
            Fallback::Num(n) => Some(given.unwrap_or(n)),
            _ => given,
        }
    }

    pub fn secs(&self, key: &str) -> Duration {
        Duration::from_secs(self.num(key).unwrap_or_default())
    }

    /// A count (sessions, items, files), as the platform's size.
    pub fn count(&self, key: &str) -> usize {
        usize::try_from(self.num(key).unwrap_or_default()).unwrap_or(usize::MAX)
    }

    pub fn text(&self, key: &str) -> Option<String> {
        match (self.given(key), Merged::default(key)) {
            (Some(Val::Text(t)), _) => Some(t.clone()),
            (None, Fallback::Text(t)) => Some(t.to_string()),
            _ => None,
        }
    }

    pub fn flag(&self, key: &str) -> bool {
        match (self.given(key), Merged::default(key)) {
            (Some(Val::Bool(b)), _) => *b,
            (None, Fallback::Bool(b)) => b,
            _ => false,
        }
    }

    pub fn list(&self, key: &str) -> Vec<String> {
        Merged::default(key);
        let flags = self.flags.list(key);
        if flags.is_empty() {
            self.file.list(key)
        } else {
            flags
        }
        .to_vec()
    }

    pub fn level(&self, key: &str) -> crate::logging::LogLevel {
        let default = match Merged::default(key) {
            Fallback::Text(t) => crate::logging::parse_level(t).ok(),
            _ => None,
        };
        self.flags
            .level(key)
            .or(self.file.level(key))
            .or(default)
            .unwrap_or(crate::logging::LogLevel {
                filter: LevelFilter::Info,
                name: "INFO",
            })
    }
}

impl Validator<'_> {
    pub(super) fn settings(&mut self, value: &Value) -> Settings {
        const CTX: &str = "config: 'gateway'";
        let mut s = Settings::default();
        let mut token_variables = Vec::new();
        let Some(obj) = value.as_object() else {
            self.error(format!(
                "{CTX} (the gateway's own settings; a backend cannot take this name) must be an object, got {}",
                kind(value)
            ));
            return s;
        };
        for (key, value) in obj {
            if key == "profiles" {
                s.profiles = self.profiles(value);
                continue;
            }
            if key == "tokens" {
                let mut secrets = Vec::new();
                s.tokens = self.tokens(value, &mut secrets);
                token_variables = secrets;
                continue;
            }
            let Some(setting) = by_key(key) else {
                self.warn(format!(
                    "{CTX}: unknown setting '{key}' (ignored; known: {}, profiles, tokens)",
                    keys().collect::<Vec<_>>().join(", ")
                ));
                continue;
            };
            // Strings are expanded first (`${VAR}`), then checked like a flag's value.
            let expanded = match value {
                Value::String(t) => match self.expand(CTX, key, t) {
                    Some(t) => Value::String(t),
                    None => continue,
                },
                Value::Array(items) if matches!(setting.kind, Kind::List { .. }) => {
                    let mut out = Vec::new();
                    for item in items {
                        match item {
                            // A variable that cannot be expanded is an error already.
                            Value::String(t) => {
                                out.extend(self.expand(CTX, key, t).map(Value::String));
                            }
                            other => out.push(other.clone()),
                        }
                    }
                    Value::Array(out)
                }
                other => other.clone(),
            };
            match setting.kind.read_json(&expanded) {
                Ok(Val::Text(t)) if key == "token" && t.is_empty() => {}
                Ok(v) => s.set(setting.key, v),
                Err(e) => self.error(format!("{CTX}: field '{key}': {e}")),
            }
        }
        if let Some(token) = obj.get("token").and_then(Value::as_str) {
            s.secret_variables = variable_names(token);
        }
        s.secret_variables.extend(token_variables);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{errors, ok};
    use super::super::{parse, variable_names};
    use super::*;

    #[test]
    fn the_gateway_key_holds_settings_in_both_shapes() {
        let loaded = ok(r#"{"gateway": {"token": "${TOKEN}"}, "a": {"command": "x"}}"#);
        assert_eq!(loaded.config.settings.text("token"), Some("s3cret"));
        assert_eq!(loaded.config.backends.len(), 1);
        let loaded = ok(
            r#"{"$schema": "./config.schema.json", "gateway": {"token": "t"}, "mcpServers": {"a": {"command": "x"}}}"#,
        );
        assert_eq!(loaded.config.settings.text("token"), Some("t"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let errs = errors(r#"{"gateway": {"command": "x", "token": 5}}"#);
        assert!(
            errs[0].contains("'gateway': field 'token': expected a string"),
            "{errs:?}"
        );
    }

    #[test]
    fn the_variables_the_token_setting_reads_are_known() {
        let loaded = parse(
            r#"{"gateway": {"token": "${GW_TOKEN}${GW_SALT:-x}", "logDir": "${HOME}/logs"}, "a": {"command": "x"}}"#,
            &|_| Some("v".into()),
        )
        .unwrap();
        assert_eq!(
            loaded.config.settings.secret_variables,
            ["GW_TOKEN", "GW_SALT"]
        );
        assert_eq!(variable_names("$${NOT} ${A} ${B:-d} ${}"), ["A", "B"]);
    }

    #[test]
    fn gateway_settings_are_typed_and_named_in_errors() {
        let loaded = ok(r#"{"gateway": {"host": "${HOST:-0.0.0.0}", "port": 9100,
            "logLevel": "debug", "logDir": "/var/log/gw", "auditArguments": true,
            "maxSessions": 50, "pageSize": 40, "sessionIdle": 60, "initTimeout": 90,
            "pingInterval": 5, "pingTimeout": 2, "sseKeepalive": 10,
            "allowOrigins": ["https://a.example"]}, "a": {"command": "x"}}"#);
        let s = loaded.config.settings;
        assert_eq!(s.text("host"), Some("0.0.0.0"));
        assert_eq!(s.num("port"), Some(9100));
        assert_eq!(
            s.level("logLevel").map(|l| l.filter),
            Some(log::LevelFilter::Debug)
        );
        assert_eq!(s.text("logDir"), Some("/var/log/gw"));
        assert_eq!(s.flag("auditArguments"), Some(true));
        assert_eq!(
            (s.num("maxSessions"), s.num("pageSize")),
            (Some(50), Some(40))
        );
        assert_eq!(s.secs("sessionIdle"), Some(Duration::from_secs(60)));
        assert_eq!(s.secs("initTimeout"), Some(Duration::from_secs(90)));
        assert_eq!(s.secs("pingInterval"), Some(Duration::from_secs(5)));
        assert_eq!(s.secs("pingTimeout"), Some(Duration::from_secs(2)));
        assert_eq!(s.secs("sseKeepalive"), Some(Duration::from_secs(10)));
        assert_eq!(s.list("allowOrigins"), ["https://a.example"]);
        let errs = errors(
            r#"{"gateway": {"port": 70000, "logLevel": "loud", "maxSessions": 0,
                "sessionIdle": "1h", "allowOrigins": "x", "auditArguments": 1}}"#,
        );
        for expected in [
            "field 'port': expected a port number from 0 to 65535, got 70000",
            "field 'logLevel': expected one of",
            "field 'maxSessions': expected a whole number, at least 1, got 0",
            "field 'sessionIdle': expected a whole number of seconds",
            "field 'allowOrigins': expected a list",
            "field 'auditArguments': expected true or false",
        ] {
            assert!(
                errs.iter()
                    .any(|e| e.starts_with("config: 'gateway'") && e.contains(expected)),
                "{expected}: {errs:?}"
            );
        }
        let mut other = s.clone();
        other.set("port", Val::Num(1));
        other.set("token", Val::Text("t".into()));
        assert_eq!(s.changed_fields(&other), ["port", "token"]);
        assert!(s.changed_fields(&s).is_empty());
        let loaded = ok(r#"{"gateway": {"listen": 1}, "a": {"command": "x"}}"#);
        assert!(
            loaded.warnings[0].contains("unknown setting 'listen' (ignored; known: host, port"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn the_http_layers_limits_are_settings() {
        let loaded = ok(r#"{"gateway": {"headerTimeout": 5, "bodyTimeout": 30,
            "connectionIdle": 10, "maxConnections": 500}, "a": {"command": "x"}}"#);
        let s = loaded.config.settings;
        assert_eq!(s.secs("headerTimeout"), Some(Duration::from_secs(5)));
        assert_eq!(s.secs("bodyTimeout"), Some(Duration::from_secs(30)));
        assert_eq!(s.secs("connectionIdle"), Some(Duration::from_secs(10)));
        assert_eq!(s.num("maxConnections"), Some(500));
        let errs = errors(r#"{"gateway": {"headerTimeout": 0, "maxConnections": "many"}}"#);
        for expected in [
            "field 'headerTimeout': expected a whole number of seconds",
            "field 'maxConnections': expected a whole number",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(expected)),
                "{expected}: {errs:?}"
            );
        }
    }
}
