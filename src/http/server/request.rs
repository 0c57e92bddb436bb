//! One request on a connection: its head (parsed with `httparse`), how its body is framed
//! and read, and the answer: a whole `Response`, or the socket taken as a `Stream`.
//!
//! Knows nothing of routes or MCP; the connection loop in `server.rs` makes a `Request` for
//! each head it reads and hands it to the handler.

use super::hangup::Watch;
use super::{Conn, Ctx, MAX_HEAD, MAX_HEADERS, ReadError, Slot, Socket};
use log::debug;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// A body left unread up to this size is read and dropped, so the connection can be kept.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// A parsed request head: its bytes, and where in them each part is, so reading a head
/// allocates nothing (the bytes are the connection's buffer, given back after the request).
pub struct Head {
    raw: Vec<u8>,
    method: Span,
    target: Target,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    /// Name and value of each header line, in order (a vector the connection keeps
    /// between requests, like the bytes).
    headers: Vec<(Span, Span)>,
}

/// Where a part of the head is in its bytes.
#[derive(Clone, Copy, Default)]
pub(super) struct Span(u16, u16);

/// The request target as the handler sees it: a part of the head (the origin form, or the
/// path and query of an absolute-form target), or, rarely, text of its own.
enum Target {
    At(Span),
    Own(String),
}

/// Parses a head from the start of `buf` and takes it from there; None if more bytes are
/// needed. The head keeps `buf`'s allocation, and `buf` becomes `spare` with what came
/// after the head (the connection gives the head's bytes back as its next spare), so a
/// kept-alive connection reads its requests without allocating.
pub(super) fn parse_head(
    buf: &mut Vec<u8>,
    spare: &mut Vec<u8>,
    spans: &mut Vec<(Span, Span)>,
) -> Result<Option<Head>, Response> {
    let mut parsed_headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut parsed_headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
            return Err(Response::text(
                431,
                &format!("request head of {len} bytes, over the {MAX_HEAD}-byte limit"),
            ));
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Response::text(
                431,
                &format!("more than {MAX_HEADERS} header lines"),
            ));
        }
        Err(e) => return Err(Response::text(400, &format!("malformed request head: {e}"))),
    };
    let version = parsed.version.unwrap_or(1);
    let hosts = parsed
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Host"))
        .count();
    // RFC 9112 3.2: exactly one Host on HTTP/1.1, at most one on 1.0.
    if hosts > 1 || (hosts == 0 && version == 1) {
        return Err(Response::text(
            400,
            "a request must carry exactly one Host header",
        ));
    }
    // Every part is a slice of `buf`: where it starts and ends there (the head is at most
    // MAX_HEAD bytes, so u16 holds it).
    let base = buf.as_ptr() as usize;
    let span = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        Span(start as u16, (start + part.len()) as u16)
    };
    let method = span(parsed.method.unwrap_or_default().as_bytes());
    let path = parsed.path.unwrap_or_default();
    let target = match origin_form(path) {
        OriginForm::Same => Target::At(span(path.as_bytes())),
        OriginForm::Suffix(at) => Target::At(span(&path.as_bytes()[at..])),
        OriginForm::Own(text) => Target::Own(text),
    };
    let mut headers = std::mem::take(spans);
    headers.clear();
    headers.extend(
        parsed
            .headers
            .iter()
            .map(|h| (span(h.name.as_bytes()), span(h.value))),
    );
    spare.clear();
    spare.extend_from_slice(&buf[len..]);
    std::mem::swap(buf, spare);
    let mut raw = std::mem::take(spare);
    raw.truncate(len);
    Ok(Some(Head {
        raw,
        method,
        target,
        version,
        headers,
    }))
}

/// What a request target is in origin form.
enum OriginForm {
    /// It is one already.
    Same,
    /// From this byte on (an absolute-form target's path and query).
    Suffix(usize),
    /// This (an absolute-form target with a query but no path: `/` before the query).
    Own(String),
}

