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

mod hangup;
mod request;

use hangup::Hangups;
pub use hangup::Watch;
use request::{Head, parse_head};
pub use request::{Request, Response, Stream};

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
/// How long a connection closed with request bytes unread keeps reading (and dropping)
/// them, so the client sees the response rather than a reset.
const LINGER: Duration = Duration::from_secs(2);
/// A write to a client must move `MIN_PROGRESS` bytes (or finish) within every period of
/// this (or of the idle timeout, if shorter); otherwise the client is not reading and the
/// connection is closed, freeing what it held. A deadline per partial write would let a
/// client that reads a byte now and then hold a large answer for ever.
const WRITE_WINDOW: Duration = Duration::from_secs(10);
const MIN_PROGRESS: usize = 64 * 1024;
/// Below this a response's head and body go out in one write; above it, in two, so a
/// large body is not copied once more.
const ONE_WRITE: usize = 64 * 1024;
/// A new connection's first request head must arrive within this (or the head timeout, if
/// shorter): a connection that says nothing holds its place only this long.
const FIRST_REQUEST: Duration = Duration::from_secs(10);
/// At the connection cap, a connection open this long without a whole first request
/// gives its place to a new one (the newest are left their time to send theirs).
const FRESH_GRACE: Duration = Duration::from_secs(2);

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
    /// Bytes of request bodies being read at once, over all connections; a body that would
    /// go past it while others are being read gets 503 (one body alone always may).
    pub body_memory: usize,
}

impl Limits {
    /// The period in which a write to a client must make progress (`WRITE_WINDOW`).
    pub fn write_window(&self) -> Duration {
        self.idle_timeout.min(WRITE_WINDOW)
    }
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
        .map_err(|e| {
            format!(
                "cannot read the certificate {}: {e}",
                crate::console::quoted_path(cert, None)
            )
        })?;
    if certs.is_empty() {
        return Err(format!("no certificate in '{}'", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "cannot read the private key {}: {e}",
            crate::console::quoted_path(key, None)
        )
    })?;
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
    /// Requests whose head has been read and whose answer is not yet written (a stream
    /// counts until its socket is taken).
    pub busy: AtomicUsize,
}

/// One request being answered, counted in `Counters::busy` until dropped.
struct Busy<'a>(&'a AtomicUsize);

