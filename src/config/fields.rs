//! One backend's entry: its type, its fields for that type, and the fields every type
//! takes (policy, view, scope, prefix), each checked with an error naming the field.

use super::*;

/// Fields every type takes.
pub(super) const COMMON_FIELDS: &[&str] = &[
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
    "inheritEnv",
    "start",
    "idleStop",
    "keepWrapper",
];
pub(super) const STDIO_FIELDS: &[&str] = &["command", "args", "env", "cwd"];
pub(super) const SSE_FIELDS: &[&str] = &["url", "command", "args", "env", "cwd", "startupTimeout"];
pub(super) const HTTP_FIELDS: &[&str] = &["url", "headers"];
pub(super) const BUILTIN_FIELDS: &[&str] = &["server", "maxOutput", "cwd", "env", "allow", "deny"];

impl Validator<'_> {
    pub(super) fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    pub(super) fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    pub(super) fn backend(&mut self, name: &str, value: &Value) -> Option<BackendSpec> {
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
                let hint = ["command", "url", "server", "type"]
                    .iter()
                    .map(|f| super::near::missing_hint(f, obj.keys()))
                    .find(|h| !h.is_empty())
                    .unwrap_or_default();
                self.error(format!(
                    "{ctx}: field 'type' is missing and cannot be inferred: give 'type' (stdio, sse, streamable-http, builtin), or 'command' for a stdio server, or 'url' for an HTTP one{hint}"
                ));
                return None;
            }
        };
        for key in obj.keys() {
            let known = fields.contains(&key.as_str())
                || COMMON_FIELDS.contains(&key.as_str())
                || (key == "transport" && type_field == "transport");
            if !known {
                let all: Vec<&str> = fields.iter().chain(COMMON_FIELDS).copied().collect();
                let hint = super::near::meant(key, &all)
                    .map(|m| format!("; did you mean '{m}'?"))
                    .unwrap_or_default();
                self.warn(format!(
                    "{ctx}: unknown field '{key}' for type '{}' (ignored{hint})",
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
        let on_demand = match obj.get("start") {
            None => Some(None),
            Some(Value::String(s)) if s == "at-launch" => Some(Some(false)),
            Some(Value::String(s)) if s == "on-demand" => Some(Some(true)),
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'start': expected \"at-launch\" or \"on-demand\", got {other}"
                ));
                None
            }
        };
        let idle_stop = self
            .number(&ctx, obj, "idleStop", "a whole number of seconds", 1)
            .map(|n| n.map(Duration::from_secs));
        let keep_wrapper = match obj.get("keepWrapper") {
            None => Some(None),
            Some(Value::Bool(b)) => Some(Some(*b)),
            Some(other) => {
                self.error(format!(
                    "{ctx}: field 'keepWrapper': expected true (npx's process stays) or false, got {}",
                    kind(other)
                ));
                None
            }
        };
        let only = match obj.get("inheritEnv") {
            None => Some(None),
            Some(list) => self
                .strings(&ctx, "inheritEnv", list, "variable names or glob patterns")
                .map(Some),
        };
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
            environment: Environment {
                withheld: Vec::new(),
                only: only?,
            },
            on_demand: on_demand?,
            idle_stop: idle_stop?,
            keep_wrapper: keep_wrapper?,
        })
    }

    pub(super) fn view(&mut self, ctx: &str, obj: &Map<String, Value>) -> Option<View> {
        let (allow, deny) = self.filter(ctx, obj, "tools", "tool name")?;
        let mut view = View {
            allow,
            deny,
            ..View::default()
        };
        view.descriptions = self.string_map(ctx, obj, "descriptions")?;
        Some(view)
    }

    /// A list of strings (`what`, for the error) in `field`; None after the error.
    pub(super) fn strings(
        &mut self,
        ctx: &str,
        field: &str,
        value: &Value,
        what: &str,
    ) -> Option<Vec<String>> {
        match value {
            Value::Array(items) if items.iter().all(Value::is_string) => Some(
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect(),
            ),
            other => {
                self.error(format!(
                    "{ctx}: field '{field}': expected a list of {what}, got {other}"
                ));
                None
            }
        }
    }

    /// `{"allow": [...], "deny": [...]}` glob patterns under `field` (of `what`s).
    pub(super) fn filter(
        &mut self,
        ctx: &str,
        obj: &Map<String, Value>,
        field: &str,
        what: &str,
    ) -> Option<(Vec<String>, Vec<String>)> {
        let (mut allow, mut deny) = (Vec::new(), Vec::new());
        match obj.get(field) {
            None => {}
            Some(Value::Object(filter)) => {
                for (key, value) in filter {
                    let list = self.strings(
                        ctx,
                        &format!("{field}.{key}"),
                        value,
                        &format!("{what} patterns"),
                    )?;
                    match key.as_str() {
                        "allow" => allow = list,
                        "deny" => deny = list,
                        other => self.warn(format!(
                            "{ctx}: field '{field}': unknown key '{other}' (expected allow, deny)"
                        )),
                    }
                }
            }
            Some(other) => {
                self.error(format!(
                    "{ctx}: field '{field}': expected {{\"allow\": [...], \"deny\": [...]}}, got {}",
                    kind(other)
                ));
                return None;
            }
        }
        Some((allow, deny))
    }

    pub(super) fn policy(
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
    pub(super) fn boolean(
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
    pub(super) fn number(
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
    pub(super) fn seconds(
        &mut self,
        ctx: &str,
        obj: &Map<String, Value>,
        field: &str,
        default: Duration,
    ) -> Option<Duration> {
        let secs = self.number(ctx, obj, field, "a whole number of seconds", 1)?;
        Some(secs.map_or(default, Duration::from_secs))
    }

    pub(super) fn scope(&mut self, ctx: &str, obj: &Map<String, Value>) -> Option<Scope> {
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
    pub(super) fn launch(
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
                    "{ctx}: field 'command' is required (the program to start){}",
                    super::near::missing_hint("command", obj.keys())
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
            environment: Environment::default(),
        })
    }

    pub(super) fn url(&mut self, ctx: &str, obj: &Map<String, Value>) -> Option<String> {
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
                self.error(format!(
                    "{ctx}: field 'url' is required{}",
                    super::near::missing_hint("url", obj.keys())
                ));
                None
            }
        }
    }

    pub(super) fn builtin(&mut self, ctx: &str, obj: &Map<String, Value>) -> Option<Transport> {
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
                    "{ctx}: field 'server' is required (one of: {}){}",
                    BUILTIN_SERVERS.join(", "),
                    super::near::missing_hint("server", obj.keys())
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
                Some(v) => {
                    self.strings(ctx, field, v, "command patterns (strings, * for anything)")
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

    pub(super) fn string_map(
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

    pub(super) fn expand(&mut self, ctx: &str, field: &str, text: &str) -> Option<String> {
        // What a backend hands on by name is taken for a secret of its own.
        if field.starts_with("env.") || field.starts_with("headers.") || field.starts_with("args[")
        {
            self.referenced.extend(variable_names(text));
        }
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
