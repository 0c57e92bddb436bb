//! A call's params as the routers need them, read and rewritten from their text: the
//! name, whether it asks for a task, the arguments for the audit line, and the params the
//! backend gets (its own name for the tool, the gateway's progress token), written in one
//! buffer, every other field passed on as its text. No map of the params is built.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

/// The top-level fields of a params object, in order, each with its value's text.
pub(super) struct CallParams<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> CallParams<'a> {
    /// The fields of `text`, a JSON object; None when it is not one.
    pub(super) fn parse(text: &'a str) -> Option<CallParams<'a>> {
        let mut de = serde_json::Deserializer::from_str(text);
        let fields = de.deserialize_map(Fields).ok()?;
        de.end().ok()?;
        Some(CallParams { fields })
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// `name`, when it is a string.
    pub(super) fn name(&self) -> Option<Cow<'a, str>> {
        let raw = self.get("name")?.get();
        match serde_json::from_str::<&str>(raw) {
            Ok(plain) => Some(Cow::Borrowed(plain)),
            Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
        }
    }

    /// The params for the backend: `name` is `original`, and a `_meta.progressToken` the
    /// client gave is `token` (the gateway's); with the client's token, if it gave one.
    pub(super) fn rewritten(&self, original: &str, token: u64) -> (Box<RawValue>, Option<Value>) {
        let size: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(size + original.len() + 16);
        let mut client_token = None;
        out.push(b'{');
        for (n, (key, value)) in self.fields.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut out, key.as_ref());
            out.push(b':');
            match key.as_ref() {
                "name" => {
                    let _ = serde_json::to_writer(&mut out, original);
                }
                "_meta" if value.get().contains("progressToken") => {
                    match serde_json::from_str::<Map<String, Value>>(value.get()) {
                        Ok(mut meta) => {
                            client_token = meta.insert("progressToken".into(), Value::from(token));
                            let _ = serde_json::to_writer(&mut out, &meta);
                        }
                        Err(_) => out.extend_from_slice(value.get().as_bytes()),
                    }
                }
                _ => out.extend_from_slice(value.get().as_bytes()),
            }
        }
        if self.get("name").is_none() {
            if !self.fields.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"name\":");
            let _ = serde_json::to_writer(&mut out, original);
        }
        out.push(b'}');
        let text = String::from_utf8(out).expect("JSON text is UTF-8");
        let raw = RawValue::from_string(text).expect("the params were an object, and still are");
        (raw, client_token)
    }
}

/// Reads a JSON object's fields with their values' text, keys borrowed where they can be.
struct Fields;

impl<'de> Visitor<'de> for Fields {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(key) = map.next_key_seed(Key)? {
            let value: &'de RawValue = map.next_value()?;
            fields.push((key, value));
        }
        Ok(fields)
    }
}

/// A key, borrowed from the text unless it has escapes.
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_and_progress_token_are_rewritten_and_the_rest_passed_on() {
        let text = r#"{"name":"fx__echo","arguments":{"text":"hi","name":"inner"},"_meta":{"progressToken":"abc","other":1},"x\u0041":[1, 2]}"#;
        let p = CallParams::parse(text).unwrap();
        assert_eq!(p.name().as_deref(), Some("fx__echo"));
        assert!(p.get("task").is_none());
        assert_eq!(
            p.get("arguments").unwrap().get(),
            r#"{"text":"hi","name":"inner"}"#
        );
        let (raw, client) = p.rewritten("echo", 42);
        assert_eq!(client, Some(Value::from("abc")));
        let v: Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name": "echo", "arguments": {"text": "hi", "name": "inner"},
                               "_meta": {"progressToken": 42, "other": 1}, "xA": [1, 2]})
        );
        // Without a progress token, the params are the client's but for the name.
        let p = CallParams::parse(r#"{"arguments":{},"name":"a\"b"}"#).unwrap();
        assert_eq!(p.name().as_deref(), Some("a\"b"));
        let (raw, client) = p.rewritten("orig\"inal", 7);
        assert_eq!(client, None);
        assert_eq!(raw.get(), r#"{"arguments":{},"name":"orig\"inal"}"#);
        assert!(CallParams::parse("[1]").is_none());
        assert!(
            CallParams::parse(r#"{"name": 5}"#)
                .unwrap()
                .name()
                .is_none()
        );
    }
}
