//! Test support: start the real gateway binary on a free loopback port, and speak raw
//! HTTP and SSE to it.
#![allow(dead_code)] // each test binary uses a different part of this module

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// A self-signed certificate for `subject` (and its key) made by `openssl` in `dir`, with
/// extra `-addext` extensions; returns (cert.pem, key.pem).
pub fn self_signed_cert(dir: &Path, subject: &str, extensions: &[&str]) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
    ])
    .arg(format!("/CN={subject}"));
    for ext in extensions {
        cmd.args(["-addext", ext]);
    }
    let made = cmd
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes a test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}

/// Opens `GET /sse` by hand with extra header lines (each ending in CRLF); returns the
/// status line and the open connection, to hold the stream or drop it.
pub fn raw_sse(port: u16, headers: &str) -> (String, BufReader<TcpStream>) {
    raw_stream(port, "/sse", headers)
}

/// A legacy stream opened by hand (200 asserted) and read as far as its endpoint event:
/// the stream, and the endpoint to POST to.
pub fn raw_sse_endpoint(port: u16, headers: &str) -> (BufReader<TcpStream>, String) {
    let (status, mut stream) = raw_sse(port, headers);
    assert!(status.contains(" 200 "), "{status}");
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        assert!(stream.read_line(&mut line).unwrap() > 0, "the stream ended");
    }
    (stream, line["data: ".len()..].trim().to_string())
}

/// `raw_sse` for any path (a Streamable HTTP GET stream on /mcp, say).
pub fn raw_stream(port: u16, path: &str, headers: &str) -> (String, BufReader<TcpStream>) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut r = BufReader::new(s);
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n{headers}\r\n"
    );
    r.get_mut().write_all(head.as_bytes()).unwrap();
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    (status, r)
}

/// A whole-number setting from the environment (benches), or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Polls `cond` until it holds or `WAIT` passes; says whether it held.
pub fn poll(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `cond` holds; fails the test saying `what` did not happen.
pub fn eventually(what: &str, cond: impl FnMut() -> bool) {
    assert!(poll(cond), "{what} (waited {WAIT:?})");
}

/// Waits for a file holding a process id (a command writes `$$` there) and returns it.
pub fn read_pid_file(path: &Path) -> u32 {
    let mut pid = None;
    eventually(&format!("no pid in {}", path.display()), || {
        pid = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        pid.is_some()
    });
    pid.expect("eventually returned")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A config entry that runs the Python fixture server with extra arguments.
pub fn fixture(args: &[&str]) -> Value {
    let script = root().join("tests/fixtures/stdio_server.py");
    let mut all = vec![script.to_string_lossy().into_owned()];
    all.extend(args.iter().map(|s| s.to_string()));
    json!({"type": "stdio", "command": "python3", "args": all})
}

/// A scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mcp-gateway-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The gateway binary `Gateway` starts, when not this build's (`use_binary`).
static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes `Gateway` start `bin` (a bench measures the release artifact).
pub fn use_binary(bin: PathBuf) {
    let _ = BINARY.set(bin);
}

pub struct Gateway {
    child: Child,
    pub port: u16,
    /// The legacy HTTP+SSE endpoint.
    pub url: String,
    /// The Streamable HTTP endpoint.
    pub mcp_url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    pub dir: TempDir,
}

impl Gateway {
    pub fn start(config: &Value) -> Gateway {
        Gateway::start_with(config, &[])
    }

    /// Starts the gateway and waits until it prints the URL clients should use.
    pub fn start_with(config: &Value, extra: &[&str]) -> Gateway {
        Gateway::start_env(config, extra, &[])
    }

    /// `start_with`, with these variables added to the gateway's environment.
    pub fn start_env(config: &Value, extra: &[&str], env: &[(&str, &str)]) -> Gateway {
        Gateway::start_full(config, extra, env, None)
    }

    /// `start_env`, the gateway's open-file limit (soft and hard) set to `nofile` if given.
    pub fn start_full(
        config: &Value,
        extra: &[&str],
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Gateway {
        Gateway::launch(&config.to_string(), extra, env, nofile, false)
    }

    /// Starts the gateway and returns as soon as it listens, while backends may still be
    /// starting (before it prints the URL clients should use).
    pub fn start_listening(config: &Value, extra: &[&str]) -> Gateway {
        Gateway::launch(&config.to_string(), extra, &[], None, true)
    }

    /// Starts the gateway on a config file with exactly this text, in the file's directory
    /// (where relative paths in it are taken from).
    pub fn start_text(text: &str, extra: &[&str]) -> Gateway {
        Gateway::launch(text, extra, &[], None, false)
    }

    fn launch(
        text: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        nofile: Option<u64>,
        early: bool,
    ) -> Gateway {
        let dir = TempDir::new();
        let config_path = dir.path().join("config.json");
        std::fs::write(&config_path, text).expect("write config");
        let bin = BINARY
            .get()
            .cloned()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mcp-gateway")));
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs before exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .args(["--port", "0", "--config"])
            .arg(&config_path)
            .arg("--log-dir")
            .arg(dir.path().join("logs"))
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the gateway binary");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (url_tx, url_rx) = crossbeam_channel::bounded(1);
        let out = child.stdout.take().unwrap();
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // Kept before the URL is announced, so `stdout()` already holds this line.
                let url = if early {
                    line.strip_prefix("listening on ")
                        .and_then(|rest| rest.split(';').next())
                        .map(|addr| format!("http://{addr}"))
                } else {
                    line.strip_prefix("Connect MCP clients to ")
                        .and_then(|rest| rest.split_whitespace().next())
                        .map(|mcp| mcp.trim_end_matches("/mcp").to_string())
                };
                lines.lock().unwrap().push(line);
                if let Some(url) = url {
                    let _ = url_tx.send(url);
                }
            }
        });
        let err = child.stderr.take().unwrap();
        let text = stderr.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(err);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                text.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let base: String = match url_rx.recv_timeout(WAIT) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "gateway did not print its URL\nstdout:\n{}\nstderr:\n{}",
                    stdout.lock().unwrap().join("\n"),
                    stderr.lock().unwrap()
                );
            }
        };
        let port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {base}"));
        Gateway {
            child,
            port,
            url: format!("{base}/sse"),
            mcp_url: format!("{base}/mcp"),
            stdout,
            stderr,
            dir,
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the gateway's stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str) -> bool {
        poll(|| self.stderr().contains(needle))
    }

    /// Waits until the gateway's console output contains `needle`.
    pub fn wait_stdout(&self, needle: &str) -> bool {
        poll(|| self.stdout().contains(needle))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (SIGTERM, SIGHUP...) to the gateway.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory effects; the pid is our child's.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Sends `signal` and waits for the gateway to exit.
    pub fn signal_and_wait(&mut self, signal: i32) -> ExitStatus {
        self.signal(signal);
        self.wait_exit()
    }

    /// Waits (up to `WAIT`) for the gateway to exit by itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "gateway did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> SseClient {
        SseClient::connect(self.port)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP request on its own connection; returns status, headers (lowercased names)
/// and body.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// Header lines up to the blank line that ends a response head: (lower-case name, value).
pub fn read_headers(r: &mut impl BufRead) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            return headers;
        }
        let (k, v) = line.split_once(':').expect("a header line");
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