/// The path and query of a request target: an absolute-form one (`http://host/mcp?x`,
/// which RFC 9112 3.2.2 says a server must accept) without its scheme and authority.
fn origin_form(target: &str) -> OriginForm {
    let scheme = ["http://", "https://"].into_iter().find(|s| {
        target
            .get(..s.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(s))
    });
    let Some(scheme) = scheme else {
        return OriginForm::Same;
    };
    let rest = &target[scheme.len()..];
    match rest.find(['/', '?']) {
        Some(at) if rest.as_bytes()[at] == b'/' => OriginForm::Suffix(scheme.len() + at),
        Some(at) => OriginForm::Own(format!("/{}", &rest[at..])),
        None => OriginForm::Own("/".into()),
    }
}

impl Head {
    fn text(&self, at: Span) -> &[u8] {
        &self.raw[at.0 as usize..at.1 as usize]
    }

    fn method(&self) -> &str {
        std::str::from_utf8(self.text(self.method)).unwrap_or_default()
    }

    fn target(&self) -> &str {
        match &self.target {
            Target::At(at) => std::str::from_utf8(self.text(*at)).unwrap_or_default(),
            Target::Own(text) => text,
        }
    }

    /// The values of the headers named `name` (case-insensitive); a value that is not
    /// UTF-8 is passed over.
    fn headers_named<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(k, _)| self.text(*k).eq_ignore_ascii_case(name.as_bytes()))
            .filter_map(|(_, v)| std::str::from_utf8(self.text(*v)).ok())
    }

    /// How the body is framed, and whether the connection may be kept after this request.
    /// An error (a body whose end cannot be known) closes the connection.
    pub(super) fn framing(&self) -> Result<(Body, bool), Response> {
        let connection = self
            .headers_named("Connection")
            .collect::<Vec<_>>()
            .join(",")
            .to_ascii_lowercase();
        let mut tokens = connection.split(',').map(str::trim);
        let keep_alive = if self.version == 0 {
            tokens.any(|t| t == "keep-alive")
        } else {
            !tokens.any(|t| t == "close")
        };
        let te: Vec<&str> = self.headers_named("Transfer-Encoding").collect();
        let lengths: Vec<&str> = self.headers_named("Content-Length").collect();
        if !te.is_empty() {
            if !lengths.is_empty() {
                return Err(Response::text(
                    400,
                    "a request may not have both Transfer-Encoding and Content-Length",
                ));
            }
            let all = te.join(",");
            // Only `chunked` by itself: a coding before it (gzip, chunked) would have to be
            // undone, which the gateway does not do.
            let codings: Vec<&str> = all
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            if !matches!(codings.as_slice(), [only] if only.eq_ignore_ascii_case("chunked")) {
                return Err(Response::text(
                    501,
                    &format!("unsupported Transfer-Encoding '{all}' (only chunked is)"),
                ));
            }
            return Ok((Body::Chunked, keep_alive));
        }
        if lengths.is_empty() {
            return Ok((Body::Done, keep_alive));
        }
        let values: Vec<&str> = lengths
            .iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .collect();
        let agreed = values
            .iter()
            .all(|v| *v == values[0] && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        match values[0].parse::<u64>() {
            Ok(0) if agreed => Ok((Body::Done, keep_alive)),
            Ok(n) if agreed => Ok((Body::Length(n), keep_alive)),
            _ => Err(Response::text(
                400,
                &format!("invalid Content-Length '{}'", lengths.join(", ")),
            )),
        }
    }
}

/// How much of a request's body is still to be read.
#[derive(Debug, PartialEq)]
pub(super) enum Body {
    Length(u64),
    Chunked,
    Done,
}

/// One request on a connection. The handler answers it with `respond`, or takes the
/// socket for a stream with `into_writer`; a request dropped unanswered gets a 500.
pub struct Request<'c> {
    pub(super) conn: &'c mut Conn,
    pub(super) head: Head,
    pub(super) body: Body,
    /// Whether `100 Continue` was sent.
    pub(super) continued: bool,
    pub(super) answered: bool,
    pub(super) ctx: &'c Ctx,
    /// Bytes of body memory this request holds (`Limits::body_memory`).
    pub(super) held: usize,
    /// When the whole body must have arrived (its head's end and `body_timeout`): one
    /// deadline whether the handler reads the body or it is read and dropped after.
    pub(super) body_deadline: Instant,
}

