//! Server-Sent Events framing, and HTTP/1.1 chunked framing around it.
//!
//! Wire format only: no sessions, no routing, no sockets.

/// One SSE event. Every line of `data` becomes its own `data:` line, so a payload that
/// contains newlines still arrives as one event.
pub fn event(name: &str, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + name.len() + 16);
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

/// An SSE comment, which clients ignore; it keeps proxies and idle timers from closing
/// the stream.
pub const KEEPALIVE: &str = ": keepalive\n\n";

/// Sent as a stream ends (the gateway stops, the session ended): reconnect after a second.
pub const RETRY: &str = "retry: 1000\n\n";

/// Wraps `payload` as one HTTP/1.1 chunk.
pub fn chunk(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(format!("{:x}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// One event (with an `id:` line if given) as one HTTP/1.1 chunk, built in a single buffer
/// of the exact size: `data` is copied once, which matters for megabyte results.
pub fn chunked_event(id: Option<u64>, name: &str, data: &str) -> Vec<u8> {
    let mut out = Vec::new();
    chunked_event_into(&mut out, id, name, data);
    out
}

/// `chunked_event`, appended to `out` (a buffer a stream's writer keeps between events).
pub fn chunked_event_into(out: &mut Vec<u8>, id: Option<u64>, name: &str, data: &str) {
    use std::io::Write as _;
    let mut id_line = [0u8; 32];
    let id_len = match id {
        Some(id) => {
            let mut at = &mut id_line[..];
            let _ = writeln!(at, "id: {id}");
            32 - at.len()
        }
        None => 0,
    };
    let id_line = &id_line[..id_len];
    let lines = || data.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let size = id_line.len()
        + "event: \n".len()
        + name.len()
        + lines().map(|l| "data: \n".len() + l.len()).sum::<usize>()
        + 1;
    out.reserve(size + 12);
    let _ = write!(out, "{size:x}\r\n");
    out.extend_from_slice(id_line);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    for line in lines() {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"\n\r\n");
}

/// Room kept before a `message_chunk_into` event for its chunk-size line (at most 16 hex
/// digits and CRLF).
const HEAD_ROOM: usize = 18;

/// A `message` event of the JSON `write` appends, written straight into `out` as one
/// HTTP/1.1 chunk: the JSON is not copied into a buffer of its own first (a megabyte
/// result is copied once here, not twice). The chunk's size line is only known after, so
/// room is left before the event: returns where the chunk starts in `out`, and the JSON's
/// length. JSON holding a line break (a backend's pretty-printed raw value) is made
/// the line-splitting way (`chunked_event_into`) instead.
pub fn message_chunk_into(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> (usize, usize) {
    const PREFIX: &[u8] = b"event: message\ndata: ";
    out.clear();
    out.resize(HEAD_ROOM, 0);
    out.extend_from_slice(PREFIX);
    let at = out.len();
    write(out);
    let end = out.len();
    if out[at..].contains(&b'\n') {
        let json = out.split_off(at);
        out.clear();
        let text = String::from_utf8_lossy(&json);
        chunked_event_into(out, None, "message", &text);
        return (0, json.len());
    }
    out.extend_from_slice(b"\n\n");
    let mut head = [0u8; HEAD_ROOM];
    let head = {
        use std::io::Write as _;
        let mut at = &mut head[..];
        let _ = write!(at, "{:x}\r\n", out.len() - HEAD_ROOM);
        let written = HEAD_ROOM - at.len();
        &head[..written]
    };
    let start = HEAD_ROOM - head.len();
    out[start..HEAD_ROOM].copy_from_slice(head);
    out.extend_from_slice(b"\r\n");
    (start, end - at)
}

/// The chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// One event read from an SSE stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Reads an SSE stream line by line (the client side, for HTTP backends).
#[derive(Default)]
pub struct Parser {
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl Parser {
    /// Takes one line (with or without its line ending); returns an event when a blank
    /// line completes one. Comments and events without data are skipped.
    pub fn line(&mut self, line: &str) -> Option<Event> {
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            let has_data = std::mem::replace(&mut self.has_data, false);
            let id = self.id.take();
            return has_data.then(|| Event {
                event: if event.is_empty() {
                    "message".into()
                } else {
                    event
                },
                data,
                id,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" => self.id = Some(value.to_string()),
            _ => {} // retry and unknown fields
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_message_chunk_is_the_chunked_event_of_its_json() {
        for json in [
            r#"{"a":1}"#,
            &format!(r#"{{"text":"{}"}}"#, "x".repeat(70_000)),
        ] {
            let mut out = Vec::new();
            let (start, len) =
                message_chunk_into(&mut out, |b| b.extend_from_slice(json.as_bytes()));
            assert_eq!(len, json.len());
            assert_eq!(out[start..], chunked_event(None, "message", json)[..]);
        }
        // A line break in the JSON: each line its own data line, as chunked_event makes it.
        let pretty = "{\n  \"a\": 1\n}";
        let mut out = Vec::new();
        let (start, len) = message_chunk_into(&mut out, |b| b.extend_from_slice(pretty.as_bytes()));
        assert_eq!((start, len), (0, pretty.len()));
        assert_eq!(out, chunked_event(None, "message", pretty));
    }

    use super::*;

    #[test]
    fn a_chunked_event_is_the_event_in_one_chunk() {
        for data in ["{}", "a\nb", "a\r\nb\n", "", &"x".repeat(70_000)] {
            assert_eq!(
                chunked_event(None, "message", data),
                chunk(event("message", data).as_bytes())
            );
            assert_eq!(
                chunked_event(Some(42), "message", data),
                chunk(format!("id: 42\n{}", event("message", data)).as_bytes())
            );
        }
    }

    #[test]
    fn parser_reads_events_comments_and_multiline_data() {
        let mut p = Parser::default();
        let mut got = Vec::new();
        let stream = ": hello\r\nevent: endpoint\r\ndata: /messages?sessionId=1\r\n\r\nid: 7\ndata:{\"a\":\ndata: 1}\n\nretry: 10\n\nevent: message\ndata: \n\n";
        for line in stream.split_inclusive('\n') {
            got.extend(p.line(line));
        }
        assert_eq!(
            got,
            [
                Event {
                    event: "endpoint".into(),
                    data: "/messages?sessionId=1".into(),
                    id: None
                },
                Event {
                    event: "message".into(),
                    data: "{\"a\":\n1}".into(),
                    id: Some("7".into())
                },
                Event {
                    event: "message".into(),
                    data: "".into(),
                    id: None
                },
            ]
        );
    }

    #[test]
    fn event_frames_each_line() {
        assert_eq!(
            event("endpoint", "/messages?sessionId=ab"),
            "event: endpoint\ndata: /messages?sessionId=ab\n\n"
        );
        assert_eq!(
            event("message", "a\r\nb"),
            "event: message\ndata: a\ndata: b\n\n"
        );
    }

    #[test]
    fn chunk_has_hex_length() {
        assert_eq!(
            chunk(&[b'x'; 26]),
            [b"1a\r\n".as_slice(), &[b'x'; 26], b"\r\n"].concat()
        );
    }
}