/// One response (status line, headers, Content-Length body) from a kept-alive connection.
pub fn read_response(r: &mut impl BufRead) -> (String, Vec<(String, String)>, String) {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let headers = read_headers(r);
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (
        status.trim().to_string(),
        headers,
        String::from_utf8(body).unwrap(),
    )
}

/// What comes back on `s` within `wait`: the bytes read until the server closes the
/// connection or the time is up, and whether it closed (a reset counts as closing).
pub fn read_until_close(s: &mut TcpStream, wait: Duration) -> (String, bool) {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (String::from_utf8_lossy(&got).into_owned(), false);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

/// Starts the gateway with `--stdio` on `config`, stdin and stdout piped; the directory
/// holds its config and logs.
/// Runs the gateway on `config` where it is expected not to start: its exit code and what
/// it said on stderr.
pub fn start_refused(config: &Value) -> (Option<i32>, String) {
    let dir = TempDir::new();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(["--port", "0", "--log-dir"])
        .arg(dir.path().join("logs"))
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("run the gateway binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn stdio_gateway(config: &Value, stderr: Stdio) -> (Child, TempDir) {
    let dir = TempDir::new();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(["--stdio", "--config"])
        .arg(&path)
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start the gateway binary");
    (child, dir)
}

pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// A raw legacy-SSE client: one streaming GET, and a POST per message.
pub struct SseClient {
    port: u16,
    pub endpoint: String,
    stream: TcpStream,
    events: Receiver<SseEvent>,
    backlog: RefCell<Vec<Value>>,
}

impl SseClient {
    pub fn connect(port: u16) -> SseClient {
        SseClient::try_connect(port).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `connect`, saying what went wrong instead of failing the test.
    pub fn try_connect(port: u16) -> Result<SseClient, String> {
        SseClient::try_connect_at(port, "/sse")
    }

    /// `try_connect` to another path (a profile's, `/p/NAME/sse`).
    pub fn try_connect_at(port: u16, path: &str) -> Result<SseClient, String> {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
        let mut w = stream.try_clone().unwrap();
        write!(
            w,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(stream.try_clone().unwrap());
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        if !status.starts_with("HTTP/1.1 200") {
            return Err(format!("GET /sse: {status}"));
        }
        let headers = read_headers(&mut r);
        for (name, value) in [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("transfer-encoding", "chunked"),
        ] {
            if !headers
                .iter()
                .any(|(k, v)| k == name && v.eq_ignore_ascii_case(value))
            {
                return Err(format!("GET /sse: no '{name}: {value}' in {headers:?}"));
            }
        }
        let (tx, events) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            let mut pending = String::new();
            while let Some(chunk) = read_chunk(&mut r) {
                pending.push_str(&chunk);
                while let Some(end) = pending.find("\n\n") {
                    let block: String = pending.drain(..end + 2).collect();
                    let mut ev = SseEvent {
                        event: "message".into(),
                        data: String::new(),
                    };
                    let mut has_data = false;
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event: ") {
                            ev.event = v.to_string();
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            if has_data {
                                ev.data.push('\n');
                            }
                            ev.data.push_str(v);
                            has_data = true;
                        }
                    }
                    if has_data && tx.send(ev).is_err() {
                        return;
                    }
                }
            }
        });
        let first = events
            .recv_timeout(WAIT)
            .map_err(|e| format!("GET /sse: no endpoint event: {e}"))?;
        if first.event != "endpoint" {
            return Err(format!(
                "GET /sse: '{}' event before the endpoint",
                first.event
            ));
        }
        Ok(SseClient {
            port,
            endpoint: first.data,
            stream,
            events,
            backlog: RefCell::new(Vec::new()),
        })
    }

    pub fn session(&self) -> &str {
        self.endpoint
            .split("sessionId=")
            .nth(1)
            .expect("sessionId in endpoint")
    }

    pub fn post_raw(&self, body: &str) -> (u16, String) {
        let (status, _, body) = http(
            self.port,
            "POST",
            &self.endpoint,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        (status, body)
    }

    pub fn send(&self, msg: &Value) {
        let (status, body) = self.post_raw(&msg.to_string());
        assert_eq!(status, 202, "POST {msg}: {body}");
    }

    /// The next message on the stream (or from the backlog), if one comes within `wait`.
    pub fn next_message(&self, wait: Duration) -> Option<Value> {
        let queued = !self.backlog.borrow().is_empty();
        if queued {
            return Some(self.backlog.borrow_mut().remove(0));
        }
        self.recv(wait)
    }

    fn recv(&self, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            match self
                .events
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(ev) if ev.event == "message" => {
                    return Some(
                        serde_json::from_str(&ev.data)
                            .unwrap_or_else(|e| panic!("bad JSON on stream: {e}: {}", ev.data)),
                    );
                }
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None;
                }
            }
        }
    }

    /// Waits for the response with this id, keeping other messages for later.
    pub fn response(&self, id: &Value) -> Value {
        self.wait_response(id, WAIT)
            .unwrap_or_else(|| panic!("no response with id {id}"))
    }

    /// The response with this id, if it comes within `wait` (None also when the stream
    /// ends first).
    pub fn wait_response(&self, id: &Value, wait: Duration) -> Option<Value> {
        let found = self
            .backlog
            .borrow()
            .iter()
            .position(|m| &m["id"] == id && m.get("method").is_none());
        if let Some(pos) = found {
            return Some(self.backlog.borrow_mut().remove(pos));
        }
        let deadline = Instant::now() + wait;
        loop {
            let msg = self.recv(deadline.saturating_duration_since(Instant::now()))?;
            if &msg["id"] == id && msg.get("method").is_none() {
                return Some(msg);
            }
            self.backlog.borrow_mut().push(msg);
        }
    }

    pub fn request(&self, id: Value, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(&id)
    }

    /// initialize + notifications/initialized; returns the initialize result.
    pub fn initialize(&self) -> Value {
        let r = self.request(
            json!(0),
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "gateway-tests", "version": "1"}}),
        );
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        r["result"].clone()
    }

    pub fn call(&self, id: Value, tool: &str, args: Value) -> Value {
        self.request(id, "tools/call", json!({"name": tool, "arguments": args}))
    }

    pub fn tool_names(&self) -> Vec<String> {
        let r = self.request(json!("list"), "tools/list", json!({}));
        r["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools/list: {r}"))
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// One HTTP/1.1 chunk's payload; `None` at the last chunk or when the stream ends.
fn read_chunk(r: &mut impl BufRead) -> Option<String> {
    let mut size = String::new();
    if r.read_line(&mut size).ok()? == 0 {
        return None;
    }
    let size = usize::from_str_radix(size.trim(), 16).ok()?;
    if size == 0 {
        return None;
    }
    let mut buf = vec![0; size + 2];
    r.read_exact(&mut buf).ok()?;
    buf.truncate(size);
    Some(String::from_utf8(buf).expect("SSE is UTF-8"))
}

