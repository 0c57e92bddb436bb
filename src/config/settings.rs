//! The config's `"gateway"` object: the gateway's own settings, their names, how each is
//! validated, and which of them changed between two versions. Part of the pure config
//! parser (`config.rs`): no I/O.

use super::{Validator, kind, variable_names};
use serde_json::Value;
use std::time::Duration;

/// Gateway settings from the config file's `"gateway"` object; command-line flags take
/// precedence. `None` (or empty) means "not set here".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// Bearer token clients must send (`${VAR}` expanded).
    pub token: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub log_level: Option<log::LevelFilter>,
    pub log_dir: Option<String>,
    /// Size (MiB) at which the log and audit files rotate, and how many old ones are kept.
    pub log_max_size: Option<u64>,
    pub log_keep: Option<usize>,
    pub audit_arguments: Option<bool>,
    pub max_sessions: Option<usize>,
    pub page_size: Option<usize>,
    pub session_idle: Option<Duration>,
    /// A session that sent no request but `initialize` this long after it opened is ended.
    pub session_unused: Option<Duration>,
    pub init_timeout: Option<Duration>,
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Option<Duration>,
    pub sse_keepalive: Option<Duration>,
    pub allow_origins: Vec<String>,
    /// The HTTP layer's limits: time for a request head, for a body, for an idle
    /// kept-alive connection; connections open at once.
    pub header_timeout: Option<Duration>,
    pub body_timeout: Option<Duration>,
    pub connection_idle: Option<Duration>,
    pub max_connections: Option<usize>,
    /// How long list requests wait for every backend's first start (0: not at all).
    pub startup_wait: Option<Duration>,
    /// `false`: tools, prompts and resources keep their own names unless a backend gives
    /// a `prefix` (as the original MCP-Gateway exposed them).
    pub prefix: Option<bool>,
    /// The environment variables the `token` setting names (`${VAR}`): the gateway's own
    /// secrets, which no backend inherits.
    pub secret_variables: Vec<String>,
}

impl Settings {
    /// The settings (by their config names) that differ between `self` and `other`.
    pub fn changed_fields(&self, other: &Settings) -> Vec<&'static str> {
        let same = [
            self.host == other.host,
            self.port == other.port,
            self.token == other.token,
            self.log_level == other.log_level,
            self.log_dir == other.log_dir,
            self.log_max_size == other.log_max_size,
            self.log_keep == other.log_keep,
            self.audit_arguments == other.audit_arguments,
            self.max_sessions == other.max_sessions,
            self.page_size == other.page_size,
            self.session_idle == other.session_idle,
            self.session_unused == other.session_unused,
            self.init_timeout == other.init_timeout,
            self.ping_interval == other.ping_interval,
            self.ping_timeout == other.ping_timeout,
            self.sse_keepalive == other.sse_keepalive,
            self.allow_origins == other.allow_origins,
            self.header_timeout == other.header_timeout,
            self.body_timeout == other.body_timeout,
            self.connection_idle == other.connection_idle,
            self.max_connections == other.max_connections,
            self.startup_wait == other.startup_wait,
            self.prefix == other.prefix,
        ];
        SETTINGS_FIELDS
            .iter()
            .zip(same)
            .filter(|(_, same)| !same)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// The keys of `"gateway"`, for the error messages and the JSON Schema.
pub const SETTINGS_FIELDS: &[&str] = &[
    "host",
    "port",
    "token",
    "logLevel",
    "logDir",
    "logMaxSize",
    "logKeep",
    "auditArguments",
    "maxSessions",
    "pageSize",
    "sessionIdle",
    "sessionUnused",
    "initTimeout",
    "pingInterval",
    "pingTimeout",
    "sseKeepalive",
    "allowOrigins",
    "headerTimeout",
    "bodyTimeout",
    "connectionIdle",
    "maxConnections",
    "startupWait",
    "prefix",
];

impl Validator<'_> {
    pub(super) fn settings(&mut self, value: &Value) -> Settings {
        const CTX: &str = "config: 'gateway'";
        let mut s = Settings::default();
        let Some(obj) = value.as_object() else {
            self.error(format!(
                "{CTX} (the gateway's own settings; a backend cannot take this name) must be an object, got {}",
                kind(value)
            ));
            return s;
        };
        let secs = |v: &mut Self, key: &str| {
            v.number(CTX, obj, key, "a whole number of seconds", 1)
                .flatten()
                .map(Duration::from_secs)
        };
        for (key, value) in obj {
            match key.as_str() {
                "token" => s.token = self.setting_text(key, value).filter(|t| !t.is_empty()),
                "host" => s.host = self.setting_text(key, value),
                "logDir" => s.log_dir = self.setting_text(key, value),
                "logMaxSize" => s.log_max_size = self.number(CTX, obj, key, "a whole number of MiB", 1).flatten(),
                "logKeep" => {
                    s.log_keep = self.number(CTX, obj, key, "a whole number", 0).flatten().map(|n| n as usize);
                }
                "logLevel" => {
                    s.log_level = self.setting_text(key, value).and_then(|l| {
                        crate::logging::parse_level(&l)
                            .map_err(|e| self.error(format!("{CTX}: field 'logLevel': {e}")))
                            .ok()
                    });
                }
                "port" => match value.as_u64().and_then(|p| u16::try_from(p).ok()) {
                    Some(p) => s.port = Some(p),
                    None => self.error(format!(
                        "{CTX}: field 'port': expected a port number from 0 to 65535, got {value}"
                    )),
                },
                "auditArguments" => match value {
                    Value::Bool(b) => s.audit_arguments = Some(*b),
                    other => self.error(format!(
                        "{CTX}: field 'auditArguments': expected true or false, got {}",
                        kind(other)
                    )),
                },
                "maxSessions" => {
                    s.max_sessions = self.number(CTX, obj, key, "a whole number", 1).flatten().map(|n| n as usize);
                }
                "pageSize" => {
                    s.page_size = self.number(CTX, obj, key, "a whole number", 1).flatten().map(|n| n as usize);
                }
                "sessionIdle" => s.session_idle = secs(self, key),
                "sessionUnused" => s.session_unused = secs(self, key),
                "initTimeout" => s.init_timeout = secs(self, key),
                "pingInterval" => s.ping_interval = secs(self, key),
                "pingTimeout" => s.ping_timeout = secs(self, key),
                "sseKeepalive" => s.sse_keepalive = secs(self, key),
                "headerTimeout" => s.header_timeout = secs(self, key),
                "bodyTimeout" => s.body_timeout = secs(self, key),
                "connectionIdle" => s.connection_idle = secs(self, key),
                "maxConnections" => {
                    s.max_connections = self.number(CTX, obj, key, "a whole number", 1).flatten().map(|n| n as usize);
                }
                "startupWait" => {
                    s.startup_wait = self
                        .number(CTX, obj, key, "a whole number of seconds (0: lists do not wait)", 0)
                        .flatten()
                        .map(Duration::from_secs);
                }
                "prefix" => match value {
                    Value::Bool(b) => s.prefix = Some(*b),
                    other => self.error(format!(
                        "{CTX}: field 'prefix': expected true (names are '<backend>__<name>') or false (names are the backends' own), got {}",
                        kind(other)
                    )),
                },
                "allowOrigins" => match value {
                    Value::Array(items) if items.iter().all(Value::is_string) => {
                        s.allow_origins = items
                            .iter()
                            .filter_map(|i| self.setting_text(key, i))
                            .collect();
                    }
                    other => self.error(format!(
                        "{CTX}: field 'allowOrigins': expected a list of origins (strings), got {other}"
                    )),
                },
                other => self.warn(format!(
                    "{CTX}: unknown setting '{other}' (ignored; known: {})",
                    SETTINGS_FIELDS.join(", ")
                )),
            }
        }
        if let Some(token) = obj.get("token").and_then(Value::as_str) {
            s.secret_variables = variable_names(token);
        }
        s
    }

