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

/// A message over `limit` bytes was read (only `start` of it kept): says so, and returns
/// the error that answers the request it was the answer to. Only what the message's own
/// top level says counts (an `"id"` inside its `result` is someone else's): its `id`, or,
/// for a response whose `id` comes later, an error without one, which the hub gives the
/// one request in flight on that backend if there is exactly one. A request or
/// notification from the backend (a top-level `"method"`), or a message whose start says
/// neither, is dropped, and the request it may have answered times out.
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
    let top = sniff(start);
    if top.method || !(top.id.is_some() || top.response) {
        return None;
    }
    Some(crate::jsonrpc::Response::error(
        top.id,
        crate::jsonrpc::INTERNAL_ERROR,
        why,
    ))
}

/// What the first bytes of a message say at its top level.
#[derive(Debug, Default, PartialEq)]
struct TopLevel {
    id: Option<crate::jsonrpc::Id>,
    /// A `"method"` key: a request or a notification.
    method: bool,
    /// A `"result"` or `"error"` key: a response.
    response: bool,
}

/// Reads the top level of a JSON object from its first bytes (the rest may be gigabytes),
/// keeping track of nesting and strings, so that keys inside values are not taken for
/// the message's own.
fn sniff(start: &[u8]) -> TopLevel {
    let text = String::from_utf8_lossy(start);
    let b = text.as_bytes();
    let mut top = TopLevel::default();
    let (mut depth, mut i) = (0usize, 0usize);
    let mut expect_key = false;
    let mut key: Option<String> = None;
    while i < b.len() {
        match b[i] {
            b'"' => {
                let mut j = i + 1;
                let mut escaped = false;
                while j < b.len() && (escaped || b[j] != b'"') {
                    escaped = !escaped && b[j] == b'\\';
                    j += 1;
                }
                if j >= b.len() {
                    break; // cut off inside a string
                }
                let literal = &text[i..=j];
                if depth == 1 && expect_key {
                    key = serde_json::from_str::<String>(literal).ok();
                    expect_key = false;
                } else if depth == 1 {
                    if key.as_deref() == Some("id") {
                        top.id = id_of(literal);
                    }
                    key = None;
                }
                i = j + 1;
                continue;
            }
            b'{' | b'[' => {
                if depth == 1 {
                    key = None;
                }
                depth += 1;
                expect_key = depth == 1 && b[i] == b'{';
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect_key = true,
            b':' if depth == 1 => match key.as_deref() {
                Some("method") => top.method = true,
                Some("result" | "error") => top.response = true,
                _ => {}
            },
            c if depth == 1 && (c == b'-' || c.is_ascii_digit()) => {
                let end = text[i..]
                    .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                    .map_or(b.len(), |n| i + n);
                if end < b.len() && key.as_deref() == Some("id") {
                    top.id = id_of(&text[i..end]);
                }
                key = None;
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    top
}

/// A request id from its JSON text (a string or an integer).
fn id_of(raw: &str) -> Option<crate::jsonrpc::Id> {
    let probe = format!(r#"{{"jsonrpc":"2.0","id":{raw},"result":null}}"#);
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
        assert_eq!(sniff(&buf).id.and_then(|i| i.as_u64()), Some(42));
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
    fn only_the_top_level_id_of_an_oversized_message_counts() {
        let id = |s: &str| sniff(s.as_bytes()).id.map(|i| i.to_string());
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":"abc","result":{"content":"#).as_deref(),
            Some(r#""abc""#)
        );
        assert_eq!(
            id(r#"{"id": 7 , "jsonrpc":"2.0","res"#).as_deref(),
            Some("7")
        );
        // An "id" inside the result is not the message's: the real one comes later.
        let inner = r#"{"jsonrpc":"2.0","result":{"items":[{"id":3,"name":"x"}],"id":"#;
        assert_eq!(id(inner), None);
        assert_eq!(
            sniff(inner.as_bytes()),
            TopLevel {
                id: None,
                method: false,
                response: true
            }
        );
        // Nor one inside a string, or after a key that merely ends in "id".
        assert_eq!(id(r#"{"jsonrpc":"2.0","result":"\"id\":9","#), None);
        assert_eq!(id(r#"{"jsonrpc":"2.0","xid":5,"result":"#), None);
        // A number cut off at the end of what was kept is not taken.
        assert_eq!(id(r#"{"jsonrpc":"2.0","id":12"#), None);
        // A request from the backend says so; a message that says nothing is nothing.
        let request = sniff(br#"{"jsonrpc":"2.0","method":"x","id":1,"params":"#);
        assert!(request.method && request.id.is_some());
        assert_eq!(
            sniff(br#"{"jsonrpc":"2.0","params":{"id":1"#),
            TopLevel::default()
        );
        assert!(oversized("b", br#"{"jsonrpc":"2.0","params":{"id":1"#, 10, 5).is_none());
        assert!(oversized("b", br#"{"jsonrpc":"2.0","method":"m","id":1"#, 10, 5).is_none());
        let sole = oversized("b", inner.as_bytes(), 10, 5).expect("an error for the sole call");
        assert_eq!(sole.id, None);
    }
}
