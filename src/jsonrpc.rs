//! JSON-RPC 2.0 wire types: the envelope every transport carries.
//!
//! Owns parsing and serializing one message. Knows nothing of routing, sessions or MCP
//! methods. Payloads (`params`, `result`, ids) stay as `RawValue`, so a result travels from
//! a backend to a client without being parsed or rebuilt.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::fmt;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;

/// A request id exactly as its sender wrote it: a JSON string or integer, never null.
/// It is echoed back byte for byte, so `1`, `"1"` and `1.0` never get confused.
#[derive(Clone)]
pub struct Id(Box<RawValue>);

impl Id {
    pub fn number(n: u64) -> Id {
        // Digits written on the stack, then one allocation of exactly their length (a
        // `to_string` would allocate, then shrink into the box).
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let text = std::str::from_utf8(&digits[at..]).expect("ASCII digits");
        Id(RawValue::from_string(String::from(text)).expect("an integer is valid JSON"))
    }

    /// A string id.
    pub fn text(s: &str) -> Id {
        Id(to_raw(&s))
    }

    /// The id as an unsigned integer, when it is one (the gateway's own ids always are).
    pub fn as_u64(&self) -> Option<u64> {
        self.0.get().parse().ok()
    }

    /// Whether this id is the JSON value `v` (as a `requestId` in a notification names it).
    pub fn matches(&self, v: &serde_json::Value) -> bool {
        serde_json::from_str::<serde_json::Value>(self.0.get()).is_ok_and(|mine| mine == *v)
    }

    pub fn raw(&self) -> &RawValue {
        &self.0
    }