impl Request<'_> {
    pub fn method(&self) -> &str {
        self.head.method()
    }

    /// The request target: path and query.
    pub fn url(&self) -> &str {
        self.head.target()
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.conn.peer
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.headers_named(name).next()
    }

    /// Closes the connection after this request's answer (a client that failed to
    /// authenticate keeps no connection open).
    pub fn close_after(&mut self) {
        self.conn.keep_alive = false;
    }

    /// Watches the connection for the client hanging up while its answer is prepared (on
    /// Linux; elsewhere it never fires). Drop it before answering.
    pub fn watch_hangup(&self) -> Watch {
        let socket = self
            .conn
            .socket
            .as_ref()
            .expect("a request being answered still has its socket");
        self.ctx.hangups.watch(socket.tcp())
    }

    /// Reads the whole body (sending `100 Continue` first when the client waits for it).
    /// The error is the response to send instead: 413 over the size limit, 408 when the
    /// body does not arrive in time, 400 when it is malformed or cut short.
    pub fn read_body(&mut self) -> Result<Vec<u8>, Response> {
        let max = self.ctx.limits.max_body as u64;
        if let Body::Length(n) = self.body
            && n > max
        {
            self.conn.keep_alive = false;
            return Err(too_large(max));
        }
        if self.body == Body::Done {
            return Ok(Vec::new());
        }
        self.send_continue();
        let deadline = self.body_deadline;
        let mut out = Vec::new();
        let read = match self.body {
            Body::Length(n) => self.read_exact_into(&mut out, n as usize, deadline),
            Body::Chunked => self.read_chunked(&mut out, max, deadline),
            Body::Done => Ok(()),
        };
        self.release(self.held);
        if let Err(response) = read {
            // What is left of the body stays unread: the connection closes after the answer.
            self.conn.keep_alive = false;
            return Err(response);
        }
        self.body = Body::Done;
        Ok(out)
    }

    fn send_continue(&mut self) {
        let expects = self
            .header("Expect")
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("100-continue"));
        if expects && self.head.version == 1 && !self.continued {
            self.continued = true;
            let socket = self.conn.socket();
            let _ = socket
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .and_then(|_| socket.flush());
        }
    }

    /// Appends `n` body bytes to `out`: first those already read, then from the socket.
    fn read_exact_into(
        &mut self,
        out: &mut Vec<u8>,
        n: usize,
        deadline: Instant,
    ) -> Result<(), Response> {
        let have = n.min(self.conn.buf.len());
        self.hold(have)?;
        out.extend(self.conn.buf.drain(..have));
        let mut left = n - have;
        while left > 0 {
            // Straight into `out`, in pieces of at most 1 MiB, so nothing is copied twice.
            let start = out.len();
            let piece = left.min(1024 * 1024);
            self.hold(piece)?;
            out.resize(start + piece, 0);
            let read = self.conn.read_before(&mut out[start..], deadline);
            let got = self.body_read(read);
            let kept = got.as_ref().map_or(0, |n| *n);
            out.truncate(start + kept);
            self.release(piece - kept);
            left -= got?;
        }
        Ok(())
    }

    /// Counts `bytes` more of body memory for this request, unless that takes the bodies
    /// being read past `body_memory` while others hold some of it.
    fn hold(&mut self, bytes: usize) -> Result<(), Response> {
        let bodies = &self.ctx.bodies;
        let before = bodies.fetch_add(bytes, Ordering::SeqCst);
        if before + bytes > self.ctx.limits.body_memory && before > self.held {
            bodies.fetch_sub(bytes, Ordering::SeqCst);
            debug!(
                "http: {}: refused a body: too many large bodies at once",
                self.conn.peer
            );
            return Err(Response::text(
                503,
                "the gateway is receiving too many large requests at once; try again",
            )
            .with_header("Retry-After", "1"));
        }
        self.held += bytes;
        Ok(())
    }

    /// Gives back body memory (all of it once the body is read: it is the handler's now).
    fn release(&mut self, bytes: usize) {
        let bytes = bytes.min(self.held);
        self.ctx.bodies.fetch_sub(bytes, Ordering::SeqCst);
        self.held -= bytes;
    }

    fn body_timed_out(&self) -> Response {
        debug!(
            "http: {}: request body not complete in time",
            self.conn.peer
        );
        Response::text(
            408,
            &format!(
                "the request body did not arrive within {} s",
                self.ctx.limits.body_timeout.as_secs()
            ),
        )
    }

    /// A chunked body: size lines, chunks, the last chunk and its trailers (dropped).
    fn read_chunked(
        &mut self,
        out: &mut Vec<u8>,
        max: u64,
        deadline: Instant,
    ) -> Result<(), Response> {
        let malformed =
            |what: &str| Response::text(400, &format!("malformed chunked body: {what}"));
        loop {
            let (len, size) = match httparse::parse_chunk_size(&self.conn.buf) {
                Ok(httparse::Status::Complete(found)) => found,
                Ok(httparse::Status::Partial) => {
                    if self.conn.buf.len() > 1024 {
                        return Err(malformed("a chunk size line over 1024 bytes"));
                    }
                    self.more(deadline)?;
                    continue;
                }
                Err(_) => return Err(malformed("an invalid chunk size")),
            };
            self.conn.buf.drain(..len);
            if size == 0 {
                return self.skip_trailers(deadline);
            }
            if out.len() as u64 + size > max {
                return Err(too_large(max));
            }
            self.read_exact_into(out, size as usize, deadline)?;
            while self.conn.buf.len() < 2 {
                self.more(deadline)?;
            }
            if &self.conn.buf[..2] != b"\r\n" {
                return Err(malformed("a chunk not followed by CRLF"));
            }
            self.conn.buf.drain(..2);
        }
    }

    /// Trailer lines after the last chunk, up to the empty line.
    fn skip_trailers(&mut self, deadline: Instant) -> Result<(), Response> {
        loop {
            match self.conn.buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.conn.buf.drain(..2);
                    return Ok(());
                }
                Some(end) => {
                    self.conn.buf.drain(..end + 2);
                }
                None if self.conn.buf.len() > MAX_HEAD => {
                    return Err(Response::text(431, "chunked trailers too large"));
                }
                None => self.more(deadline)?,
            }
        }
    }

    fn more(&mut self, deadline: Instant) -> Result<(), Response> {
        let read = self.conn.fill(deadline);
        self.body_read(read).map(|_| ())
    }

    /// A read of the body as the bytes it gave, or the response that ends the request.
    fn body_read(&self, read: Result<usize, ReadError>) -> Result<usize, Response> {
        match read {
            Ok(n) => Ok(n),
            Err(ReadError::TimedOut) => Err(self.body_timed_out()),
            Err(ReadError::Closed) => Err(Response::text(400, "the request body ended early")),
        }
    }

    /// Reads and drops a small unread body so the connection can serve the next request;
    /// a larger one (or one the client has not sent, waiting for 100 Continue) closes it.
    fn settle_body(&mut self) {
        match self.body {
            Body::Done => {}
            Body::Length(n) if n <= DRAIN_LIMIT && !self.expects_continue() => {
                let deadline = self.body_deadline;
                let mut dropped = Vec::new();
                if self
                    .read_exact_into(&mut dropped, n as usize, deadline)
                    .is_err()
                {
                    self.conn.keep_alive = false;
                }
                self.release(self.held);
                self.body = Body::Done;
            }
            _ => {
                self.conn.keep_alive = false;
                self.conn.unread = true;
            }
        }
    }

    fn expects_continue(&self) -> bool {
        !self.continued && self.header("Expect").is_some()
    }

    /// Sends the response. The connection then serves the client's next request, unless
    /// either side asked to close it.
    pub fn respond(mut self, response: Response) {
        self.answered = true;
        self.settle_body();
        let head_only = self.head.method() == "HEAD";
        let window = self.ctx.limits.write_window();
        self.conn.write_response(&response, head_only, window);
    }

    /// Takes the connection for a stream: the caller writes the status line, headers and
    /// events itself (with `Stream`), flushing as it goes. Writes that make no progress for
    /// the idle timeout fail, so a client that stops reading cannot hold a writer forever;
    /// `Stream::hangup` says at once when the client closes the connection.
    pub fn into_writer(mut self) -> Stream {
        self.answered = true;
        self.body = Body::Done;
        self.conn.keep_alive = false;
        let socket = self
            .conn
            .socket
            .take()
            .expect("a request being answered still has its socket");
        let _ = socket.tcp().set_read_timeout(None);
        Stream {
            watch: self.ctx.hangups.watch(socket.tcp()),
            socket,
            _slot: self.conn.slot.take(),
            window: self.ctx.limits.write_window(),
        }
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        // The head's bytes become the connection's spare buffer again, and its list of
        // header lines the connection's (`parse_head`).
        if self.conn.spare.capacity() == 0 {
            let mut raw = std::mem::take(&mut self.head.raw);
            raw.clear();
            self.conn.spare = raw;
        }
        if self.conn.spans.capacity() == 0 {
            self.conn.spans = std::mem::take(&mut self.head.headers);
        }
        self.release(self.held);
        if !self.answered {
            self.answered = true;
            self.conn.keep_alive = false;
            let window = self.ctx.limits.write_window();
            self.conn.write_response(
                &Response::text(500, "the gateway did not answer this request"),
                false,
                window,
            );
        }
    }
}

