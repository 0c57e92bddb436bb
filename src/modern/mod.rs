//! MCP 2026-07-28 ("modern"), the stateless revision: here as data, checking a request's
//! `_meta` and its HTTP headers, the errors the revision defines, and translating between
//! a modern client and the gateway's legacy sessions (the hub runs each modern request in
//! a session of its own, initialized from the request's `_meta`; the front end that runs
//! it is `crate::stateless`). This module does no I/O and knows nothing of the hub.
//!
//! What a modern client gets that a legacy one does not: `resultType` on every result,
//! the server's identity in each result's `_meta`, caching hints on lists and reads,
//! `server/discover` instead of `initialize`, -32602 instead of -32002 for a missing
//! resource, and 404 for methods the revision removed.

/// The tasks extension's name, in capabilities.
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

use crate::contract::PROTOCOL_VERSIONS;
use crate::jsonrpc::{ErrorObject, INVALID_PARAMS, METHOD_NOT_FOUND};
use serde_json::{Map, Value, json};

/// The modern revision the gateway speaks.
pub const VERSION: &str = "2026-07-28";

/// The `_meta` keys of a modern request.
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_CLIENT: &str = "io.modelcontextprotocol/clientInfo";
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
const META_SERVER: &str = "io.modelcontextprotocol/serverInfo";
/// Every key of this prefix is the protocol's, not the backend's.
const META_PREFIX: &str = "io.modelcontextprotocol/";

/// The request's headers and `_meta` disagree, or a required header is missing.
pub const HEADER_MISMATCH: i64 = -32020;
/// The request needs a client capability it did not declare.
pub const MISSING_CAPABILITY: i64 = -32021;
/// The requested protocol version is not one the gateway speaks.
pub const UNSUPPORTED_VERSION: i64 = -32022;
/// Legacy "resource not found", which modern clients get as -32602.
const RESOURCE_NOT_FOUND: i64 = -32002;

/// The methods a modern client may call through the gateway.
pub const METHODS: &[&str] = &[
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "tools/call",
    "prompts/get",
    "resources/read",
    "completion/complete",
    "subscriptions/listen",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
];

/// The methods a request names something for (in `Mcp-Name` too), and the field it is in.
const NAMED: [(&str, &str); 6] = [
    ("tools/call", "name"),
    ("prompts/get", "name"),
    ("resources/read", "uri"),
    ("tasks/get", "taskId"),
    ("tasks/update", "taskId"),
    ("tasks/cancel", "taskId"),
];

/// The methods whose results carry caching hints.
const CACHEABLE: &[&str] = &[
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// A modern request refused: the HTTP status and the JSON-RPC error to answer with.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub error: ErrorObject,
}

fn refuse(status: u16, code: i64, message: String, data: Option<Value>) -> Refusal {
    Refusal {
        status,
        error: ErrorObject {
            code,
            message,
            data: data.map(|d| crate::jsonrpc::to_raw(&d)),
        },
    }
}

/// What the gateway takes from a modern request's `_meta`.
#[derive(Debug, Default, PartialEq)]
pub struct Meta {
    pub capabilities: Value,
    pub client: Option<Value>,
    /// The least severe log level the client wants log messages of; none: no log messages.
    pub log_level: Option<String>,
}

/// Looks an HTTP header up by name.
pub type Headers<'f, 'h> = &'f dyn Fn(&str) -> Option<&'h str>;

/// Whether raw params may carry a modern `_meta` at all: a look at the text, so legacy
/// requests, on the paths every call takes, are not parsed a second time.
pub fn may_name_revision(params: Option<&serde_json::value::RawValue>) -> bool {
    params.is_some_and(|p| p.get().contains(META_VERSION))
}

/// Whether a request without a session is meant as modern: it carries the modern
/// version header, or a protocol version in its `_meta`.
pub fn is_modern(header_version: Option<&str>, params: Option<&Value>) -> bool {
    header_version.is_some_and(|v| !PROTOCOL_VERSIONS.contains(&v))
        || params
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get(META_VERSION))
            .is_some()
}