    /// A string setting of `"gateway"`, `${VAR}` expanded.
    fn setting_text(&mut self, key: &str, value: &Value) -> Option<String> {
        match value {
            Value::String(t) => self.expand("config: 'gateway'", key, t),
            other => {
                self.error(format!(
                    "config: 'gateway': field '{key}': expected a string, got {}",
                    kind(other)
                ));
                None
            }
        }
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
        assert_eq!(loaded.config.settings.token.as_deref(), Some("s3cret"));
        assert_eq!(loaded.config.backends.len(), 1);
        let loaded = ok(
            r#"{"$schema": "./config.schema.json", "gateway": {"token": "t"}, "mcpServers": {"a": {"command": "x"}}}"#,
        );
        assert_eq!(loaded.config.settings.token.as_deref(), Some("t"));
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
        assert_eq!(s.host.as_deref(), Some("0.0.0.0"));
        assert_eq!(s.port, Some(9100));
        assert_eq!(s.log_level, Some(log::LevelFilter::Debug));
        assert_eq!(s.log_dir.as_deref(), Some("/var/log/gw"));
        assert_eq!(s.audit_arguments, Some(true));
        assert_eq!((s.max_sessions, s.page_size), (Some(50), Some(40)));
        assert_eq!(s.session_idle, Some(Duration::from_secs(60)));
        assert_eq!(s.init_timeout, Some(Duration::from_secs(90)));
        assert_eq!(s.ping_interval, Some(Duration::from_secs(5)));
        assert_eq!(s.ping_timeout, Some(Duration::from_secs(2)));
        assert_eq!(s.sse_keepalive, Some(Duration::from_secs(10)));
        assert_eq!(s.allow_origins, vec!["https://a.example"]);
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
        let other = Settings {
            port: Some(1),
            token: Some("t".into()),
            ..s.clone()
        };
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
        assert_eq!(s.header_timeout, Some(Duration::from_secs(5)));
        assert_eq!(s.body_timeout, Some(Duration::from_secs(30)));
        assert_eq!(s.connection_idle, Some(Duration::from_secs(10)));
        assert_eq!(s.max_connections, Some(500));
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