    fn validate(raw: Box<RawValue>) -> Result<Id, String> {
        let text = raw.get();
        let is_string = text.starts_with('"');
        let is_integer = text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok();
        if is_string || is_integer {
            Ok(Id(raw))
        } else {
            Err(format!("'id' must be a string or an integer, got {text}"))
        }
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        self.0.get() == other.0.get()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorObject {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

impl ErrorObject {
    pub fn new(code: i64, message: impl Into<String>) -> ErrorObject {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub id: Id,
    pub method: String,
    pub params: Option<Box<RawValue>>,
}

#[derive(Debug, Clone)]
pub struct Notification {
    pub method: String,
    pub params: Option<Box<RawValue>>,
}

#[derive(Debug, Clone)]
pub struct Response {
    /// `None` only for an error about a message whose id could not be read.
    pub id: Option<Id>,
    pub outcome: Result<Box<RawValue>, ErrorObject>,
}

#[derive(Debug, Clone)]
pub enum Message {
    Request(Request),
    Notification(Notification),
    Response(Response),
}

/// Why a text is not a JSON-RPC message: `code` is the JSON-RPC error to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub code: i64,
    pub message: String,
    /// The id, when it could be read; the error reply must carry it.
    pub id: Option<Id>,
}

impl ParseError {
    pub fn into_response(self) -> Response {
        Response {
            id: self.id,
            outcome: Err(ErrorObject::new(self.code, self.message)),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Box<RawValue>>>, D::Error> {
    Option::<Box<RawValue>>::deserialize(d).map(Some)
}

/// The `jsonrpc` member: whether it is `"2.0"`, read without keeping the text.
struct Version2(bool);

impl<'de> Deserialize<'de> for Version2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Version2, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Version2;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"2.0\"")
            }
            fn visit_str<E>(self, v: &str) -> Result<Version2, E> {
                Ok(Version2(v == "2.0"))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
struct Envelope {
    jsonrpc: Option<Version2>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Option<Box<RawValue>>>,
    method: Option<String>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "present")]
    result: Option<Option<Box<RawValue>>>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

impl Message {
    /// Parses one JSON-RPC message. A JSON array (a batch) is an invalid request here;
    /// transports that accept batches split them first.
    pub fn parse(text: &str) -> Result<Message, ParseError> {
        let invalid = |message: String, id: Option<Id>| ParseError {
            code: INVALID_REQUEST,
            message,
            id,
        };
        let trimmed = text.trim_start();
        if trimmed.starts_with('[') {
            return Err(invalid("batches are not supported".into(), None));
        }
        if !trimmed.starts_with('{') {
            // Either not JSON at all or a JSON scalar: tell which.
            return Err(match serde_json::from_str::<serde_json::Value>(text) {
                Ok(_) => invalid("a JSON-RPC message must be a JSON object".into(), None),
                Err(e) => ParseError {
                    code: PARSE_ERROR,
                    message: format!("parse error: {e}"),
                    id: None,
                },
            });
        }
        let env: Envelope = serde_json::from_str(text).map_err(|e| {
            // Valid JSON with fields of the wrong type is an invalid request, not a parse error.
            let code = if serde_json::from_str::<serde_json::Value>(text).is_ok() {
                INVALID_REQUEST
            } else {
                PARSE_ERROR
            };
            let what = if code == PARSE_ERROR {
                "parse error"
            } else {
                "invalid request"
            };
            ParseError {
                code,
                message: format!("{what}: {e}"),
                id: None,
            }
        })?;
        let id = match env.id {
            None => None,
            Some(None) => Some(None),
            Some(Some(raw)) => Some(Some(Id::validate(raw).map_err(|m| invalid(m, None))?)),
        };
        let readable_id = id.clone().flatten();
        if !env.jsonrpc.is_some_and(|v| v.0) {
            return Err(invalid(
                "'jsonrpc' must be \"2.0\"".into(),
                readable_id.clone(),
            ));
        }
        match (env.method, id) {
            (Some(method), Some(Some(id))) => Ok(Message::Request(Request {
                id,
                method,
                params: env.params,
            })),
            (Some(_), Some(None)) => Err(invalid("a request 'id' must not be null".into(), None)),
            (Some(method), None) => Ok(Message::Notification(Notification {
                method,
                params: env.params,
            })),
            (None, id) => {
                let id = id.flatten();
                let outcome = match (env.result, env.error) {
                    (Some(Some(result)), None) => Ok(result),
                    (Some(None), None) => {
                        Ok(RawValue::from_string("null".into()).expect("null is valid JSON"))
                    }
                    (None, Some(error)) => Err(error),
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            "a response must not have both 'result' and 'error'".into(),
                            id,
                        ));
                    }
                    (None, None) => {
                        return Err(invalid(
                            "a message needs 'method' (request or notification) or 'result'/'error' (response)".into(),
                            id,
                        ));
                    }
                };
                if id.is_none() && outcome.is_ok() {
                    return Err(invalid("a result must carry an 'id'".into(), None));
                }
                Ok(Message::Response(Response { id, outcome }))
            }
        }
    }

    /// The size of the raw payload (params or result), which is most of a large message.
    pub fn payload_len(&self) -> usize {
        match self {
            Message::Request(r) => r.params.as_deref().map_or(0, |p| p.get().len()),
            Message::Notification(n) => n.params.as_deref().map_or(0, |p| p.get().len()),
            Message::Response(r) => r.outcome.as_ref().map_or(0, |p| p.get().len()),
        }
    }

    pub fn to_json(&self) -> String {
        // Sized for the raw payload up front: growing by doubling would copy a megabyte
        // result a dozen times on the way.
        let mut buf = Vec::with_capacity(self.payload_len() + 128);
        self.write_json(&mut buf);
        String::from_utf8(buf).expect("serde_json writes UTF-8")
    }

    /// Appends the message's JSON text to `buf` (a buffer a writer keeps between
    /// messages, so writing one allocates nothing).
    pub fn write_json(&self, buf: &mut Vec<u8>) {
        buf.reserve(self.payload_len() + 128);
        // The envelope is written piece by piece around the raw parts, which are JSON
        // already: the same text serde writes for `Wire*`, with a few copies instead of
        // one per key and string (a quarter of the copying on the `/mcp` path).
        let raw = |buf: &mut Vec<u8>, key: &[u8], value: Option<&RawValue>| {
            if let Some(value) = value {
                buf.extend_from_slice(key);
                buf.extend_from_slice(value.get().as_bytes());
            }
        };
        let method = |buf: &mut Vec<u8>, method: &str| {
            buf.extend_from_slice(b",\"method\":");
            write_str(buf, method);
        };
        let written = match self {
            Message::Request(r) => {
                buf.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
                buf.extend_from_slice(r.id.raw().get().as_bytes());
                method(buf, &r.method);
                raw(buf, b",\"params\":", r.params.as_deref());
                buf.push(b'}');
                Ok(())
            }
            Message::Notification(n) => {
                buf.extend_from_slice(b"{\"jsonrpc\":\"2.0\"");
                method(buf, &n.method);
                raw(buf, b",\"params\":", n.params.as_deref());
                buf.push(b'}');
                Ok(())
            }
            Message::Response(r) => match &r.outcome {
                Ok(result) => {
                    buf.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
                    match &r.id {
                        Some(id) => buf.extend_from_slice(id.raw().get().as_bytes()),
                        None => buf.extend_from_slice(b"null"),
                    }
                    raw(buf, b",\"result\":", Some(result));
                    buf.push(b'}');
                    Ok(())
                }
                Err(error) => serde_json::to_writer(
                    &mut *buf,
                    &WireError {
                        jsonrpc: "2.0",
                        id: r.id.as_ref().map(Id::raw),
                        error,
                    },
                ),
            },
        };
        written.expect("serializing strings and raw JSON into memory cannot fail");
    }
}

/// `text` as a JSON string: copied whole when nothing in it needs escaping (a method
/// name always), else by serde.
fn write_str(buf: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'"');
    } else {
        serde_json::to_writer(&mut *buf, text).expect("a string serializes into memory");
    }
}