/// Checks a modern request's `_meta` and headers (`header` looks one up by name), in the
/// this order: `_meta` complete (-32602), the version header equal to it (-32020), a
/// version the gateway speaks (-32022), the other headers equal to the body (-32020), a
/// method it serves (-32601).
pub fn check<'h>(
    method: &str,
    params: Option<&Value>,
    headers: Option<Headers<'_, 'h>>,
) -> Result<Meta, Refusal> {
    let invalid = |what: &str| {
        refuse(
            400,
            INVALID_PARAMS,
            format!("invalid params: a 2026-07-28 request needs {what} in params._meta"),
            None,
        )
    };
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("'io.modelcontextprotocol/protocolVersion' and 'io.modelcontextprotocol/clientCapabilities'"))?;
    let version = meta
        .get(META_VERSION)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("'io.modelcontextprotocol/protocolVersion' (a string)"))?;
    let capabilities = meta
        .get(META_CAPABILITIES)
        .filter(|c| c.is_object())
        .ok_or_else(|| invalid("'io.modelcontextprotocol/clientCapabilities' (an object)"))?;
    if let Some(header) = headers {
        same(
            &fetch(header, "MCP-Protocol-Version", false)?,
            version,
            "MCP-Protocol-Version",
            "_meta protocolVersion",
        )?;
    }
    if version != VERSION {
        return Err(unsupported(version));
    }
    if let Some(header) = headers {
        same(
            &fetch(header, "Mcp-Method", false)?,
            method,
            "Mcp-Method",
            "body method",
        )?;
        if let Some((_, field)) = NAMED.iter().find(|(m, _)| *m == method) {
            let body = name_of(method, params).unwrap_or_default();
            same(
                &fetch(header, "Mcp-Name", true)?,
                &body,
                "Mcp-Name",
                &format!("body {field}"),
            )?;
        }
    }
    if !METHODS.contains(&method) {
        return Err(refuse(
            404,
            METHOD_NOT_FOUND,
            format!(
                "method not found: '{method}' (not part of protocol 2026-07-28 or not served here)"
            ),
            None,
        ));
    }
    Ok(Meta {
        capabilities: capabilities.clone(),
        client: meta.get(META_CLIENT).cloned(),
        log_level: meta
            .get(META_LOG_LEVEL)
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// -32020, HTTP 400.
fn mismatch(message: String) -> Refusal {
    refuse(400, HEADER_MISMATCH, message, None)
}

/// A header's value (decoded from the `=?base64?…?=` form where `encoded` allows it), or
/// the -32020 for its absence or a bad encoding.
fn fetch(header: Headers<'_, '_>, name: &str, encoded: bool) -> Result<String, Refusal> {
    let Some(raw) = header(name) else {
        return Err(mismatch(format!(
            "header mismatch: the {name} header is missing"
        )));
    };
    if !encoded {
        return Ok(raw.to_string());
    }
    decode_header(raw).ok_or_else(|| {
        mismatch(format!(
            "header mismatch: {name} header '{raw}' is not validly encoded"
        ))
    })
}

/// The -32020 for a header that differs from what it mirrors (`what`, in the body).
fn same(given: &str, body: &str, name: &str, what: &str) -> Result<(), Refusal> {
    if given == body {
        return Ok(());
    }
    Err(mismatch(format!(
        "header mismatch: {name} header '{given}' does not match {what} '{body}'"
    )))
}

/// -32022, with the versions the gateway speaks.
pub fn unsupported(requested: &str) -> Refusal {
    let mut supported = vec![VERSION];
    supported.extend(PROTOCOL_VERSIONS);
    refuse(
        400,
        UNSUPPORTED_VERSION,
        format!("unsupported protocol version '{requested}'"),
        Some(json!({"supported": supported, "requested": requested})),
    )
}

/// The client capability a backend's request to the client needs.
pub fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// -32021: the request needs `capability`, which the client did not declare.
pub fn missing(capability: &str) -> ErrorObject {
    let mut required = Map::new();
    required.insert(capability.to_string(), json!({}));
    ErrorObject {
        code: MISSING_CAPABILITY,
        message: format!(
            "the request needs the client capability '{capability}', which its _meta does not declare"
        ),
        data: Some(crate::jsonrpc::to_raw(
            &json!({"requiredCapabilities": required}),
        )),
    }
}

/// A header value, decoded when it uses the `=?base64?…?=` form.
pub fn decode_header(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(encoded) => String::from_utf8(base64_decode(encoded)?).ok(),
        None => Some(value.to_string()),
    }
}

/// A header value in the revision's form: as it is when plain visible ASCII without
/// leading or trailing spaces, else `=?base64?…?=`.
pub fn encode_header(value: &str) -> String {
    let plain = !value.is_empty()
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        return value.to_string();
    }
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::from("=?base64?");
    for chunk in value.as_bytes().chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push_str("?=");
    out
}