fn too_large(max: u64) -> Response {
    Response::text(413, &format!("request body over the {max}-byte limit"))
}

/// A connection taken for a stream; closing it (dropping) frees its place.
pub struct Stream {
    /// Declared first, so it stops watching before the socket closes.
    watch: Watch,
    pub(super) socket: Socket,
    pub(super) _slot: Option<Slot>,
    /// The period in which each write must make progress (`Socket::write_paced`).
    window: std::time::Duration,
}

impl Stream {
    /// Another handle on the socket, for sends that must not wait (`legacy::Door`):
    /// a plain TCP connection's only (a TLS session's state is its writer's alone).
    pub fn plain_handle(&self) -> Option<std::net::TcpStream> {
        match &self.socket {
            super::Socket::Plain(s) => s.try_clone().ok(),
            #[cfg(feature = "tls")]
            super::Socket::Tls(_) => None,
        }
    }

    /// Gets a message when the client hangs up (where that can be watched; elsewhere the
    /// next write fails instead).
    pub fn hangup(&self) -> crossbeam_channel::Receiver<()> {
        self.watch.rx.clone()
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(buf)
    }

    /// All of `buf`, or an error once a period passes without progress (a client that
    /// reads a little now and then cannot hold the writer, or the bytes, for long).
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.socket.write_paced(buf, self.window)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

/// A whole response: status, headers and body, written in one piece.
pub struct Response {
    status: u16,
    /// The header lines, each ending in CRLF, as they go on the wire.
    headers: String,
    body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        let mut headers = String::with_capacity(128);
        headers.push_str("Content-Type: ");
        headers.push_str(content_type);
        headers.push_str("\r\n");
        Response {
            status,
            headers,
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status, "application/json", body)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push_str(name);
        self.headers.push_str(": ");
        self.headers.push_str(value);
        self.headers.push_str("\r\n");
        self
    }