/// Whether a process is still alive (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// A loopback port nobody listens on right now (for servers a test starts itself).
/// Debian's chromium (or chromium-browser) on the PATH: the status page is rendered in it
/// and Playwright MCP drives it (`tests/run` installs it).
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
}

/// What the fixture's `state` tool says (cancellations, subscriptions, roots answers, its
/// pid), from a `tools/call` answer.
pub fn fixture_state(answer: &Value) -> Value {
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no state in {answer}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Serves one HTML page on 127.0.0.1 for as long as the test runs; its URL.
pub fn serve_page(html: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut head = [0u8; 4096];
            let _ = s.read(&mut head);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                html.len()
            );
        }
    });
    format!("http://127.0.0.1:{port}/page.html")
}

/// Every process below `root` (its children, theirs, ...) with its resident memory in
/// KiB, from Linux's /proc.
pub fn descendants(root: u32) -> Vec<(u32, u64)> {
    // SAFETY: sysconf reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64 / 1024;
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let (Some(ppid), Some(rss)) = (
            f.get(1).and_then(|v| v.parse::<u32>().ok()),
            f.get(21).and_then(|v| v.parse::<u64>().ok()),
        ) {
            all.push((pid, ppid, rss * page));
        }
    }
    let mut found = vec![root];
    let mut out = Vec::new();
    while let Some(p) = found.pop() {
        for &(pid, ppid, rss) in &all {
            if ppid == p {
                found.push(pid);
                out.push((pid, rss));
            }
        }
    }
    out
}

