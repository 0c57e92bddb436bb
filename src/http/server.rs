//! The gateway's own small HTTP/1.1 server: the accept loop, one thread per connection,
//! request heads parsed with `httparse`, bodies (fixed-length and chunked), responses,
//! keep-alive, and streams handed to a writer.
//!
//! Owns sockets and nothing else: it knows no MCP, no sessions and no routes. Each
//! connection's thread reads a request and calls the handler, which answers it (or takes
//! the socket for a stream); then the thread reads the next request on the same connection.
//! Limits hold against clients that dribble, stall, flood or vanish: a deadline for a
//! request head, one for a body, one for an idle kept-alive connection, caps on head size,
//! header count and body size, and a cap on open connections beyond which new ones get a
//! prompt 503. The accept loop never ends on an error: it says so once, backs off and keeps
//! listening (with a spare descriptor to turn clients away while descriptors run out).

use log::{debug, info, warn};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest request head (request line and headers) accepted; 431 above it.
pub const MAX_HEAD: usize = 32 * 1024;
/// Most header lines in one request; 431 above it.
pub const MAX_HEADERS: usize = 64;
/// Stack of a connection thread: it parses a request's JSON envelope and waits for its answer.
const CONN_STACK: usize = 512 * 1024;
/// A body left unread up to this size is read and dropped, so the connection can be kept.
const DRAIN_LIMIT: u64 = 64 * 1024;
/// How long a connection closed with request bytes unread keeps reading (and dropping)
/// them, so the client sees the response rather than a reset.
const LINGER: Duration = Duration::from_secs(2);

/// What a connection may take and how long it may take it.
#[derive(Clone, Debug)]
pub struct Limits {
    /// From a connection's first byte to the end of its request head.
    pub header_timeout: Duration,
    /// From the end of the head to the end of the body.
    pub body_timeout: Duration,
    /// A kept-alive connection with no new request for this long is closed; also the most
    /// a write to a client that does not read may block.
    pub idle_timeout: Duration,
    /// Connections open at once; beyond this new ones get 503 and are closed.
    pub max_connections: usize,
    /// Largest request body; 413 above it.
    pub max_body: usize,
}