/// Standard base64, padded to a multiple of four as the revision's header form requires.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let padding = text.len() - text.trim_end_matches('=').len();
    if !text.len().is_multiple_of(4) || padding > 2 {
        return None;
    }
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The `initialize` params that open the legacy session a modern request runs in: the
/// newest legacy version, the client's info, and every capability a backend may ask a
/// client for, so the hub hands each such request to the front end, which answers for the
/// client: as `input_required` when the client declared what it needs, else refused
/// (-32021 when nothing is left to ask). The backend never sees these: it was initialized
/// by the gateway.
pub fn initialize_params(meta: &Meta) -> Value {
    let client = meta
        .client
        .clone()
        .unwrap_or_else(|| json!({"name": "modern-client", "version": "0"}));
    json!({
        "protocolVersion": PROTOCOL_VERSIONS[0],
        "capabilities": {"roots": {}, "sampling": {}, "elicitation": {"form": {}, "url": {}}},
        "clientInfo": client,
    })
}

/// The name (or URI) a request of `method` is about, which a `requestState` is bound to.
pub fn name_of(method: &str, params: Option<&Value>) -> Option<String> {
    let (_, field) = NAMED.iter().find(|(m, _)| *m == method)?;
    params?.get(*field)?.as_str().map(str::to_string)
}

/// The request's params for a legacy backend: the protocol's `_meta` keys taken out (an
/// empty `_meta` goes altogether), everything else as the client sent it.
pub fn legacy_params(params: Option<&Value>) -> Option<Value> {
    let mut params = params?.clone();
    if let Some(obj) = params.as_object_mut()
        && let Some(Value::Object(meta)) = obj.get_mut("_meta")
    {
        meta.retain(|k, _| !k.starts_with(META_PREFIX));
        if meta.is_empty() {
            obj.remove("_meta");
        }
    }
    if let Some(obj) = params.as_object_mut() {
        // A fresh call's leftovers of an earlier round mean nothing to a legacy backend,
        // nor does a 2025-11-25 client's `task` (the gateway decides what runs as a task).
        obj.remove("inputResponses");
        obj.remove("requestState");
        obj.remove("task");
    }
    Some(params)
}

/// A tool's mirrored arguments (`mirrored_params`), as routers keep them.
pub type Mirrored = std::sync::Arc<[(String, Vec<String>)]>;

