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

/// One SSE event with an `id:` line, for streams a client may resume (`Last-Event-ID`).
pub fn event_with_id(id: u64, name: &str, data: &str) -> String {
    format!("id: {id}\n{}", event(name, data))
}

/// An SSE comment, which clients ignore; it keeps proxies and idle timers from closing
/// the stream.
pub const KEEPALIVE: &str = ": keepalive\n\n";

/// Wraps `payload` as one HTTP/1.1 chunk.
pub fn chunk(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(format!("{:x}\r\n", payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// The chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

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