impl<'a> Busy<'a> {
    fn new(count: &'a AtomicUsize) -> Busy<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(count)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Ctx {
    limits: Limits,
    /// Connections that have not yet sent a whole request head, oldest first: at the cap
    /// the oldest of them makes room for a new connection.
    fresh: Fresh,
    hangups: Hangups,
    /// Bytes of request bodies being read now (`Limits::body_memory`).
    bodies: AtomicUsize,
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
        fresh: Fresh::default(),
        hangups: Hangups::start(),
        bodies: AtomicUsize::new(0),
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
    let mut spare = spare_descriptor();
    let mut failing: Option<(Instant, u64)> = None;
    let mut backoff = Duration::from_millis(10);
    let mut next = 0u64;
    loop {
        let accepted = listener.tcp.accept();
        if ctx.stopping.load(Ordering::SeqCst) {
            // Connections already waiting to be taken are told, not reset as the
            // listening socket closes.
            let _ = listener.tcp.set_nonblocking(true);
            let mut waiting = accepted.ok().map(|(tcp, _)| tcp);
            while let Some(tcp) = waiting {
                turn_away(tcp, listener.is_tls(), "the gateway is shutting down");
                waiting = listener.tcp.accept().ok().map(|(tcp, _)| tcp);
            }
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
                if ctx.counters.open.load(Ordering::SeqCst) >= ctx.limits.max_connections
                    && !ctx.fresh.make_room()
                {
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
                if out_of_descriptors(&e) && spare.take().is_some() {
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
                    spare = spare_descriptor();
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

/// A descriptor held in reserve (of /dev/null), given up when the process runs out so
/// the accept loop can still take a client and answer it. None where there is no EMFILE.
fn spare_descriptor() -> Option<std::fs::File> {
    #[cfg(unix)]
    return std::fs::File::open("/dev/null").ok();
    #[cfg(not(unix))]
    None
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
    turn_away(tcp, tls, why);
}

/// Answers 503 on a connection that will not be served, without waiting for it.
fn turn_away(tcp: TcpStream, tls: bool, why: &str) {
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

/// The connections that have not yet sent a whole request head, oldest first, each with a
/// way to shut it down. On Unix that is its descriptor, used only under this table's lock,
/// and a connection's thread takes itself out (under the lock) before its socket closes,
/// so the descriptor is never another socket's; elsewhere, a second handle of the socket.
#[derive(Default)]
struct Fresh(std::sync::Mutex<std::collections::VecDeque<(u64, Instant, Handle)>>);

#[cfg(unix)]
type Handle = std::os::fd::RawFd;
#[cfg(not(unix))]
type Handle = TcpStream;

impl Fresh {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::VecDeque<(u64, Instant, Handle)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, n: u64, accepted: Instant, tcp: &TcpStream) {
        #[cfg(unix)]
        let handle = Some(std::os::fd::AsRawFd::as_raw_fd(tcp));
        #[cfg(not(unix))]
        let handle = tcp.try_clone().ok();
        if let Some(handle) = handle {
            self.lock().push_back((n, accepted, handle));
        }
    }

    /// The connection sent a whole request head, or is about to close.
    fn remove(&self, n: u64) {
        let mut fresh = self.lock();
        if let Some(at) = fresh.iter().position(|(m, _, _)| *m == n) {
            fresh.remove(at);
        }
    }

    /// Shuts down the oldest connection that has said nothing whole for `FRESH_GRACE`, to
    /// make room for a new one; false when there is none.
    fn make_room(&self) -> bool {
        let mut fresh = self.lock();
        // By when each was accepted (threads add themselves in any order).
        let oldest = fresh
            .iter()
            .enumerate()
            .min_by_key(|(_, (_, accepted, _))| *accepted)
            .filter(|(_, (_, accepted, _))| accepted.elapsed() >= FRESH_GRACE)
            .map(|(at, _)| at);
        let Some((_, opened, handle)) = oldest.and_then(|at| fresh.remove(at)) else {
            return false;
        };
        debug!(
            "http: at the connection cap, closed a connection that sent no whole request in {} ms",
            opened.elapsed().as_millis()
        );
        // Still under the lock: its thread has not taken itself out, so it is still open.
        #[cfg(unix)]
        // SAFETY: `handle` is the descriptor of a socket whose thread has not yet taken
        // it out of this table, which it does before the socket closes; shutdown(2)
        // passes no memory.
        unsafe {
            libc::shutdown(handle, libc::SHUT_RDWR);
        }
        #[cfg(not(unix))]
        let _ = handle.shutdown(Shutdown::Both);
        drop(fresh);
        true
    }
}

/// A connection's place in `Fresh`, left when dropped.
struct FreshEntry<'a>(&'a Fresh, u64);

impl<'a> FreshEntry<'a> {
    fn new(fresh: &'a Fresh, n: u64, accepted: Instant, tcp: &TcpStream) -> FreshEntry<'a> {
        fresh.add(n, accepted, tcp);
        FreshEntry(fresh, n)
    }
}

impl Drop for FreshEntry<'_> {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

/// Takes a place among the open connections and starts the connection's thread.
fn start_connection(listener: &Listener, tcp: TcpStream, peer: SocketAddr, n: u64, ctx: &Arc<Ctx>) {
    ctx.counters.open.fetch_add(1, Ordering::SeqCst);
    ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let slot = Slot(ctx.counters.clone());
    let accepted = Instant::now();
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_write_timeout(Some(ctx.limits.write_window()));
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
                spare: Vec::new(),
                out: Vec::new(),
                spans: Vec::new(),
                peer,
                slot: Some(slot),
                keep_alive: true,
                unread: false,
                n,
            };
            // Declared after `conn`, so dropped before it: out of the table before the
            // socket closes, however the thread ends.
            let _fresh = FreshEntry::new(&ctx.fresh, n, accepted, conn.socket().tcp());
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

    /// Writes all of `buf` (and flushes), failing with `TimedOut` when a period of
    /// `window` passes without `MIN_PROGRESS` bytes (or the rest) going out. The socket's
    /// write timeout is `window` between calls (set when the connection starts), so a
    /// write that goes out whole costs no more system calls than a plain one.
    fn write_paced(&mut self, buf: &[u8], window: Duration) -> io::Result<()> {
        let mut left = buf;
        let mut since = Instant::now();
        let mut moved = 0usize;
        let mut shortened = false;
        let result = loop {
            if left.is_empty() {
                break self.flush();
            }
            if moved > 0 || shortened {
                // What is left of this period, for the next write.
                let wait = (since + window).saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    break Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the client took under {MIN_PROGRESS} bytes in {} s",
                            window.as_secs()
                        ),
                    ));
                }
                self.tcp().set_write_timeout(Some(wait))?;
                shortened = true;
            }
            match self.write(left) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    left = &left[n..];
                    moved += n;
                    if moved >= MIN_PROGRESS {
                        since = Instant::now();
                        moved = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    break Err(io::Error::new(io::ErrorKind::TimedOut, e));
                }
                Err(e) => break Err(e),
            }
        };
        if shortened {
            let _ = self.tcp().set_write_timeout(Some(window));
        }
        result
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
    /// A second buffer, swapped with `buf` as each head is taken (`request::parse_head`).
    spare: Vec<u8>,
    /// Where a response is put together before it is written.
    out: Vec<u8>,
    /// The list of a head's header lines, kept between requests.
    spans: Vec<(request::Span, request::Span)>,
    peer: SocketAddr,
    slot: Option<Slot>,
    /// Cleared when the connection must close after the current response.
    keep_alive: bool,
    /// Set when it closes with some of a request's body not read.
    unread: bool,
    /// Its number, in `Ctx::fresh` until its first request head is read.
    n: u64,
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
                    self.write_response(&response, false, ctx.limits.write_window());
                    self.linger();
                    break;
                }
            };
            if first {
                ctx.fresh.remove(self.n);
            }
            first = false;
            let _busy = Busy::new(&ctx.counters.busy);
            let body = match head.framing() {
                Ok((body, keep_alive)) => {
                    self.keep_alive = keep_alive;
                    body
                }
                Err(response) => {
                    self.keep_alive = false;
                    self.write_response(&response, false, ctx.limits.write_window());
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
                ctx,
                held: 0,
                body_deadline: Instant::now() + ctx.limits.body_timeout,
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

    /// Reads into `dst`, waiting until `deadline` at most; Ok(0) means interrupted (try
    /// again). The end of the stream or a failed read is `Closed`.
    fn read_before(&mut self, dst: &mut [u8], deadline: Instant) -> Result<usize, ReadError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::TimedOut);
        }
        let socket = self.socket();
        if socket.tcp().set_read_timeout(Some(left)).is_err() {
            return Err(ReadError::Closed);
        }
        match socket.read(dst) {
            Ok(0) => Err(ReadError::Closed),
            Ok(n) => Ok(n),
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

    /// Reads more bytes into `buf`, waiting until `deadline` at most.
    fn fill(&mut self, deadline: Instant) -> Result<usize, ReadError> {
        // One page: an idle connection waiting here touches no more of its stack.
        let mut chunk = [0u8; 4096];
        let n = self.read_before(&mut chunk, deadline)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next request head; None when the client closed the connection or let it idle
    /// out; an error response for a head that is too slow, too big or malformed.
    fn read_head(&mut self, ctx: &Ctx, first: bool) -> Result<Option<Head>, Response> {
        let limits = &ctx.limits;
        let started = Instant::now();
        if self.buf.is_empty() {
            // A new connection gets the first request's time for its first byte too; a
            // kept-alive one may idle longer between requests.
            let wait = if first {
                limits.header_timeout.min(FIRST_REQUEST)
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
        let allowed = if first {
            limits.header_timeout.min(FIRST_REQUEST)
        } else {
            limits.header_timeout
        };
        let deadline = if first { started } else { Instant::now() } + allowed;
        loop {
            if let Some(head) = parse_head(&mut self.buf, &mut self.spare, &mut self.spans)? {
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
                            allowed.as_secs()
                        ),
                    ));
                }
                Err(ReadError::Closed) => return Ok(None),
            }
        }
    }

    /// Writes a response; a failed write closes the connection.
    fn write_response(&mut self, response: &Response, head_only: bool, window: Duration) {
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        // Assembled in the connection's own buffer, kept between responses.
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let whole = head_only || response.body_len() <= ONE_WRITE;
        response.write_into(&mut out, !whole || head_only, !self.keep_alive);
        let mut written = socket.write_paced(&out, window);
        if !whole {
            written = written.and_then(|_| socket.write_paced(response.body(), window));
        }
        if out.capacity() <= 2 * ONE_WRITE {
            self.out = out;
        }
        if let Err(e) = written {
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