/// The tool arguments a tool's `inputSchema` mirrors into `Mcp-Param-{Name}` headers
/// (`x-mcp-header`): each header's name and the path of properties to its value.
pub fn mirrored_params(input_schema: &Value) -> Vec<(String, Vec<String>)> {
    fn walk(schema: &Value, path: &mut Vec<String>, out: &mut Vec<(String, Vec<String>)>) {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        for (key, prop) in props {
            path.push(key.clone());
            if let Some(header) = prop.get("x-mcp-header").and_then(Value::as_str) {
                out.push((header.to_string(), path.clone()));
            }
            walk(prop, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(input_schema, &mut Vec::new(), &mut out);
    out
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers against its arguments: every mirrored
/// value present in the body must come in its header too, equal (after the base64 form
/// is decoded; numbers compared as numbers).
pub fn check_params<'h>(
    arguments: Option<&Value>,
    mirrored: &[(String, Vec<String>)],
    header: Headers<'_, 'h>,
) -> Result<(), Refusal> {
    for (name, path) in mirrored {
        let value = path
            .iter()
            .try_fold(arguments, |v, key| v?.get(key).map(Some))
            .flatten()
            .filter(|v| !v.is_null());
        let Some(value) = value else { continue };
        let header_name = format!("Mcp-Param-{name}");
        let given = fetch(header, &header_name, true)?;
        let equal = match value {
            Value::String(s) => *s == given,
            Value::Number(n) => given.parse::<f64>().ok() == n.as_f64(),
            Value::Bool(b) => given == b.to_string(),
            _ => false,
        };
        if !equal {
            return Err(mismatch(format!(
                "header mismatch: {header_name} '{given}' does not match the body's {} {value}",
                path.join(".")
            )));
        }
    }
    Ok(())
}

/// The gateway's identity, as every modern result carries it.
fn server_info() -> Value {
    json!({"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")})
}

/// A legacy result as a modern client gets it: `resultType`, the server's identity, and for
/// lists and reads the caching hints (stale at once: list changes reach modern clients
/// only by asking again until `subscriptions/listen` is served; lists are the same for
/// every caller, a read's contents may not be).
pub fn result(method: &str, mut result: Map<String, Value>) -> Map<String, Value> {
    result
        .entry("resultType")
        .or_insert_with(|| Value::from("complete"));
    let meta = result
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        meta.insert(META_SERVER.into(), server_info());
    }
    if CACHEABLE.contains(&method) {
        result.entry("ttlMs").or_insert_with(|| Value::from(0));
        let scope = if method == "resources/read" {
            "private"
        } else {
            "public"
        };
        result
            .entry("cacheScope")
            .or_insert_with(|| Value::from(scope));
    }
    result
}

/// A legacy error as a modern client gets it: a missing resource is -32602.
pub fn error(mut error: ErrorObject) -> ErrorObject {
    if error.code == RESOURCE_NOT_FOUND {
        error.code = INVALID_PARAMS;
    }
    error
}

/// `server/discover`'s result, from the `initialize` result of the request's session.
pub fn discover(initialized: &Value) -> Map<String, Value> {
    let mut supported = vec![VERSION];
    supported.extend(PROTOCOL_VERSIONS);
    let mut out = Map::new();
    out.insert("supportedVersions".into(), json!(supported));
    let mut capabilities = initialized
        .get("capabilities")
        .cloned()
        .unwrap_or_else(|| json!({}));
    // 2025-11-25's tasks are the tasks extension now.
    if let Some(caps) = capabilities.as_object_mut()
        && caps.remove("tasks").is_some()
    {
        let extensions = caps.entry("extensions").or_insert_with(|| json!({}));
        extensions[TASKS_EXTENSION] = json!({});
    }
    out.insert("capabilities".into(), capabilities);
    if let Some(instructions) = initialized.get("instructions") {
        out.insert("instructions".into(), instructions.clone());
    }
    result("server/discover", out)
}

/// Whether a log message at `level` goes to a client that asked for `wanted` and above.
pub fn wants_log(wanted: Option<&str>, level: Option<&str>) -> bool {
    use crate::contract::log_rank;
    match (wanted.and_then(log_rank), level.and_then(log_rank)) {
        (Some(min), Some(at)) => at >= min,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Of the calls parked for input (or tasks) at most this many are one client's (its token
/// and endpoint); its next one gives up its own oldest, never another client's.
pub const PER_CLIENT: usize = 250;

/// Which entry to give up so that one more of `client`'s fits, from each entry's key, the
/// client it is for and when it expires: the client's own oldest when it holds `quota`
/// already; else, when `max` are held in all, the oldest of the client holding the most.
/// So one client's flood pushes out only its own.
pub fn to_forget<K: Clone>(
    entries: &[(K, &crate::contract::Access, std::time::Instant)],
    client: &crate::contract::Access,
    quota: usize,
    max: usize,
) -> Option<K> {
    let oldest_of = |who: &crate::contract::Access| {
        entries
            .iter()
            .filter(|(_, c, _)| *c == who)
            .min_by_key(|(_, _, until)| *until)
            .map(|(k, _, _)| k.clone())
    };
    if entries.iter().filter(|(_, c, _)| *c == client).count() >= quota {
        return oldest_of(client);
    }
    if entries.len() < max {
        return None;
    }
    let mut counts: Vec<(&crate::contract::Access, usize)> = Vec::new();
    for (_, c, _) in entries {
        match counts.iter_mut().find(|(k, _)| k == c) {
            Some((_, n)) => *n += 1,
            None => counts.push((c, 1)),
        }
    }
    let biggest = counts.iter().max_by_key(|(_, n)| *n).map(|(c, _)| *c)?;
    oldest_of(biggest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_flood_pushes_out_only_its_own() {
        use crate::contract::Access;
        use std::time::{Duration, Instant};
        let who = |t: &str| Access {
            profile: None,
            token: Some(t.into()),
        };
        let (alice, bob) = (who("alice"), who("bob"));
        let t0 = Instant::now();
        let at = |n: u64| t0 + Duration::from_secs(n);
        // Bob holds his quota: his own oldest goes, whatever Alice holds.
        let entries = vec![(1, &alice, at(1)), (2, &bob, at(2)), (3, &bob, at(3))];
        assert_eq!(to_forget(&entries, &bob, 2, 10), Some(2));
        assert_eq!(to_forget(&entries, &alice, 2, 10), None);
        // The table full: the biggest holder's oldest goes, not the newcomer's or Alice's.
        assert_eq!(to_forget(&entries, &alice, 5, 3), Some(2));
    }

    fn params(meta: Value) -> Value {
        json!({"name": "echo", "_meta": meta})
    }

    fn good_meta() -> Value {
        json!({META_VERSION: VERSION, META_CAPABILITIES: {}, META_CLIENT: {"name": "t", "version": "1"}})
    }

    fn headers<'a>(list: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| {
            list.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    const GOOD: &[(&str, &str)] = &[
        ("MCP-Protocol-Version", VERSION),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "echo"),
    ];

    #[test]
    fn a_complete_request_passes_and_its_meta_is_read() {
        let p = params(good_meta());
        let meta = check("tools/call", Some(&p), Some(&headers(GOOD))).expect("valid");
        assert_eq!(meta.client, Some(json!({"name": "t", "version": "1"})));
        assert_eq!(meta.log_level, None);
    }

    #[test]
    fn each_check_refuses_with_the_revisions_code_and_status() {
        let code = |method: &str, p: Value, h: &[(&str, &str)]| {
            let r = check(method, Some(&p), Some(&headers(h))).expect_err("refused");
            (r.status, r.error.code)
        };
        assert_eq!(
            code("tools/call", json!({"name": "echo"}), GOOD),
            (400, -32602)
        );
        let no_caps = json!({META_VERSION: VERSION});
        assert_eq!(code("tools/call", params(no_caps), GOOD), (400, -32602));
        let old = json!({META_VERSION: "2099-01-01", META_CAPABILITIES: {}});
        assert_eq!(code("tools/call", params(old.clone()), GOOD), (400, -32020));
        let old_header = [("MCP-Protocol-Version", "2099-01-01"), GOOD[1], GOOD[2]];
        assert_eq!(code("tools/call", params(old), &old_header), (400, -32022));
        let wrong_version = [("MCP-Protocol-Version", "2025-11-25"), GOOD[1], GOOD[2]];
        assert_eq!(
            code("tools/call", params(good_meta()), &wrong_version),
            (400, -32020)
        );
        assert_eq!(
            code("tools/call", params(good_meta()), &GOOD[1..]),
            (400, -32020)
        );
        let wrong_method = [GOOD[0], ("Mcp-Method", "tools/list"), GOOD[2]];
        assert_eq!(
            code("tools/call", params(good_meta()), &wrong_method),
            (400, -32020)
        );
        let wrong_name = [GOOD[0], GOOD[1], ("Mcp-Name", "other")];
        assert_eq!(
            code("tools/call", params(good_meta()), &wrong_name),
            (400, -32020)
        );
        assert_eq!(
            code("tools/call", params(good_meta()), &GOOD[..2]),
            (400, -32020)
        );
        let ping = [GOOD[0], ("Mcp-Method", "ping")];
        assert_eq!(
            code("ping", json!({"_meta": good_meta()}), &ping),
            (404, -32601)
        );
        let data = unsupported("2099-01-01").error.data.expect("data");
        let data: Value = serde_json::from_str(data.get()).unwrap();
        assert_eq!(data["requested"], "2099-01-01");
        assert_eq!(data["supported"][0], VERSION);
    }

    #[test]
    fn names_may_travel_base64_encoded() {
        for name in [
            "plain_name",
            "Hello, 世界",
            " padded ",
            "=?base64?x?=",
            "a",
            "ab",
            "abc",
        ] {
            assert_eq!(decode_header(&encode_header(name)).as_deref(), Some(name));
        }
        assert_eq!(encode_header("plain_name"), "plain_name");
        assert_eq!(
            encode_header("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(
            decode_header("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(decode_header("plain").as_deref(), Some("plain"));
        assert_eq!(decode_header("=?base64?!!?="), None);
        assert_eq!(decode_header("=?base64?SGVsbG8?="), None, "unpadded");
        assert_eq!(
            decode_header("=?base64?SGVsbG8=?=").as_deref(),
            Some("Hello")
        );
        assert_eq!(
            decode_header("=?base64?SGVsbG8=").as_deref(),
            Some("=?base64?SGVsbG8="),
            "literal"
        );
        let p = json!({"name": "héllo", "_meta": good_meta()});
        let h = [GOOD[0], GOOD[1], ("Mcp-Name", "=?base64?aMOpbGxv?=")];
        assert!(check("tools/call", Some(&p), Some(&headers(&h))).is_ok());
    }

    #[test]
    fn mirrored_arguments_must_come_in_their_headers_too() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "n": {"type": "integer", "x-mcp-header": "N"},
            "deep": {"type": "object", "properties": {"id": {"type": "string", "x-mcp-header": "Id"}}}}});
        let mirrored = mirrored_params(&schema);
        assert_eq!(mirrored.len(), 3);
        let args = json!({"region": "us-west1", "n": 42, "deep": {"id": "héllo"}});
        let all = [
            ("Mcp-Param-Region", "us-west1"),
            ("Mcp-Param-N", "42.0"),
            ("Mcp-Param-Id", "=?base64?aMOpbGxv?="),
        ];
        assert!(check_params(Some(&args), &mirrored, &headers(&all)).is_ok());
        let code = |h: &[(&str, &str)]| {
            check_params(Some(&args), &mirrored, &headers(h))
                .err()
                .map(|r| r.error.code)
        };
        assert_eq!(code(&all[1..]), Some(-32020), "Region missing");
        assert_eq!(
            code(&[("Mcp-Param-Region", "eu"), all[1], all[2]]),
            Some(-32020)
        );
        assert_eq!(code(&[all[0], ("Mcp-Param-N", "41"), all[2]]), Some(-32020));
        // A value the body does not have needs no header.
        assert!(check_params(Some(&json!({})), &mirrored, &headers(&[])).is_ok());
    }

    #[test]
    fn results_carry_what_modern_clients_expect() {
        let r = result("tools/list", Map::from_iter([("tools".into(), json!([]))]));
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["_meta"][META_SERVER]["name"], "mcp-gateway");
        assert_eq!(
            (r["ttlMs"].clone(), r["cacheScope"].clone()),
            (json!(0), json!("public"))
        );
        let r = result("tools/call", Map::new());
        assert!(r.get("ttlMs").is_none());
        let e = error(ErrorObject {
            code: -32002,
            message: "gone".into(),
            data: None,
        });
        assert_eq!(e.code, -32602);
        let d = discover(&json!({"capabilities": {"tools": {}}, "instructions": "hi"}));
        assert_eq!(d["supportedVersions"][0], VERSION);
        assert_eq!(d["capabilities"], json!({"tools": {}}));
        assert_eq!(d["instructions"], "hi");
    }

    #[test]
    fn the_protocols_meta_keys_stay_with_the_gateway() {
        let p = json!({"name": "x", "_meta": {META_VERSION: VERSION, "progressToken": 5}});
        assert_eq!(
            legacy_params(Some(&p)),
            Some(json!({"name": "x", "_meta": {"progressToken": 5}}))
        );
        let p = json!({"_meta": good_meta()});
        assert_eq!(legacy_params(Some(&p)), Some(json!({})));
        let raw = |t: &str| serde_json::value::RawValue::from_string(t.into()).unwrap();
        assert!(may_name_revision(Some(&raw(
            &json!({"_meta": good_meta()}).to_string()
        ))));
        assert!(!may_name_revision(Some(&raw(r#"{"name":"x"}"#))));
        assert!(!may_name_revision(None));
        assert!(wants_log(Some("info"), Some("error")));
        assert!(!wants_log(Some("error"), Some("info")));
        assert!(!wants_log(None, Some("emergency")));
    }
}
