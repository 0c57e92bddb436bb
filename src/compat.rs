//! Version skew: what a client that negotiated an older protocol version must not be sent.
//!
//! Pure functions over JSON values; the hub calls them only for sessions older than the
//! newest version, so current clients get results byte for byte. Rules, from each
//! version's schema:
//! - before 2025-03-26: no tool `annotations`, no `audio` content;
//! - before 2025-06-18: no `title`, no tool `outputSchema`, no `structuredContent`, no
//!   `resource_link` content;
//! - before 2025-11-25: no `icons`, no tool `execution`.
//!
//! Content a client cannot understand becomes a text block saying what it was, rather than
//! vanishing.

use crate::registry::Kind;
use serde_json::{Map, Value, json};

/// Whether `version` (a `YYYY-MM-DD` id) is older than `than`.
fn older(version: &str, than: &str) -> bool {
    version < than
}

/// Whether anything needs changing for a client of this version.
pub fn needs_downgrade(version: &str) -> bool {
    older(version, "2025-11-25")
}

/// Whether a `tools/call` or `prompts/get` result may need `downgrade_result` for
/// `version`: only before 2025-06-18, and only if its text names something such a client
/// lacks. A substring scan, so a large result for a current client is never parsed; text
/// with `\u` escapes (which could spell a name) is always parsed.
pub fn result_may_need_downgrade(version: &str, raw: &str) -> bool {
    older(version, "2025-06-18")
        && (raw.contains("structuredContent")
            || raw.contains("resource_link")
            || (older(version, "2025-03-26") && raw.contains("audio"))
            || raw.contains("\\u"))
}

/// Removes what `version` does not know from one list item.
pub fn downgrade_item(kind: Kind, item: &mut Map<String, Value>, version: &str) {
    if older(version, "2025-11-25") {
        item.remove("icons");
        if kind == Kind::Tools {
            item.remove("execution");
        }
    }
    if older(version, "2025-06-18") {
        item.remove("title");
        if kind == Kind::Tools {
            item.remove("outputSchema");
            if let Some(Value::Object(a)) = item.get_mut("annotations") {
                a.remove("title");
            }
        }
    }
    if older(version, "2025-03-26") && kind == Kind::Tools {
        item.remove("annotations");
    }
}

/// Rewrites a `tools/call` or `prompts/get` result for `version`.
pub fn downgrade_result(method: &str, result: &mut Value, version: &str) {
    let Some(obj) = result.as_object_mut() else {
        return;
    };
    if older(version, "2025-06-18") {
        obj.remove("structuredContent");
    }
    match method {
        "tools/call" => {
            if let Some(Value::Array(content)) = obj.get_mut("content") {
                content
                    .iter_mut()
                    .for_each(|c| downgrade_content(c, version));
            }
        }
        "prompts/get" => {
            if let Some(Value::Array(messages)) = obj.get_mut("messages") {
                for m in messages {
                    if let Some(c) = m.get_mut("content") {
                        downgrade_content(c, version);
                    }
                }
            }
        }
        _ => {}
    }
}

fn downgrade_content(block: &mut Value, version: &str) {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    let replacement = match kind {
        "resource_link" if older(version, "2025-06-18") => {
            let uri = block.get("uri").and_then(Value::as_str).unwrap_or("?");
            let name = block.get("name").and_then(Value::as_str).unwrap_or("");
            Some(format!("[resource link: {uri} {name}]").replace(" ]", "]"))
        }
        "audio" if older(version, "2025-03-26") => {
            let mime = block
                .get("mimeType")
                .and_then(Value::as_str)
                .unwrap_or("audio");
            Some(format!(
                "[{mime} content omitted: protocol {version} has no audio content]"
            ))
        }
        _ => None,
    };
    if let Some(text) = replacement {
        *block = json!({"type": "text", "text": text});
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_clients_lose_only_what_their_version_lacks() {
        let tool = json!({"name": "t", "title": "T", "icons": [], "outputSchema": {}, "annotations": {"readOnlyHint": true}, "inputSchema": {}});
        let mut t = tool.as_object().unwrap().clone();
        downgrade_item(Kind::Tools, &mut t, "2025-06-18");
        assert!(
            t.contains_key("title") && t.contains_key("outputSchema") && !t.contains_key("icons")
        );
        let mut t = tool.as_object().unwrap().clone();
        downgrade_item(Kind::Tools, &mut t, "2025-03-26");
        assert!(
            !t.contains_key("title")
                && !t.contains_key("outputSchema")
                && t.contains_key("annotations")
        );
        let mut t = tool.as_object().unwrap().clone();
        downgrade_item(Kind::Tools, &mut t, "2024-11-05");
        assert_eq!(Value::Object(t), json!({"name": "t", "inputSchema": {}}));
    }

    #[test]
    fn results_are_rewritten_for_old_clients() {
        let mut r = json!({"content": [
            {"type": "text", "text": "hi"},
            {"type": "resource_link", "uri": "file:///a", "name": "a"},
            {"type": "audio", "data": "AA==", "mimeType": "audio/wav"}
        ], "structuredContent": {"x": 1}});
        downgrade_result("tools/call", &mut r, "2024-11-05");
        assert_eq!(
            r,
            json!({"content": [
                {"type": "text", "text": "hi"},
                {"type": "text", "text": "[resource link: file:///a a]"},
                {"type": "text", "text": "[audio/wav content omitted: protocol 2024-11-05 has no audio content]"}
            ]})
        );
        let mut r = json!({"content": [{"type": "audio", "data": "AA==", "mimeType": "audio/wav"}], "structuredContent": {}});
        downgrade_result("tools/call", &mut r, "2025-03-26");
        assert_eq!(r["content"][0]["type"], "audio");
        assert!(r.get("structuredContent").is_none());
        assert!(!needs_downgrade("2025-11-25"));
        assert!(needs_downgrade("2025-06-18"));
        let plain = r#"{"content": [{"type": "text", "text": "hi"}]}"#;
        assert!(!result_may_need_downgrade(
            "2025-06-18",
            r#"{"structuredContent": {}}"#
        ));
        assert!(!result_may_need_downgrade("2025-03-26", plain));
        assert!(result_may_need_downgrade(
            "2025-03-26",
            r#"{"structuredContent": {}}"#
        ));
        assert!(result_may_need_downgrade(
            "2024-11-05",
            r#"[{"type": "audio"}]"#
        ));
        assert!(!result_may_need_downgrade(
            "2025-03-26",
            r#"[{"type": "audio"}]"#
        ));
        assert!(result_may_need_downgrade(
            "2025-03-26",
            r#"{"\u0073tructuredContent": 1}"#
        ));
    }
}