/// Backend `name`'s row of `/status.json` (a gateway without a token); null if none.
pub fn backend_row(gw: &Gateway, name: &str) -> Value {
    let (_, _, body) = http(gw.port, "GET", "/status.json", &[], b"");
    let data: Value = serde_json::from_str(&body).unwrap_or_default();
    data["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == name).cloned())
        .unwrap_or_default()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The message of a JSON-RPC error reply; fails the test if `r` is not an error.
pub fn error_message(r: &Value) -> &str {
    r["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a JSON-RPC error, got {r}"))
}

/// Checks that `r` is a JSON-RPC error with `code` whose message mentions `needle`.
pub fn assert_error(r: &Value, code: i64, needle: &str) {
    assert_eq!(r["error"]["code"], code, "{r}");
    assert!(error_message(r).contains(needle), "'{needle}' not in {r}");
}

/// Waits until something accepts connections on a loopback port.
pub fn wait_listening(port: u16) {
    eventually(&format!("nothing listens on port {port}"), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// Every JSON-RPC message in an SSE or JSON response body.
pub fn messages_in(content_type: &str, body: &str) -> Vec<Value> {
    if content_type.starts_with("application/json") {
        return vec![serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))];
    }
    // A chunked SSE body: undo the chunking, then read the data lines.
    let mut text = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        text.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            let data = data.join("\n");
            (!data.trim().is_empty())
                .then(|| serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}")))
        })
        .collect()
}