/// A bound listening socket, with the TLS configuration when it serves HTTPS.
pub struct Listener {
    tcp: TcpListener,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Listener {
    /// Listens on `addr`, with TLS when `tls` names a certificate chain and key (PEM files).
    pub fn bind(
        addr: &str,
        tls: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<Listener, String> {
        let tcp = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let Some((cert, key)) = tls else {
            return Ok(Listener {
                tcp,
                #[cfg(feature = "tls")]
                tls: None,
            });
        };
        #[cfg(feature = "tls")]
        {
            let config = tls_config(cert, key)?;
            Ok(Listener {
                tcp,
                tls: Some(Arc::new(config)),
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (cert, key);
            Err("this build has no TLS support: build with `cargo build --release --features tls`, or put a TLS-terminating proxy in front".into())
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}

/// The server configuration for `--tls-cert`/`--tls-key`, with the rustls (and ring) that
/// ureq already brings for HTTPS backends.
#[cfg(feature = "tls")]
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate '{}': {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in '{}'", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key '{}': {e}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS: the certificate and key do not make a server identity: {e}"))
}

/// What a connection thread calls for each request.
pub type Handler = dyn Fn(Request<'_>) + Send + Sync;

/// Counters the accept loop and the connections keep, for the metrics and the log.
#[derive(Default)]
pub struct Counters {
    /// Connections open now.
    pub open: AtomicUsize,
    pub accepted: AtomicU64,
    /// Connections turned away with 503 (over the cap, or out of descriptors).
    pub refused: AtomicU64,
    /// Connections closed by a head, body or idle deadline.
    pub timed_out: AtomicU64,
}

struct Ctx {
    limits: Limits,
    handler: Arc<Handler>,
    stopping: AtomicBool,
    counters: Arc<Counters>,
}

/// The running server: its accept thread, and what stopping it needs.
pub struct Server {
    ctx: Arc<Ctx>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

/// Starts the accept loop on its own thread; each connection gets a thread of its own.
pub fn serve(
    listener: Listener,
    limits: Limits,
    handler: Arc<Handler>,
    counters: Arc<Counters>,
) -> io::Result<Server> {
    let addr = listener.local_addr()?;
    let ctx = Arc::new(Ctx {
        limits,
        handler,
        stopping: AtomicBool::new(false),
        counters,
    });
    let ctx2 = ctx.clone();
    let accept = thread::Builder::new()
        .name("http-accept".into())
        .spawn(move || accept_loop(listener, &ctx2))?;
    Ok(Server {
        ctx,
        addr,
        accept: Some(accept),
    })
}

impl Server {
    /// Stops accepting connections. Requests that arrive later on open connections get
    /// 503; answers being written and streams go on until their owners end them.
    pub fn stop(mut self) {
        self.ctx.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok()
            && let Some(accept) = self.accept.take()
        {
            let _ = accept.join();
        }
    }
}

/// Accepts until stopped. An accept error never ends it: the first of a run is logged, the
/// loop backs off (10 ms, doubling to 1 s) and tries again; while descriptors run out, the
/// spare one lets it take each waiting client and answer 503 rather than leave it hanging.
fn accept_loop(listener: Listener, ctx: &Arc<Ctx>) {
    let mut spare = Spare::open();
    let mut failing: Option<(Instant, u64)> = None;
    let mut backoff = Duration::from_millis(10);
    let mut next = 0u64;
    loop {
        let accepted = listener.tcp.accept();
        if ctx.stopping.load(Ordering::SeqCst) {
            break;
        }
        match accepted {
            Ok((tcp, peer)) => {
                if let Some((since, count)) = failing.take() {
                    info!(
                        "http: accepting connections again ({count} accept error(s) over {} ms)",
                        since.elapsed().as_millis()
                    );
                    backoff = Duration::from_millis(10);
                }
                if ctx.counters.open.load(Ordering::SeqCst) >= ctx.limits.max_connections {
                    refuse(
                        tcp,
                        listener.is_tls(),
                        ctx,
                        &format!(
                            "too many connections ({} is this gateway's limit); try again later",
                            ctx.limits.max_connections
                        ),
                    );
                    continue;
                }
                next += 1;
                start_connection(&listener, tcp, peer, next, ctx);
            }
            // The client gave up before we took it: nothing to do.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                let (_, count) = failing.get_or_insert_with(|| {
                    warn!(
                        "http: cannot accept connections: {e}; turning new clients away until this passes (the port stays open)"
                    );
                    (Instant::now(), 0)
                });
                *count += 1;
                if out_of_descriptors(&e) && spare.release() {
                    // With the spare descriptor free, take the next client (waiting for one
                    // if none is) and tell it; then at once the next, without backing off,
                    // so no client waits behind others that will be refused anyway.
                    if let Ok((tcp, _)) = listener.tcp.accept() {
                        refuse(
                            tcp,
                            listener.is_tls(),
                            ctx,
                            "the gateway is out of file descriptors; try again later",
                        );
                    }
                    spare = Spare::open();
                    if ctx.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    continue;
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    debug!("http: stopped accepting connections");
}

fn out_of_descriptors(e: &io::Error) -> bool {
    #[cfg(unix)]
    return matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// A descriptor held in reserve (of /dev/null) and given up when the process runs out,
/// so the accept loop can still take a client and answer it.
struct Spare(#[allow(dead_code)] Option<std::fs::File>); // held only to be closed

impl Spare {
    fn open() -> Spare {
        #[cfg(unix)]
        return Spare(std::fs::File::open("/dev/null").ok());
        #[cfg(not(unix))]
        Spare(None)
    }

    /// Closes the spare descriptor; false if there was none.
    fn release(&mut self) -> bool {
        self.0.take().is_some()
    }
}

/// Answers a connection that will not be served with a 503 and closes it, without
/// waiting for it (the socket is non-blocking: a client that sent nothing yet, or whose
/// buffer is full, just sees the connection close). A TLS client is only closed.
fn refuse(tcp: TcpStream, tls: bool, ctx: &Ctx, why: &str) {
    let n = ctx.counters.refused.fetch_add(1, Ordering::Relaxed);
    // One line for the first refusal and then one per thousand.
    if n.is_multiple_of(1000) {
        warn!(
            "http: refused a connection: {why} ({} refused so far)",
            n + 1
        );
    }
    if tls {
        return;
    }
    let _ = tcp.set_nonblocking(true);
    let mut scratch = [0u8; 4096];
    let _ = (&tcp).read(&mut scratch);
    let response = Response::text(503, why)
        .with_header("Retry-After", "1")
        .head_and_body(false, true);
    let _ = (&tcp).write(&response);
    let _ = tcp.shutdown(Shutdown::Write);
}

/// Takes a place among the open connections and starts the connection's thread.
fn start_connection(listener: &Listener, tcp: TcpStream, peer: SocketAddr, n: u64, ctx: &Arc<Ctx>) {
    ctx.counters.open.fetch_add(1, Ordering::SeqCst);
    ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let slot = Slot(ctx.counters.clone());
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_write_timeout(Some(ctx.limits.idle_timeout));
    let socket = match wrap(listener, tcp) {
        Ok(s) => s,
        Err(e) => {
            debug!("http: cannot start TLS for {peer}: {e}");
            return;
        }
    };
    let ctx = ctx.clone();
    let spawned = thread::Builder::new()
        .name(format!("http-{n}"))
        .stack_size(CONN_STACK)
        .spawn(move || {
            let mut conn = Conn {
                socket: Some(socket),
                buf: Vec::new(),
                peer,
                slot: Some(slot),
                keep_alive: true,
                unread: false,
            };
            conn.run(&ctx);
        });
    if let Err(e) = spawned {
        // The closure (socket and slot) is dropped: the client sees the connection close.
        warn!("http: cannot start a connection thread for {peer}: {e}");
    }
}

fn wrap(listener: &Listener, tcp: TcpStream) -> io::Result<Socket> {
    #[cfg(feature = "tls")]
    if let Some(config) = &listener.tls {
        let session = rustls::ServerConnection::new(config.clone()).map_err(io::Error::other)?;
        return Ok(Socket::Tls(Box::new(rustls::StreamOwned::new(
            session, tcp,
        ))));
    }
    let _ = listener;
    Ok(Socket::Plain(tcp))
}

/// A place among the open connections, given back when the socket is closed.
struct Slot(Arc<Counters>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A client connection, plain or TLS.
enum Socket {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Socket {
    fn tcp(&self) -> &TcpStream {
        match self {
            Socket::Plain(s) => s,
            #[cfg(feature = "tls")]
            Socket::Tls(s) => &s.sock,
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Socket::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Socket::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Socket::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Socket::Tls(s) => s.flush(),
        }
    }
}

/// One connection's state between its requests.
struct Conn {
    /// None once a stream has taken it.
    socket: Option<Socket>,
    /// Bytes read and not yet used: the start of the next request, when a client pipelines.
    buf: Vec<u8>,
    peer: SocketAddr,
    slot: Option<Slot>,
    /// Cleared when the connection must close after the current response.
    keep_alive: bool,
    /// Set when it closes with some of a request's body not read.
    unread: bool,
}

/// Why reading stopped.
enum ReadError {
    /// The client closed the connection, or it failed.
    Closed,
    /// The deadline passed.
    TimedOut,
}

impl Conn {
    fn run(&mut self, ctx: &Ctx) {
        let mut first = true;
        while self.keep_alive && self.socket.is_some() {
            let head = match self.read_head(ctx, first) {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(response) => {
                    self.keep_alive = false;
                    self.write_response(&response, false);
                    self.linger();
                    break;
                }
            };
            first = false;
            let body = match head.framing() {
                Ok((body, keep_alive)) => {
                    self.keep_alive = keep_alive;
                    body
                }
                Err(response) => {
                    self.keep_alive = false;
                    self.write_response(&response, false);
                    self.linger();
                    break;
                }
            };
            let rq = Request {
                conn: self,
                head,
                body,
                continued: false,
                answered: false,
                limits: &ctx.limits,
            };
            if ctx.stopping.load(Ordering::SeqCst) {
                rq.respond(Response::text(503, "the gateway is shutting down"));
                continue;
            }
            (ctx.handler)(rq);
        }
        if self.unread {
            self.linger();
        }
    }

    fn socket(&mut self) -> &mut Socket {
        self.socket
            .as_mut()
            .expect("a connection with a request being read still has its socket")
    }

    /// Reads more bytes into `buf`, waiting until `deadline` at most.
    fn fill(&mut self, deadline: Instant) -> Result<usize, ReadError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::TimedOut);
        }
        let socket = self.socket();
        if socket.tcp().set_read_timeout(Some(left)).is_err() {
            return Err(ReadError::Closed);
        }
        let mut chunk = [0u8; 16 * 1024];
        match socket.read(&mut chunk) {
            Ok(0) => Err(ReadError::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(ReadError::TimedOut)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(_) => Err(ReadError::Closed),
        }
    }

    /// The next request head; None when the client closed the connection or let it idle
    /// out; an error response for a head that is too slow, too big or malformed.
    fn read_head(&mut self, ctx: &Ctx, first: bool) -> Result<Option<Head>, Response> {
        let limits = &ctx.limits;
        let started = Instant::now();
        if self.buf.is_empty() {
            // A new connection gets the head timeout for its first byte too; a kept-alive
            // one may idle longer between requests.
            let wait = if first {
                limits.header_timeout
            } else {
                limits.idle_timeout
            };
            match self.fill(started + wait) {
                Ok(_) => {}
                Err(ReadError::TimedOut) => {
                    ctx.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    debug!("http: {} idle for {} s: closed", self.peer, wait.as_secs());
                    return Ok(None);
                }
                Err(ReadError::Closed) => return Ok(None),
            }
        }
        let deadline = if first { started } else { Instant::now() } + limits.header_timeout;
        loop {
            if let Some(head) = parse_head(&mut self.buf)? {
                return Ok(Some(head));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Response::text(
                    431,
                    &format!("request head over the {MAX_HEAD}-byte limit"),
                ));
            }
            match self.fill(deadline) {
                Ok(_) => {}
                Err(ReadError::TimedOut) => {
                    ctx.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    debug!(
                        "http: {}: request head not complete in time: closed",
                        self.peer
                    );
                    return Err(Response::text(
                        408,
                        &format!(
                            "the request head did not arrive within {} s",
                            limits.header_timeout.as_secs()
                        ),
                    ));
                }
                Err(ReadError::Closed) => return Ok(None),
            }
        }
    }

    /// Writes a response; a failed write closes the connection.
    fn write_response(&mut self, response: &Response, head_only: bool) {
        let bytes = response.head_and_body(head_only, !self.keep_alive);
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        if let Err(e) = socket.write_all(&bytes).and_then(|_| socket.flush()) {
            debug!(
                "http: {}: client went away before the response: {e}",
                self.peer
            );
            self.keep_alive = false;
        }
    }

    /// Before closing a connection with request bytes unread: stop writing, and read (and
    /// drop) what still comes for a moment, so the client reads the response instead of
    /// a reset.
    fn linger(&mut self) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        let _ = socket.flush();
        let _ = socket.tcp().shutdown(Shutdown::Write);
        let deadline = Instant::now() + LINGER;
        self.buf.clear();
        while self.fill(deadline).is_ok() {
            self.buf.clear();
        }
    }
}

/// A parsed request head.
pub struct Head {
    method: String,
    target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    headers: Vec<(String, String)>,
}

/// Parses a head from the start of `buf` and removes it from there; None if more bytes are
/// needed.
fn parse_head(buf: &mut Vec<u8>) -> Result<Option<Head>, Response> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
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
    let head = Head {
        method: parsed.method.unwrap_or_default().to_string(),
        target: parsed.path.unwrap_or_default().to_string(),
        version: parsed.version.unwrap_or(1),
        headers: parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    };
    buf.drain(..len);
    Ok(Some(head))
}

impl Head {
    fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How the body is framed, and whether the connection may be kept after this request.
    /// An error (a body whose end cannot be known) closes the connection.
    fn framing(&self) -> Result<(Body, bool), Response> {
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
            let last = all.rsplit(',').next().unwrap_or("").trim();
            if !last.eq_ignore_ascii_case("chunked") {
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
enum Body {
    Length(u64),
    Chunked,
    Done,
}

/// One request on a connection. The handler answers it with `respond`, or takes the
/// socket for a stream with `into_writer`; a request dropped unanswered gets a 500.
pub struct Request<'c> {
    conn: &'c mut Conn,
    head: Head,
    body: Body,
    /// Whether `100 Continue` was sent.
    continued: bool,
    answered: bool,
    limits: &'c Limits,
}

impl Request<'_> {
    pub fn method(&self) -> &str {
        &self.head.method
    }

    /// The request target: path and query.
    pub fn url(&self) -> &str {
        &self.head.target
    }

    pub fn remote_addr(&self) -> SocketAddr {
        self.conn.peer
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Reads the whole body (sending `100 Continue` first when the client waits for it).
    /// The error is the response to send instead: 413 over the size limit, 408 when the
    /// body does not arrive in time, 400 when it is malformed or cut short.
    pub fn read_body(&mut self) -> Result<Vec<u8>, Response> {
        let max = self.limits.max_body as u64;
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
        let deadline = Instant::now() + self.limits.body_timeout;
        let mut out = Vec::new();
        let read = match self.body {
            Body::Length(n) => self.read_exact_into(&mut out, n as usize, deadline),
            Body::Chunked => self.read_chunked(&mut out, max, deadline),
            Body::Done => Ok(()),
        };
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
        out.extend(self.conn.buf.drain(..have));
        let mut left = n - have;
        while left > 0 {
            // Straight into `out`, in pieces of at most 1 MiB, so nothing is copied twice.
            let start = out.len();
            let piece = left.min(1024 * 1024);
            out.resize(start + piece, 0);
            let socket = self.conn.socket();
            let wait = deadline.saturating_duration_since(Instant::now());
            let got = if wait.is_zero() || socket.tcp().set_read_timeout(Some(wait)).is_err() {
                Err(io::ErrorKind::TimedOut.into())
            } else {
                socket.read(&mut out[start..])
            };
            match got {
                Ok(0) => {
                    out.truncate(start);
                    return Err(Response::text(400, "the request body ended early"));
                }
                Ok(got) => {
                    out.truncate(start + got);
                    left -= got;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => out.truncate(start),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.body_timed_out());
                }
                Err(e) => {
                    return Err(Response::text(
                        400,
                        &format!("cannot read the request body: {e}"),
                    ));
                }
            }
        }
        Ok(())
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
                self.limits.body_timeout.as_secs()
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
        match self.conn.fill(deadline) {
            Ok(_) => Ok(()),
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
                let deadline = Instant::now() + self.limits.body_timeout;
                let mut dropped = Vec::new();
                if self
                    .read_exact_into(&mut dropped, n as usize, deadline)
                    .is_err()
                {
                    self.conn.keep_alive = false;
                }
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
        let head_only = self.head.method == "HEAD";
        self.conn.write_response(&response, head_only);
    }

    /// Takes the connection for a stream: the caller writes the status line, headers and
    /// events itself (with `Stream`), flushing as it goes. Writes that make no progress for
    /// the idle timeout fail, so a client that stops reading cannot hold a writer forever.
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
            socket,
            _slot: self.conn.slot.take(),
        }
    }
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.answered = true;
            self.conn.keep_alive = false;
            self.conn.write_response(
                &Response::text(500, "the gateway did not answer this request"),
                false,
            );
        }
    }
}

fn too_large(max: u64) -> Response {
    Response::text(413, &format!("request body over the {max}-byte limit"))
}

/// A connection taken for a stream; closing it (dropping) frees its place.
pub struct Stream {
    socket: Socket,
    _slot: Option<Slot>,
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

/// A whole response: status, headers and body, written in one piece.
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
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
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The bytes on the wire.
    fn head_and_body(&self, head_only: bool, close: bool) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut head = String::with_capacity(128);
        let _ = write!(head, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        let _ = write!(head, "Content-Length: {}\r\n", self.body.len());
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
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
        let head = parse_head(&mut buf).ok().flatten().expect("a whole head");
        assert_eq!(
            (head.method.as_str(), head.target.as_str(), head.version),
            ("POST", "/mcp?x=1", 1)
        );
        assert_eq!(head.headers[1], ("Content-Length".into(), "2".into()));
        assert_eq!(
            buf, b"{}GET",
            "the body and the next request stay in the buffer"
        );
        let mut partial = b"GET / HTTP/1.1\r\nHost:".to_vec();
        assert!(matches!(parse_head(&mut partial), Ok(None)));
        let mut garbage = b"\x00\x01 / HTTP/1.1\r\n\r\n".to_vec();
        assert_eq!(parse_head(&mut garbage).err().map(|r| r.status), Some(400));
        let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        let mut many = format!("GET / HTTP/1.1\r\n{many}\r\n").into_bytes();
        assert_eq!(parse_head(&mut many).err().map(|r| r.status), Some(431));
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
