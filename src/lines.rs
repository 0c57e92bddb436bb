//! Newline-delimited JSON-RPC, as stdio backends and the `--stdio` front end speak it and
//! SSE streams carry it: reading one line with a size limit, and answering for a message
//! over the limit; and `clip`, the start of a text for a message.

use crate::jsonrpc::Message;
use log::warn;
use std::io::BufRead;

/// What `read_line_limited` found.
pub enum Line {
    End,
    /// A whole line is in the buffer.
    Text,
    /// A line of this many bytes, over the limit: only its start is in the buffer.
    TooLong(usize),
}

/// Bytes of an oversized line kept, to find its request id.
const KEEP_OF_OVERSIZED: usize = 512;

/// Reads one line into `buf` (cleared first), keeping at most `limit` bytes: a longer line
/// is read to its end and dropped, and only its first bytes are kept.
pub fn read_line_limited(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut size = 0usize;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(match size {
                0 => Line::End,
                n if n > limit => Line::TooLong(n),
                _ => Line::Text,
            });
        }
        let (take, done) = match memchr_newline(chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        size += take;
        if size <= limit {
            buf.extend_from_slice(&chunk[..take]);
        } else if buf.len() < KEEP_OF_OVERSIZED {
            let room = KEEP_OF_OVERSIZED - buf.len();
            buf.extend_from_slice(&chunk[..take.min(room)]);
        } else if buf.len() > KEEP_OF_OVERSIZED {
            buf.truncate(KEEP_OF_OVERSIZED);
        }
        reader.consume(take);
        if done {
            return Ok(if size > limit {
                Line::TooLong(size)
            } else {
                Line::Text
            });
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// A message over the size limit: if it answers a request, that request gets an error
/// instead, so nobody waits for it; the backend stays in use.
/// A message over `limit` bytes was read (only `start` of it kept): says so, and returns
/// the error that answers the request it was the answer to, if its id can be found.
pub fn oversized(
    name: &str,
    start: &[u8],
    size: usize,
    limit: usize,
) -> Option<crate::jsonrpc::Response> {
    let why = format!(
        "backend '{name}' sent a message of {size} bytes, over the {limit}-byte limit (maxMessageSize)"
    );
    warn!("{why}");
    let id = sniff_id(start)?;
    Some(crate::jsonrpc::Response::error(
        Some(id),
        crate::jsonrpc::INTERNAL_ERROR,
        why,
    ))
}

/// The `"id"` of a message, read from its first bytes only (the rest may be gigabytes).
/// Only a response's id counts: a request from the backend has its `"method"` first or
/// soon after, and is simply dropped.
fn sniff_id(start: &[u8]) -> Option<crate::jsonrpc::Id> {
    let text = String::from_utf8_lossy(start);
    if text.contains("\"method\"") {
        return None;
    }
    let at = text.find("\"id\"")? + 4;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if let Some(s) = rest.strip_prefix('"') {
        s.find('"')? + 2
    } else {
        rest.find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(rest.len())
    };
    let raw = serde_json::value::RawValue::from_string(rest[..end].to_string()).ok()?;
    let probe = format!(r#"{{"jsonrpc":"2.0","id":{},"result":null}}"#, raw.get());
    match Message::parse(&probe).ok()? {
        Message::Response(r) => r.id,
        _ => None,
    }
}

/// The first `max` bytes of `s`, cut on a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    #[test]
    fn long_lines_are_dropped_but_their_start_kept() {
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":\"{}\"}}\n",
            "x".repeat(5000)
        );
        let input = format!("short\n{long}after\nlast");
        let mut reader = BufReader::with_capacity(64, input.as_bytes());
        let mut buf = Vec::new();
        assert!(matches!(
            read_line_limited(&mut reader, &mut buf, 100).unwrap(),
            Line::Text
        ));
        assert_eq!(buf, b"short\n");
        match read_line_limited(&mut reader, &mut buf, 100).unwrap() {
            Line::TooLong(n) => assert_eq!(n, long.len()),
            _ => panic!("not too long"),
        }
        assert_eq!(buf.len(), KEEP_OF_OVERSIZED);
        assert_eq!(sniff_id(&buf).and_then(|i| i.as_u64()), Some(42));
        assert!(matches!(
            read_line_limited(&mut reader, &mut buf, 100).unwrap(),
            Line::Text
        ));
        assert_eq!(buf, b"after\n");
        assert!(matches!(
            read_line_limited(&mut reader, &mut buf, 100).unwrap(),
            Line::Text
        ));
        assert_eq!(buf, b"last");
        assert!(matches!(
            read_line_limited(&mut reader, &mut buf, 100).unwrap(),
            Line::End
        ));
    }

    #[test]
    fn ids_are_sniffed_from_responses_only() {
        let id = |s: &str| sniff_id(s.as_bytes()).map(|i| i.to_string());
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":"abc","result":{"content":"#).as_deref(),
            Some(r#""abc""#)
        );
        assert_eq!(
            id(r#"{"id": 7 , "jsonrpc":"2.0","res"#).as_deref(),
            Some("7")
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","method":"x","id":1,"params":"#),
            None
        );
        assert_eq!(id(r#"{"jsonrpc":"2.0","result":"#), None);
    }
}