    pub(super) fn body_len(&self) -> usize {
        self.body.len()
    }

    pub(super) fn body(&self) -> &[u8] {
        &self.body
    }

    /// The bytes on the wire (the head alone with `head_only`).
    pub(super) fn head_and_body(&self, head_only: bool, close: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.write_into(&mut bytes, head_only, close);
        bytes
    }

    /// Appends the bytes on the wire to `out` (the head alone with `head_only`).
    pub(super) fn write_into(&self, out: &mut Vec<u8>, head_only: bool, close: bool) {
        use std::io::Write as _;
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\n{}Content-Length: {}\r\n{}\r\n",
            self.status,
            reason(self.status),
            self.headers,
            self.body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_whole_or_ask_for_more() {
        let mut buf =
            b"POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}GET".to_vec();
        let head = parse_head(&mut buf, &mut Vec::new(), &mut Vec::new())
            .ok()
            .flatten()
            .expect("a whole head");
        assert_eq!(
            (head.method(), head.target(), head.version),
            ("POST", "/mcp?x=1", 1)
        );
        assert_eq!(
            head.headers_named("content-length").collect::<Vec<_>>(),
            ["2"]
        );
        assert_eq!(
            buf, b"{}GET",
            "the body and the next request stay in the buffer"
        );
        let mut partial = b"GET / HTTP/1.1\r\nHost:".to_vec();
        assert!(matches!(
            parse_head(&mut partial, &mut Vec::new(), &mut Vec::new()),
            Ok(None)
        ));
        let mut garbage = b"\x00\x01 / HTTP/1.1\r\n\r\n".to_vec();
        assert_eq!(
            parse_head(&mut garbage, &mut Vec::new(), &mut Vec::new())
                .err()
                .map(|r| r.status),
            Some(400)
        );
        let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        let mut many = format!("GET / HTTP/1.1\r\n{many}\r\n").into_bytes();
        assert_eq!(
            parse_head(&mut many, &mut Vec::new(), &mut Vec::new())
                .err()
                .map(|r| r.status),
            Some(431)
        );
    }

    #[test]
    fn heads_over_the_limit_one_host_and_absolute_targets() {
        // A whole head over the limit is refused, not only one still arriving.
        let padding = "x".repeat(MAX_HEAD + 2000);
        let mut big = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {padding}\r\n\r\n").into_bytes();
        assert_eq!(
            parse_head(&mut big, &mut Vec::new(), &mut Vec::new())
                .err()
                .map(|r| r.status),
            Some(431)
        );
        // Exactly one Host on HTTP/1.1 (none is fine on 1.0).
        let mut two = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec();
        assert_eq!(
            parse_head(&mut two, &mut Vec::new(), &mut Vec::new())
                .err()
                .map(|r| r.status),
            Some(400)
        );
        let mut none = b"GET / HTTP/1.1\r\nX: y\r\n\r\n".to_vec();
        assert_eq!(
            parse_head(&mut none, &mut Vec::new(), &mut Vec::new())
                .err()
                .map(|r| r.status),
            Some(400)
        );
        let mut old = b"GET / HTTP/1.0\r\n\r\n".to_vec();
        assert!(matches!(
            parse_head(&mut old, &mut Vec::new(), &mut Vec::new()),
            Ok(Some(_))
        ));
        // An absolute-form target is served as its path and query.
        for (target, path) in [
            ("http://127.0.0.1:9000/mcp?x=1", "/mcp?x=1"),
            ("HTTPS://gw.example/sse", "/sse"),
            ("http://gw.example", "/"),
            ("http://gw.example?a=b", "/?a=b"),
            ("/mcp", "/mcp"),
        ] {
            let mut buf = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes();
            let head = parse_head(&mut buf, &mut Vec::new(), &mut Vec::new())
                .ok()
                .flatten()
                .expect("a head");
            assert_eq!(head.target(), path, "{target}");
        }
    }

    #[test]
    fn only_chunked_alone_is_a_transfer_encoding() {
        let framing = |te: &str| {
            let mut buf = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {te}\r\n\r\n")
                .into_bytes();
            let head = parse_head(&mut buf, &mut Vec::new(), &mut Vec::new())
                .ok()
                .flatten()
                .expect("a head");
            head.framing().map(|(b, _)| b).map_err(|r| r.status)
        };
        assert_eq!(framing("chunked"), Ok(Body::Chunked));
        assert_eq!(framing("Chunked"), Ok(Body::Chunked));
        assert_eq!(framing("gzip, chunked"), Err(501));
        assert_eq!(framing("identity"), Err(501));
    }

    #[test]
    fn responses_carry_their_length_and_close_when_asked() {
        let r = Response::text(404, "no").with_header("Allow", "GET");
        let text = String::from_utf8(r.head_and_body(false, true)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nAllow: GET\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
        );
        let head = String::from_utf8(r.head_and_body(true, false)).unwrap();
        assert!(head.ends_with("Content-Length: 2\r\n\r\n"), "{head}");
    }
}
