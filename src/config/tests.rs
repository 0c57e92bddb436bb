//! The config parser's tests, as data: texts in, backends or errors out.
use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/u".into()),
        "TOKEN" => Some("s3cret".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Each backend's type, in file order.
pub(super) fn types(loaded: &Loaded) -> Vec<&'static str> {
    loaded
        .config
        .backends
        .iter()
        .map(|b| b.transport.type_name())
        .collect()
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
            environment: Default::default(),
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
    assert_eq!(types(&loaded), ["stdio", "sse", "streamable-http"]);
    let loaded = ok(r#"{"mcpServers": {
        "a": {"url": "http://127.0.0.1:3000/events", "transport": "sse"},
        "b": {"url": "http://127.0.0.1:3000/sse", "type": "streamableHttp"},
        "c": {"url": "http://127.0.0.1:3000/x", "type": "http"}
    }}"#);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        types(&loaded),
        ["sse", "streamable-http", "streamable-http"]
    );
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
    // A near miss names the field it was probably meant to be.
    let loaded = ok(r#"{"a": {"command": "x", "enviroment": {}, "timout": 5}}"#);
    assert_eq!(
        loaded.warnings,
        [
            "config: backend 'a': unknown field 'enviroment' for type 'stdio' (ignored; did you mean 'env'?)",
            "config: backend 'a': unknown field 'timout' for type 'stdio' (ignored; did you mean 'timeout'?)",
        ]
    );
    let e = crate::config::parse(r#"{"a": {"comand": "x"}}"#, &|_| None).unwrap_err();
    assert!(
        e.to_string()
            .contains("('comand' is there: did you mean 'command'?)"),
        "{e}"
    );
    let e =
        crate::config::parse(r#"{"a": {"type": "stdio", "comand": "x"}}"#, &|_| None).unwrap_err();
    assert!(
        e.to_string()
            .contains("field 'command' is required (the program to start) ('comand' is there: did you mean 'command'?)"),
        "{e}"
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
    let schema: Value = serde_json::from_str(&schema()).unwrap();
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
    let mut settings: Vec<String> = settings::keys().map(String::from).collect();
    settings.push("profiles".into());
    settings.push("tokens".into());
    settings.sort();
    assert_eq!(keys(&schema["$defs"]["settings"]), settings);
    let mut profile: Vec<String> = profiles::FIELDS.iter().map(|f| f.to_string()).collect();
    profile.sort();
    assert_eq!(keys(&schema["$defs"]["profile"]), profile);
    let mut token: Vec<String> = profiles::TOKEN_FIELDS
        .iter()
        .map(|f| f.to_string())
        .collect();
    token.sort();
    assert_eq!(keys(&schema["$defs"]["clientToken"]), token);
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

#[test]
fn profiles_are_read_with_their_filters_and_checked_against_the_backends() {
    let loaded = ok(r#"{
        "gateway": {"profiles": {
            "coding": {"description": "the agent", "backends": ["gh"],
                       "tools": {"allow": ["gh__*"], "deny": ["*delete*"]},
                       "descriptions": {"gh__search": "Search the code"}},
            "read-only": {"prompts": {"deny": ["*"]}, "resources": {"allow": ["file:///*"]}}
        }},
        "gh": {"command": "github-mcp-server"},
        "sh": {"type": "builtin", "server": "bash"}
    }"#);
    let profiles = &loaded.config.settings.profiles;
    let names: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["coding", "read-only"]);
    let coding = &profiles[0];
    assert!(coding.tools.shows("gh__search") && !coding.tools.shows("gh__delete_repo"));
    assert_eq!(
        coding.tools.description("gh__search"),
        Some("Search the code")
    );
    let (gh, sh) = (&loaded.config.backends[0], &loaded.config.backends[1]);
    assert!(coding.shows_backend(gh) && !coding.shows_backend(sh));
    // Without `backends`: every one but the built-in servers.
    let read_only = &profiles[1];
    assert!(read_only.shows_backend(gh) && !read_only.shows_backend(sh));
    assert!(!read_only.prompts.shows("gh__x") && read_only.resources.shows("file:///a"));

    for (text, expected) in [
        (
            r#"{"gateway": {"profiles": {"a": {"backends": ["nope"]}}}, "gh": {"command": "x"}}"#,
            "profile 'a': field 'backends': no backend is named 'nope'",
        ),
        (
            r#"{"gateway": {"profiles": {"a b": {}}}, "gh": {"command": "x"}}"#,
            "profile 'a b': a profile's name is part of its URL",
        ),
        (
            r#"{"gateway": {"profiles": {"a": {"tools": ["x"]}}}, "gh": {"command": "x"}}"#,
            "profile 'a': field 'tools': expected",
        ),
        (
            r#"{"gateway": {"profiles": []}, "gh": {"command": "x"}}"#,
            "field 'profiles': expected an object",
        ),
    ] {
        let errs = errors(text);
        assert!(
            errs.iter().any(|e| e.contains(expected)),
            "{expected}: {errs:?}"
        );
    }
}

#[test]
fn client_tokens_are_read_their_variables_kept_secret_and_never_printed() {
    let loaded = ok(r#"{
        "gateway": {"tokens": {
            "agent": {"token": "${TOKEN}", "profiles": ["p"]},
            "dash": {"tokenFile": "${HOME}/dash.token", "profiles": ["p"]}
        }, "profiles": {"p": {}}},
        "a": {"command": "x"}
    }"#);
    let tokens = &loaded.config.settings.tokens;
    assert!(tokens[0].secret == profiles::Secret::Text("s3cret".into()));
    assert!(tokens[1].secret == profiles::Secret::File("/home/u/dash.token".into()));
    assert!(
        loaded
            .config
            .settings
            .secret_variables
            .contains(&"TOKEN".to_string())
    );
    assert!(!format!("{tokens:?}").contains("s3cret"), "{tokens:?}");
    for (text, expected) in [
        (
            r#"{"gateway": {"tokens": {"t": {"token": "x", "profiles": ["nope"]}}}, "a": {"command": "x"}}"#,
            "token 't': field 'profiles': no profile is named 'nope'",
        ),
        (
            r#"{"gateway": {"tokens": {"t": {"profiles": ["p"]}}, "profiles": {"p": {}}}, "a": {"command": "x"}}"#,
            "token 't': needs exactly one of 'token'",
        ),
        (
            r#"{"gateway": {"tokens": {"t": {"token": "x", "profiles": []}}}, "a": {"command": "x"}}"#,
            "token 't': field 'profiles': expected the names",
        ),
        (
            r#"{"gateway": {"tokens": {"t": {"token": "x", "profiles": ["p"]}, "u": {"token": "x", "profiles": ["p"]}}, "profiles": {"p": {}}}, "a": {"command": "x"}}"#,
            "tokens 't' and 'u' have the same secret",
        ),
    ] {
        let errs = errors(text);
        assert!(
            errs.iter().any(|e| e.contains(expected)),
            "{expected}: {errs:?}"
        );
    }
}

#[test]
fn a_reload_that_changes_profiles_or_tokens_names_them_among_the_changed_settings() {
    let with = |profiles: &str, tokens: &str| {
        ok(&format!(
            r#"{{"gateway": {{"profiles": {profiles}, "tokens": {tokens}}}, "a": {{"command": "x"}}}}"#
        ))
        .config
        .settings
    };
    let before = with(
        r#"{"p": {}}"#,
        r#"{"t": {"token": "x", "profiles": ["p"]}}"#,
    );
    let more = with(
        r#"{"p": {}, "q": {}}"#,
        r#"{"t": {"token": "x", "profiles": ["p"]}}"#,
    );
    let moved = with(
        r#"{"p": {}}"#,
        r#"{"t": {"token": "y", "profiles": ["p"]}}"#,
    );
    assert_eq!(before.changed_fields(&more), ["profiles"]);
    assert_eq!(before.changed_fields(&moved), ["tokens"]);
    assert!(before.changed_fields(&before.clone()).is_empty());
}

#[test]
fn a_profiles_uri_globs_refuse_paths_that_climb_out() {
    use super::profiles::{Profile, has_dot_segments};
    let profile = Profile {
        resources: View {
            allow: vec!["test://template/*".into(), "file:///srv/docs/*".into()],
            ..View::default()
        },
        ..Profile::default()
    };
    assert!(profile.shows_uri("test://template/42"));
    assert!(profile.shows_uri("file:///srv/docs/a.md"));
    for climbing in [
        "test://template/../..",
        "test://template/..",
        "file:///srv/docs/../../etc/passwd",
        "file:///srv/docs/%2e%2e/secret",
        "file:///srv/docs/a%2f..%2f..%2fetc",
        "file:///srv/docs/.\\..\\x",
        "test://template/./x",
    ] {
        assert!(has_dot_segments(climbing), "{climbing}");
        assert!(!profile.shows_uri(climbing), "{climbing}");
    }
    assert!(!has_dot_segments("file:///srv/docs/a..b/c.d?x=../y"));
    // A profile with no URI globs leaves URIs to their backends.
    assert!(Profile::default().shows_uri("test://template/../x"));
}