/// The answer in a POST's body: the last SSE event's data, or the body itself (JSON).
pub fn last_message(text: &str) -> Value {
    let last = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .unwrap_or(text);
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A raw Streamable HTTP client: one POST per message, answers read whole.
pub struct McpClient {
    pub port: u16,
    pub session: String,
    /// The endpoint: `/mcp`, or a profile's `/p/NAME/mcp`.
    pub path: String,
}

impl McpClient {
    pub fn post(
        port: u16,
        session: Option<&str>,
        extra: &[(&str, &str)],
        body: &Value,
    ) -> (u16, Vec<(String, String)>, String) {
        McpClient::post_at(port, "/mcp", session, extra, body)
    }

    /// `post` to another endpoint.
    pub fn post_at(
        port: u16,
        path: &str,
        session: Option<&str>,
        extra: &[(&str, &str)],
        body: &Value,
    ) -> (u16, Vec<(String, String)>, String) {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s));
        }
        headers.extend_from_slice(extra);
        http(port, "POST", path, &headers, body.to_string().as_bytes())
    }

    pub fn connect(port: u16) -> McpClient {
        McpClient::try_connect(port).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `connect`, saying what went wrong instead of failing the test.
    pub fn try_connect(port: u16) -> Result<McpClient, String> {
        McpClient::try_connect_at(port, "/mcp")
    }

    /// `try_connect` to another endpoint (a profile's, `/p/NAME/mcp`).
    pub fn try_connect_at(port: u16, path: &str) -> Result<McpClient, String> {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw-mcp", "version": "1"}}});
        let (status, headers, body) = McpClient::post_at(port, path, None, &[], &init);
        if status != 200 {
            return Err(format!("initialize: {status} {body}"));
        }
        let session = headers
            .iter()
            .find(|(k, _)| k == "mcp-session-id")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("no Mcp-Session-Id in {headers:?}"))?;
        let path = path.to_string();
        let c = McpClient {
            port,
            session,
            path,
        };
        let (status, _, body) = McpClient::post_at(
            port,
            &c.path,
            Some(&c.session),
            &[],
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        );
        if status != 202 {
            return Err(format!("notifications/initialized: {status} {body}"));
        }
        Ok(c)
    }

    /// Sends a request and returns every message of its answer (the response last).
    pub fn request(&self, id: Value, method: &str, params: Value) -> Vec<Value> {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (status, headers, text) =
            McpClient::post_at(self.port, &self.path, Some(&self.session), &[], &body);
        assert_eq!(status, 200, "{method}: {text}");
        let content_type = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        messages_in(content_type, &text)
    }

    pub fn call(&self, id: Value, tool: &str, args: Value) -> Value {
        let mut all = self.request(
            id.clone(),
            "tools/call",
            json!({"name": tool, "arguments": args}),
        );
        let last = all.pop().expect("an answer");
        assert_eq!(last["id"], id, "{last}");
        last
    }
}

/// Waits for `child` to exit within `limit` and returns its output; on timeout kills it
/// and fails the test, showing the gateway's stderr when there is one.
/// Runs the gateway with `args`, which it must refuse as a usage error (exit status 2);
/// what it printed on stderr.
pub fn usage_error(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(args)
        .output()
        .expect("run the gateway binary");
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn finish_within(
    mut child: Child,
    limit: Duration,
    what: &str,
    gw: Option<&Gateway>,
) -> Output {
    use wait_timeout::ChildExt;
    if child.wait_timeout(limit).unwrap().is_none() {
        let _ = child.kill();
        let stderr = gw.map(Gateway::stderr).unwrap_or_default();
        panic!("{what} did not finish within {limit:?}\ngateway stderr:\n{stderr}");
    }
    child.wait_with_output().unwrap()
}

/// Runs a client program (`program script URL extra...`, bounded to 90 s) against the
/// gateway and returns the JSON object it printed last.
pub fn run_client(gw: &Gateway, program: &Path, script: &str, url: &str, extra: &[&str]) -> Value {
    let child = Command::new(program)
        .arg(root().join(script))
        .arg(url)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let out = finish_within(child, Duration::from_secs(90), script, Some(gw));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} {url}: {}\nstdout:\n{stdout}\nstderr:\n{}\ngateway stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        gw.stderr()
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The Python in the venv that `tests/run` creates with the official `mcp` package.
pub fn sdk_python() -> PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/run, which installs the official MCP Python SDK into .venv",
        python.display()
    );
    python
}

/// server-everything, installed by `tests/run` into tests/node/node_modules.
pub fn everything() -> PathBuf {
    let path = root()
        .join("tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run tests/run, which installs it",
        path.display()
    );
    path
}

/// A process's thread count and open file descriptors, from /proc.
pub fn resources(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (threads, fds)
}

/// A process's resident memory in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until the process is back to (at most) `baseline` threads and descriptors.
pub fn settles_to(pid: u32, baseline: (usize, usize)) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = resources(pid);
        if now.0 <= baseline.0 && now.1 <= baseline.1 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| {
                    d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                        .map(|p| p.display().to_string())
                        .collect()
                })
                .unwrap_or_default();
            return Err(format!(
                "threads, fds: {now:?}, allowed {baseline:?}; open: {fds:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a Python client `script` that starts the gateway itself with `--stdio` on a config
/// holding `config` (its arguments: the gateway, the config file, a log directory); the
/// JSON line it prints.
pub fn run_stdio_client(script: &str, config: &Value) -> Value {
    let dir = TempDir::new();
    let path = dir.path().join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let child = Command::new(sdk_python())
        .arg(root().join(script))
        .arg(env!("CARGO_BIN_EXE_mcp-gateway"))
        .arg(&path)
        .arg(dir.path().join("logs"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let out = finish_within(child, Duration::from_secs(60), script, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