#[derive(Serialize)]
struct WireError<'a> {
    jsonrpc: &'static str,
    id: Option<&'a RawValue>,
    error: &'a ErrorObject,
}

/// The error a request gets when its id is already in flight in its session.
pub fn id_in_flight(id: impl std::fmt::Display) -> ErrorObject {
    ErrorObject::new(
        INVALID_REQUEST,
        format!("request id {id} is already in flight in this session"),
    )
}

/// Serializes a value into a raw JSON payload.
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("gateway-built JSON always serializes")
}

impl Response {
    pub fn ok(id: Id, result: Box<RawValue>) -> Response {
        Response {
            id: Some(id),
            outcome: Ok(result),
        }
    }

    pub fn error(id: Option<Id>, code: i64, message: impl Into<String>) -> Response {
        Response {
            id,
            outcome: Err(ErrorObject::new(code, message)),
        }
    }
}

/// How deeply a client's message may nest arrays and objects (the envelope included).
/// Below serde_json's 128, which Rust backends parse with; deeper is refused before it is
/// forwarded, rather than left to time out at a backend that cannot read it.
pub const MAX_DEPTH: usize = 100;

/// What no backend should be sent, though serde_json lets it through a raw payload: a lone
/// UTF-16 surrogate escape (`"\ud800"`: not a character, refused by strict parsers) and
/// nesting deeper than `MAX_DEPTH`. The error is the JSON-RPC code and message to answer.
pub fn check_payload(text: &str) -> Result<(), (i64, String)> {
    let bytes = text.as_bytes();
    // Most messages have neither escapes nor much nesting: two quick passes decide.
    let opening = bytes.iter().filter(|b| matches!(b, b'{' | b'[')).count();
    if opening <= MAX_DEPTH && !text.contains("\\u") {
        return Ok(());
    }
    let hex = |at: usize| {
        text.get(at..at + 4)
            .and_then(|h| u16::from_str_radix(h, 16).ok())
    };
    let (mut depth, mut in_string, mut i) = (0usize, false, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                if bytes.get(i + 1) == Some(&b'u') {
                    let unit = hex(i + 2).unwrap_or(0);
                    if (0xD800..0xDC00).contains(&unit) {
                        let low = (text.get(i + 6..i + 8) == Some("\\u"))
                            .then(|| hex(i + 8))
                            .flatten();
                        if !low.is_some_and(|l| (0xDC00..0xE000).contains(&l)) {
                            return Err(lone_surrogate(unit, i));
                        }
                        i += 6; // the low half is checked as read
                    } else if (0xDC00..0xE000).contains(&unit) {
                        return Err(lone_surrogate(unit, i));
                    }
                }
                i += 1; // the escaped character
            }
            b'{' | b'[' if !in_string => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err((
                        INVALID_PARAMS,
                        format!(
                            "the message nests arrays and objects deeper than {MAX_DEPTH} levels"
                        ),
                    ));
                }
            }
            b'}' | b']' if !in_string => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn lone_surrogate(unit: u16, at: usize) -> (i64, String) {
    (
        PARSE_ERROR,
        format!(
            "parse error: a lone surrogate escape \\u{unit:04x} at byte {at} (not a character; a pair is needed)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Message {
        Message::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_shape_is_written_as_the_json_it_parses_from() {
        for text in [
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":"x","method":"ping"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","method":"odd \"quoted\"\n\\","params":[1,2]}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#,
            r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"no","data":{"a":1}}}"#,
        ] {
            let written = parse(text).to_json();
            assert_eq!(written, text);
            let a: serde_json::Value = serde_json::from_str(&written).unwrap();
            let b: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(a, b);
        }
        // A response with no id (an error to an unreadable message) says null.
        let r = Message::Response(Response {
            id: None,
            outcome: Ok(to_raw(&1)),
        });
        assert_eq!(r.to_json(), r#"{"jsonrpc":"2.0","id":null,"result":1}"#);
        for n in [0, 7, 10, 1234567890, u64::MAX] {
            assert_eq!(Id::number(n).raw().get(), n.to_string());
            assert_eq!(Id::number(n).as_u64(), Some(n));
        }
    }

    #[test]
    fn request_round_trips_with_its_id_verbatim() {
        for id in ["1", "\"abc\"", "-7", "18446744073709551615"] {
            let text = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","params":{{"a":1}}}}"#
            );
            let Message::Request(r) = parse(&text) else {
                panic!("not a request")
            };
            assert_eq!(r.id.to_string(), id);
            assert_eq!(Message::Request(r).to_json(), text);
        }
    }

    #[test]
    fn notification_has_no_id() {
        let m = parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert!(matches!(m, Message::Notification(n) if n.method == "notifications/initialized"));
    }

    #[test]
    fn responses_keep_result_and_error() {
        let m = parse(r#"{"jsonrpc":"2.0","id":5,"result":{"content":[],"isError":true}}"#);
        let Message::Response(r) = m else {
            panic!("not a response")
        };
        assert_eq!(r.id.as_ref().and_then(Id::as_u64), Some(5));
        assert_eq!(
            r.outcome.as_ref().unwrap().get(),
            r#"{"content":[],"isError":true}"#
        );
        let m = parse(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#);
        let Message::Response(r) = m else {
            panic!("not a response")
        };
        assert!(r.id.is_none());
        assert_eq!(r.outcome.unwrap_err().code, -32700);
    }

    #[test]
    fn error_without_id_serializes_null_id() {
        let r = Response::error(None, PARSE_ERROR, "parse error");
        assert_eq!(
            Message::Response(r).to_json(),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#
        );
    }

    #[test]
    fn bad_input_gets_the_right_code() {
        let cases = [
            ("not json", PARSE_ERROR),
            ("{\"jsonrpc\":\"2.0\",", PARSE_ERROR),
            ("42", INVALID_REQUEST),
            ("[]", INVALID_REQUEST),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
                INVALID_REQUEST,
            ),
            (r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#, INVALID_REQUEST),
            (r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#, INVALID_REQUEST),
            (r#"{"id":1,"method":"x"}"#, INVALID_REQUEST),
            (r#"{"jsonrpc":"2.0","id":1,"method":7}"#, INVALID_REQUEST),
            (r#"{"jsonrpc":"2.0","id":1}"#, INVALID_REQUEST),
            (r#"{"jsonrpc":"2.0","result":{}}"#, INVALID_REQUEST),
        ];
        for (text, code) in cases {
            let err = Message::parse(text).expect_err(text);
            assert_eq!(err.code, code, "{text}: {}", err.message);
        }
    }

    #[test]
    fn invalid_request_keeps_a_readable_id() {
        let err = Message::parse(r#"{"jsonrpc":"1.0","id":9,"method":"x"}"#).unwrap_err();
        assert_eq!(err.id.and_then(|i| i.as_u64()), Some(9));
    }

    #[test]
    fn lone_surrogates_and_deep_nesting_are_found() {
        assert!(check_payload(r#"{"a": "plain", "b": [1, {"c": "\u00e9"}]}"#).is_ok());
        assert!(check_payload(r#"{"emoji": "\ud83d\ude00", "x": "\\ud800"}"#).is_ok());
        for bad in [
            r#"{"a": "\ud800"}"#,
            r#"{"a": "\ud800x"}"#,
            r#"{"a": "\udc00\ud800"}"#,
            r#"{"a": "\ud83d\u0041"}"#,
        ] {
            let (code, message) = check_payload(bad).expect_err(bad);
            assert_eq!(code, PARSE_ERROR, "{bad}");
            assert!(message.contains("lone surrogate"), "{message}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(check_payload(&deep).map_err(|e| e.0), Err(INVALID_PARAMS));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(check_payload(&ok).is_ok());
        // Brackets inside strings do not count.
        let text = format!(r#"{{"s": "{}"}}"#, "[".repeat(500));
        assert!(check_payload(&text).is_ok());
    }
}
