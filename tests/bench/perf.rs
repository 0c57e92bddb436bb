//! Performance: latency, throughput, large results, memory per client, cold start and
//! binary size of the release gateway, each next to a baseline measured in the same run.
//!
//!     tests/release && cargo bench --bench perf   # every figure, 5 runs each
//!     PERF_RUNS=3 PERF_SECS=2 cargo bench --bench perf
//!     PERF_CLIENTS=1000 cargo bench --bench perf   # fewer idle SSE clients
//!     PERF_ONLY=latency,throughput,allocs cargo bench --bench perf
//!     PERF_BIN=target/release/mcp-gateway cargo bench --bench perf   # another build
//!
//! It measures the binary users copy: the static artifact `tests/release` builds
//! (target/x86_64-unknown-linux-musl/release/mcp-gateway), or `PERF_BIN`; without either,
//! this build's, and the report says so. The backend is this program itself, run as
//! `perf --echo-server`: a stdio MCP server with an `echo` tool (returns its `text`) and a
//! `blob` tool (returns `bytes` bytes). The baselines, in the same run and on the same
//! client code: that server driven directly over its pipes (one client, and 16 clients
//! each with its own server), a trivial HTTP server in this process answering each POST
//! with its body (the floor for /mcp), and a trivial legacy SSE server (the floor for
//! /sse, `perf_floor.rs`). With 16 clients a gateway does both halves in series, so its
//! limit is 1 / (1/floor + 1/direct); the report gives each transport's share of it.
//! Allocations per call come from a build that counts them (`--features count-allocs`).
//! Results go to stdout as a Markdown table and to `target/perf.json`.
//!
//! Loopback only; every loop is bounded in count and time.

#[path = "perf_floor.rs"]
mod floor;
#[path = "../util/mod.rs"]
mod util;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PAYLOAD: usize = 100;
const CALLS: usize = 2000;
const MIB: usize = 1 << 20;
/// Longest any one wait in this program may take.
const LIMIT: Duration = Duration::from_secs(60);

fn main() {
    if std::env::args().any(|a| a == "--echo-server") {
        echo_server();
        return;
    }
    raise_fd_limit();
    let runs = util::env_number("PERF_RUNS", 5).max(1) as usize;
    let secs = util::env_number("PERF_SECS", 3).max(1);
    let idle_clients = util::env_number("PERF_CLIENTS", 10_000) as usize;
    let dir = util::TempDir::new();
    let config = dir.path().join("config.json");
    let me = std::env::current_exe().unwrap();
    std::fs::write(
        &config,
        json!({"echo": {"command": me, "args": ["--echo-server"]}}).to_string(),
    )
    .unwrap();
    let mut report = Report::default();
    // PERF_ONLY=latency,throughput,blob,memory,cold picks phases (all by default).
    // PERF_SESSIONS=500: initialized sessions held per transport in the memory phase.
    let only = std::env::var("PERF_ONLY").ok();
    let phase = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == name))
    };
    let trivial = TrivialServer::start();
    let trivial_sse = floor::TrivialSse::start();
    let gw = Gw::start(&config, dir.path(), &[]);

    // ---- latency, 1 client ------------------------------------------------------
    if phase("latency") {
        let mut stdio_runs = Vec::new();
        let mut http_runs = Vec::new();
        let mut sse_floor_runs = Vec::new();
        let mut sse_runs = Vec::new();
        let mut mcp_runs = Vec::new();
        let mut sse_cost = Vec::new();
        let mut mcp_cost = Vec::new();
        for _ in 0..runs {
            stdio_runs.push(Percentiles::of(latency_stdio(&me, CALLS)));
            http_runs.push(Percentiles::of(latency_http(trivial.addr, CALLS)));
            sse_floor_runs.push(Percentiles::of(latency_sse_floor(trivial_sse.addr, CALLS)));
            let before = Cost::of(gw.pid());
            sse_runs.push(Percentiles::of(latency_sse(gw.addr, CALLS)));
            let between = Cost::of(gw.pid());
            mcp_runs.push(Percentiles::of(latency_mcp(gw.addr, CALLS)));
            sse_cost.push(between.since(&before, CALLS));
            mcp_cost.push(Cost::of(gw.pid()).since(&between, CALLS));
        }
        for (what, cost) in [("/sse", &sse_cost), ("/mcp", &mcp_cost)] {
            let cpu = median(cost.iter().map(|c| c.0).collect());
            let switches = median(cost.iter().map(|c| c.1).collect());
            report.note(format!(
                "per call through {what}: {cpu:.0} µs of gateway CPU, {switches:.1} context switches in the gateway's live threads (each a thread handing the message on; per-request threads that ended are not counted)"
            ));
        }
        let base = |runs: &[Percentiles]| median(runs.iter().map(|p| p.p50).collect());
        report.latency("direct stdio round trip (baseline)", &stdio_runs, None);
        report.latency("loopback HTTP round trip (baseline)", &http_runs, None);
        report.latency(
            "trivial SSE server round trip (baseline)",
            &sse_floor_runs,
            None,
        );
        let sse_base = base(&stdio_runs) + base(&sse_floor_runs);
        let mcp_base = base(&stdio_runs) + base(&http_runs);
        report.latency(
            "through /sse",
            &sse_runs,
            Some((sse_base, "stdio + SSE floor")),
        );
        report.latency(
            "through /mcp",
            &mcp_runs,
            Some((mcp_base, "stdio + HTTP floor")),
        );
    }

    // ---- throughput ---------------------------------------------------------------
    for clients in [16, 64].into_iter().filter(|_| phase("throughput")) {
        let mut trivial_runs = Vec::new();
        let mut sse_floor_runs = Vec::new();
        let mut direct_runs = Vec::new();
        let mut sse = Vec::new();
        let mut mcp = Vec::new();
        let mut load_cpu = Vec::new();
        let (mut sse_cpu, mut mcp_cpu) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            trivial_runs.push(throughput(clients, secs, |n| {
                Box::new(HttpCaller::new(trivial.addr, n))
            }));
            if clients == 16 {
                sse_floor_runs.push(throughput(clients, secs, |_| {
                    Box::new(floor::TrivialSseCaller::new(trivial_sse.addr))
                }));
                direct_runs.push(throughput(clients, secs, |_| {
                    Box::new(floor::DirectCaller::new(&me))
                }));
            }
            let (before, gw_before) = (cpu_self(), cpu_of(gw.pid()));
            let t = Instant::now();
            let rate = throughput(clients, secs, |n| Box::new(SseCaller::new(gw.addr, n)));
            let wall = t.elapsed().as_secs_f64();
            load_cpu.push((cpu_self() - before) / wall);
            sse_cpu.push((cpu_of(gw.pid()) - gw_before) * 1e6 / (rate * wall));
            sse.push(rate);
            let (gw_before, t) = (cpu_of(gw.pid()), Instant::now());
            let rate = throughput(clients, secs, |n| Box::new(McpCaller::new(gw.addr, n)));
            let wall = t.elapsed().as_secs_f64();
            mcp_cpu.push((cpu_of(gw.pid()) - gw_before) * 1e6 / (rate * wall));
            mcp.push(rate);
        }
        let base = median(trivial_runs.clone());
        report.throughput(
            clients,
            "trivial loopback HTTP server (baseline)",
            &trivial_runs,
            None,
        );
        if clients == 16 {
            // A gateway does both halves in series: its limit is 1 / (1/floor + 1/direct).
            let direct = median(direct_runs.clone());
            report.throughput(
                clients,
                "trivial SSE server (baseline)",
                &sse_floor_runs,
                None,
            );
            report.throughput(
                clients,
                "direct stdio, a backend each (baseline)",
                &direct_runs,
                None,
            );
            let limit = |floor: f64| 1.0 / (1.0 / floor + 1.0 / direct);
            let (sse_limit, mcp_limit) = (limit(median(sse_floor_runs.clone())), limit(base));
            report.throughput_of(
                clients,
                "through /sse",
                &sse,
                sse_limit,
                "limit (SSE floor, direct)",
            );
            report.throughput_of(
                clients,
                "through /mcp",
                &mcp,
                mcp_limit,
                "limit (HTTP floor, direct)",
            );
        } else {
            report.throughput(clients, "through /sse", &sse, Some(base));
            report.throughput(clients, "through /mcp", &mcp, Some(base));
        }
        for (what, cpu) in [("/sse", &sse_cpu), ("/mcp", &mcp_cpu)] {
            report.value(
                &format!("gateway CPU per call, {clients} clients, {what}"),
                "µs",
                median(cpu.clone()),
            );
        }
        report.note(format!(
            "{clients} clients through /sse: load generator {:.0}% of a core (median)",
            median(load_cpu) * 100.0,
        ));
    }

    // ---- allocations per call -------------------------------------------------------
    if phase("allocs") {
        allocations_per_call(&config, dir.path(), &mut report);
    }

    // ---- 1 MiB result ---------------------------------------------------------------
    if phase("blob") {
        let direct: Vec<f64> = (0..runs).map(|_| blob_stdio(&me)).collect();
        let through: Vec<f64> = (0..runs).map(|_| blob_mcp(gw.addr)).collect();
        let through_sse: Vec<f64> = (0..runs).map(|_| blob_sse(gw.addr)).collect();
        let d = median(direct.clone());
        report.row("1 MiB result, direct stdio (baseline)", "ms", &direct, None);
        report.row("1 MiB result through /mcp", "ms", &through, Some(d));
        report.row("1 MiB result through /sse", "ms", &through_sse, Some(d));
    }
    drop(gw);

    // ---- memory ---------------------------------------------------------------------
    if phase("memory") {
        memory(&config, dir.path(), idle_clients, &mut report);
        sessions(&config, dir.path(), &mut report);
        burst(&config, dir.path(), &mut report);
    }

    // ---- cold start -----------------------------------------------------------------
    if phase("cold") {
        let own: Vec<f64> = (0..runs).map(|_| backend_start(&me)).collect();
        let cold: Vec<f64> = (0..runs).map(|_| cold_start(&config, dir.path())).collect();
        let own_ms = median(own.clone());
        report.row(
            "backend's own start to tools/list (baseline)",
            "ms",
            &own,
            None,
        );
        report.row("gateway cold start to first tools/list", "ms", &cold, None);
        report.note(format!(
            "cold start added by the gateway: {:.1} ms (median)",
            median(cold) - own_ms
        ));
    }

    // ---- binary size ----------------------------------------------------------------
    let bench_bin = PathBuf::from(env!("CARGO_BIN_EXE_mcp-gateway"));
    report.note(format!("gateway measured: {}", gateway_bin().display()));
    report.size("release binary (this build)", &bench_bin);
    // target/release/mcp-gateway -> target/x86_64-unknown-linux-musl/release/mcp-gateway
    let musl = bench_bin
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("x86_64-unknown-linux-musl/release/mcp-gateway"));
    match musl {
        Some(m) if m.exists() => report.size("static musl release (tests/release)", &m),
        _ => report.note("no static musl build found: run tests/release first".into()),
    }
    report.finish(runs);
}

// ---- the echo backend ----------------------------------------------------------------

fn echo_server() {
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let blob = "x".repeat(4 * MIB);
    for line in stdin.lines().map_while(Result::ok) {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(id) = msg.get("id") else { continue };
        let params = &msg["params"];
        let result = match msg["method"].as_str().unwrap_or("") {
            "initialize" => json!({
                "protocolVersion": params["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "perf-echo", "version": "1"},
            }),
            "tools/list" => json!({"tools": [
                {"name": "echo", "description": "Returns its text.", "inputSchema": {"type": "object"}},
                {"name": "blob", "description": "Returns 'bytes' bytes.", "inputSchema": {"type": "object"}},
            ]}),
            "tools/call" if params["name"] == "blob" => {
                let n = params["arguments"]["bytes"].as_u64().unwrap_or(0) as usize;
                json!({"content": [{"type": "text", "text": &blob[..n.min(4 * MIB)]}]})
            }
            "tools/call" => {
                json!({"content": [{"type": "text", "text": params["arguments"]["text"]}]})
            }
            "ping" => json!({}),
            _ => {
                let e = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "no such method"}});
                let _ = writeln!(out, "{e}");
                let _ = out.flush();
                continue;
            }
        };
        let _ = writeln!(
            out,
            "{}",
            json!({"jsonrpc": "2.0", "id": id, "result": result})
        );
        let _ = out.flush();
    }
}

/// The echo server as a child, driven over its pipes.
struct Direct {
    child: Child,
    tx: ChildStdin,
    rx: BufReader<ChildStdout>,
}

impl Direct {
    fn start(me: &Path) -> Direct {
        let mut child = Command::new(me)
            .arg("--echo-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let tx = child.stdin.take().unwrap();
        let rx = BufReader::new(child.stdout.take().unwrap());
        Direct { child, tx, rx }
    }

    fn call(&mut self, msg: &Value) -> Value {
        writeln!(self.tx, "{msg}").unwrap();
        self.tx.flush().unwrap();
        let mut line = String::new();
        self.rx.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    fn initialize(&mut self) {
        self.call(&initialize(0));
        writeln!(
            self.tx,
            "{}",
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        )
        .unwrap();
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "perf", "version": "1"}}})
}

fn echo_call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {"text": "x".repeat(PAYLOAD)}}})
}

fn blob_call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {"bytes": MIB}}})
}

fn text_of(reply: &Value) -> &str {
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("not a tool result: {reply}"))
}

/// Times `n` echo calls of `tool` made with `call`, checking each answer.
fn timed_echoes(n: usize, tool: &str, mut call: impl FnMut(&Value) -> Value) -> Vec<Duration> {
    (0..n as u64)
        .map(|i| {
            let request = echo_call(i + 1, tool);
            let t = Instant::now();
            let r = call(&request);
            let took = t.elapsed();
            assert_eq!(text_of(&r).len(), PAYLOAD);
            took
        })
        .collect()
}

/// Milliseconds of one 1 MiB result from `tool` made with `call`, after a first one to warm.
fn timed_blob(tool: &str, mut call: impl FnMut(&Value) -> Value) -> f64 {
    call(&blob_call(1, tool));
    let request = blob_call(2, tool);
    let t = Instant::now();
    let r = call(&request);
    let took = ms(t.elapsed());
    assert_eq!(text_of(&r).len(), MIB);
    took
}

fn latency_stdio(me: &Path, n: usize) -> Vec<Duration> {
    let mut d = Direct::start(me);
    d.initialize();
    timed_echoes(n, "echo", |rq| d.call(rq))
}

fn blob_stdio(me: &Path) -> f64 {
    let mut d = Direct::start(me);
    d.initialize();
    timed_blob("blob", |rq| d.call(rq))
}

fn backend_start(me: &Path) -> f64 {
    let t = Instant::now();
    let mut d = Direct::start(me);
    d.initialize();
    let r = d.call(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    assert!(r["result"]["tools"].is_array());
    ms(t.elapsed())
}

// ---- HTTP, by hand: keep-alive connections, chunked and SSE bodies --------------------

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The JSON-RPC messages in the body: the body itself, or an SSE stream's `data`.
    fn messages(&self) -> Vec<Value> {
        let text = String::from_utf8_lossy(&self.body);
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            text.split("\n\n")
                .filter_map(|ev| {
                    let data: String = ev
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect();
                    serde_json::from_str(&data).ok()
                })
                .collect()
        } else {
            serde_json::from_str(&text).into_iter().collect()
        }
    }
}

/// One client's HTTP/1.1 connection, reopened when the server closes it.
struct Conn {
    addr: SocketAddr,
    r: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn { addr, r: None }
    }

    fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let reused = self.r.is_some();
        match self.exchange(head.as_bytes(), body) {
            Ok(r) => r,
            // A kept-alive connection the server had closed: once more on a new one.
            Err(_) if reused => {
                self.r = None;
                self.exchange(head.as_bytes(), body).expect("HTTP exchange")
            }
            Err(e) => panic!("HTTP exchange with {} (POST {path}): {e}", self.addr),
        }
    }

    fn exchange(&mut self, head: &[u8], body: &[u8]) -> std::io::Result<Response> {
        if self.r.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(LIMIT))?;
            self.r = Some(BufReader::new(s));
        }
        let r = self.r.as_mut().unwrap();
        let mut msg = Vec::with_capacity(head.len() + body.len());
        msg.extend_from_slice(head);
        msg.extend_from_slice(body);
        r.get_mut().write_all(&msg)?;
        let resp = read_response(r)?;
        let close = resp
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
            || resp
                .header("content-type")
                .is_some_and(|c| c.starts_with("text/event-stream"));
        if close {
            self.r = None;
        }
        Ok(resp)
    }
}

/// A response's status and headers.
fn read_head(r: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let (first, headers) = read_lines(r)?;
    let status = first
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {first:?}")))?;
    Ok((status, headers))
}

/// The first line and the headers of a request or response.
fn read_lines(r: &mut impl BufRead) -> std::io::Result<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let first = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((first, headers))
}

fn read_response(r: &mut impl BufRead) -> std::io::Result<Response> {
    let (status, headers) = read_head(r)?;
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        while let Some(chunk) = read_chunk(r)? {
            body.extend_from_slice(&chunk);
        }
    } else {
        let n: usize = get("content-length")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One chunk of a chunked body; None after the last one.
fn read_chunk(r: &mut impl BufRead) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let size = usize::from_str_radix(line.trim(), 16)
        .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
    let mut data = vec![0; size + 2];
    r.read_exact(&mut data)?;
    data.truncate(size);
    Ok((size > 0).then_some(data))
}

/// A legacy SSE session: the GET stream and the POST connection.
struct Sse {
    stream: BufReader<TcpStream>,
    pending: String,
    post: Conn,
    endpoint: String,
}

impl Sse {
    fn open(addr: SocketAddr) -> Sse {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.set_nodelay(true).unwrap();
        let mut stream = BufReader::new(s);
        stream
            .get_mut()
            .write_all(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            .unwrap();
        let (status, _) = read_head(&mut stream).unwrap();
        assert_eq!(status, 200);
        let mut sse = Sse {
            stream,
            pending: String::new(),
            post: Conn::new(addr),
            endpoint: String::new(),
        };
        let (event, data) = sse.next_event();
        assert_eq!(event, "endpoint");
        sse.endpoint = data;
        sse
    }

    fn next_event(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let ev = self.pending[..end].to_string();
                self.pending.drain(..end + 2);
                let mut name = "message".to_string();
                let mut data = String::new();
                for line in ev.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if !data.is_empty() {
                    return (name, data);
                }
                continue;
            }
            let chunk = read_chunk(&mut self.stream)
                .expect("the SSE stream")
                .expect("the SSE stream ended");
            self.pending.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    fn call(&mut self, msg: &Value) -> Value {
        let endpoint = self.endpoint.clone();
        let r = self.post.post(&endpoint, &[], msg.to_string().as_bytes());
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        loop {
            let (_, data) = self.next_event();
            let v: Value = serde_json::from_str(&data).unwrap();
            if v.get("id") == msg.get("id") && v.get("method").is_none() {
                return v;
            }
        }
    }

    fn initialize(&mut self) {
        self.call(&initialize(0));
        let endpoint = self.endpoint.clone();
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        self.post.post(&endpoint, &[], note.to_string().as_bytes());
    }
}

/// A Streamable HTTP session.
struct Mcp {
    conn: Conn,
    session: String,
}

impl Mcp {
    fn open(addr: SocketAddr) -> Mcp {
        let mut conn = Conn::new(addr);
        let r = conn.post("/mcp", &[], initialize(0).to_string().as_bytes());
        assert_eq!(r.status, 200);
        let session = r.header("mcp-session-id").unwrap().to_string();
        let mut m = Mcp { conn, session };
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        m.post(&note);
        m
    }

    fn post(&mut self, msg: &Value) -> Response {
        let headers = [
            ("Mcp-Session-Id", self.session.as_str()),
            ("MCP-Protocol-Version", "2025-06-18"),
        ];
        self.conn.post("/mcp", &headers, msg.to_string().as_bytes())
    }

    fn call(&mut self, msg: &Value) -> Value {
        let r = self.post(msg);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.messages()
            .into_iter()
            .find(|m| m.get("id") == msg.get("id"))
            .expect("the reply")
    }
}

fn latency_http(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut c = Conn::new(addr);
    (0..n as u64)
        .map(|i| {
            let body = echo_call(i, "echo").to_string();
            let t = Instant::now();
            let r = c.post("/", &[], body.as_bytes());
            let took = t.elapsed();
            assert_eq!(r.body.len(), body.len());
            took
        })
        .collect()
}

fn latency_sse_floor(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut c = floor::TrivialSseCaller::new(addr);
    timed_echoes(n, "echo", |rq| c.call(rq))
}

fn latency_sse(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut s = Sse::open(addr);
    s.initialize();
    timed_echoes(n, "echo__echo", |rq| s.call(rq))
}

fn latency_mcp(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut m = Mcp::open(addr);
    timed_echoes(n, "echo__echo", |rq| m.call(rq))
}

fn blob_mcp(addr: SocketAddr) -> f64 {
    let mut m = Mcp::open(addr);
    timed_blob("echo__blob", |rq| m.call(rq))
}

fn blob_sse(addr: SocketAddr) -> f64 {
    let mut s = Sse::open(addr);
    s.initialize();
    timed_blob("echo__blob", |rq| s.call(rq))
}

// ---- throughput -----------------------------------------------------------------------

trait Caller: Send {
    /// One call; false if the answer was wrong.
    fn call(&mut self, i: u64) -> bool;
}

struct HttpCaller(Conn, String);
impl HttpCaller {
    fn new(addr: SocketAddr, _n: usize) -> HttpCaller {
        HttpCaller(Conn::new(addr), echo_call(1, "echo").to_string())
    }
}
impl Caller for HttpCaller {
    fn call(&mut self, _i: u64) -> bool {
        self.0.post("/", &[], self.1.as_bytes()).body.len() == self.1.len()
    }
}

struct SseCaller(Sse);
impl SseCaller {
    fn new(addr: SocketAddr, _n: usize) -> SseCaller {
        let mut s = Sse::open(addr);
        s.initialize();
        SseCaller(s)
    }
}
impl Caller for SseCaller {
    fn call(&mut self, i: u64) -> bool {
        text_of(&self.0.call(&echo_call(i + 1, "echo__echo"))).len() == PAYLOAD
    }
}

struct McpCaller(Mcp);
impl McpCaller {
    fn new(addr: SocketAddr, _n: usize) -> McpCaller {
        McpCaller(Mcp::open(addr))
    }
}
impl Caller for McpCaller {
    fn call(&mut self, i: u64) -> bool {
        text_of(&self.0.call(&echo_call(i + 1, "echo__echo"))).len() == PAYLOAD
    }
}

/// Calls per second of `clients` callers for `secs` seconds (at most 10 million calls).
fn throughput(clients: usize, secs: u64, make: impl Fn(usize) -> Box<dyn Caller> + Sync) -> f64 {
    let callers: Vec<Box<dyn Caller>> = (0..clients).map(&make).collect();
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = callers
        .into_iter()
        .map(|mut c| {
            let (done, stop) = (done.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && i < 10_000_000 {
                    assert!(c.call(i), "a wrong answer");
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let calls = done.load(Ordering::Relaxed);
    let wall = started.elapsed().as_secs_f64();
    for t in threads {
        t.join().unwrap();
    }
    calls as f64 / wall
}

/// A trivial HTTP server: answers every POST with its body, a thread per connection.
struct TrivialServer {
    addr: SocketAddr,
}

impl TrivialServer {
    fn start() -> TrivialServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming().map_while(Result::ok) {
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let mut r = BufReader::new(s);
                    while let Ok((_, headers)) = read_lines(&mut r) {
                        let n: usize = headers
                            .iter()
                            .find(|(k, _)| k == "content-length")
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0; n];
                        if r.read_exact(&mut body).is_err() {
                            break;
                        }
                        let mut out = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n"
                        )
                        .into_bytes();
                        out.extend_from_slice(&body);
                        if r.get_mut().write_all(&out).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        TrivialServer { addr }
    }
}

// ---- the gateway under test -------------------------------------------------------------

struct Gw {
    child: Child,
    addr: SocketAddr,
}

impl Gw {
    fn start(config: &Path, dir: &Path, extra: &[&str]) -> Gw {
        Gw::start_bin(&gateway_bin(), config, dir, extra)
    }

    fn start_bin(bin: &Path, config: &Path, dir: &Path, extra: &[&str]) -> Gw {
        let port = util::free_port();
        let child = Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--log-level",
                "warn",
                "--config",
            ])
            .arg(config)
            .arg("--log-dir")
            .arg(dir.join("logs"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("gateway.stderr")).unwrap())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let gw = Gw { child, addr };
        gw.wait_ready();
        gw
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Until tools/list on /mcp lists the echo tool.
    fn wait_ready(&self) {
        let deadline = Instant::now() + LIMIT;
        while !tools_listed(self.addr) {
            assert!(Instant::now() < deadline, "the gateway did not come up");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// One attempt: initialize and tools/list on /mcp; true if the echo tool is listed.
fn tools_listed(addr: SocketAddr) -> bool {
    let Ok(s) = TcpStream::connect(addr) else {
        return false;
    };
    drop(s);
    let mut conn = Conn::new(addr);
    let Ok(r) = conn.exchange(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
            initialize(0).to_string().len()
        )
        .as_bytes(),
        initialize(0).to_string().as_bytes(),
    ) else {
        return false;
    };
    let Some(session) = r.header("mcp-session-id").map(str::to_string) else {
        return false;
    };
    let mut m = Mcp { conn, session };
    let list = m.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let listed = list.messages().iter().any(|m| {
        m["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "echo__echo"))
    });
    let _ = m.conn.r.take();
    listed
}

fn cold_start(config: &Path, dir: &Path) -> f64 {
    let t = Instant::now();
    let gw = Gw::start(config, dir, &[]);
    let took = ms(t.elapsed());
    drop(gw);
    took
}

// ---- memory -------------------------------------------------------------------------------

fn memory(config: &Path, dir: &Path, clients: usize, report: &mut Report) {
    let keepalive = 2;
    let gw = Gw::start(config, dir, &["--sse-keepalive", &keepalive.to_string()]);
    std::thread::sleep(Duration::from_millis(500));
    let idle = util::rss_kib(gw.pid());
    let (idle_threads, idle_maps) = (count_lines(gw.pid(), "task"), count_lines(gw.pid(), "maps"));
    report.value("gateway RSS, idle", "KiB", idle as f64);
    let mut streams: Vec<TcpStream> = Vec::with_capacity(clients);
    let mut measured = Vec::new();
    for target in [clients.min(1000), clients] {
        while streams.len() < target {
            match open_idle_stream(gw.addr) {
                Ok(s) => streams.push(s),
                Err(e) => {
                    let log =
                        std::fs::read_to_string(dir.join("gateway.stderr")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(3).collect();
                    report.note(format!(
                        "could open only {} idle SSE clients: {e}; the gateway's last words: {tail:?}",
                        streams.len()
                    ));
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let rss = util::rss_kib(gw.pid());
        let n = streams.len();
        report.value(
            &format!("gateway RSS, {n} idle SSE clients"),
            "KiB",
            rss as f64,
        );
        measured.push((n, rss));
        if n < target {
            break;
        }
    }
    if let Some(&(n, rss)) = measured.last()
        && n > 0
    {
        let per = (rss.saturating_sub(idle)) as f64 / n as f64;
        report.value("RSS per idle SSE client", "KiB", per);
        let threads = count_lines(gw.pid(), "task").saturating_sub(idle_threads);
        let maps = count_lines(gw.pid(), "maps").saturating_sub(idle_maps);
        report.note(format!(
            "per idle SSE client: {:.2} threads, {:.2} memory mappings (vm.max_map_count here: {})",
            threads as f64 / n as f64,
            maps as f64 / n as f64,
            std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .unwrap_or_default()
                .trim()
        ));
    }
    // Every stream gets its keep-alive: drain what came so far, wait one period and a bit,
    // and look for a new keep-alive on each.
    let mut buf = vec![0u8; 4096];
    for s in &mut streams {
        s.set_nonblocking(true).unwrap();
        while s.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
    }
    std::thread::sleep(Duration::from_secs(keepalive + 1));
    let mut delivered = 0;
    for s in &mut streams {
        let mut got = Vec::new();
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if String::from_utf8_lossy(&got).contains(": keepalive") {
            delivered += 1;
        }
    }
    report.note(format!(
        "keep-alives delivered within {} s: {delivered} of {} idle SSE clients",
        keepalive + 1,
        streams.len()
    ));
    report.json["keepalives"] = json!({"delivered": delivered, "clients": streams.len()});
    drop(streams);
}

/// Opens GET /sse and reads up to the endpoint event; the stream then sits idle.
/// Memory per idle *initialized* session, as a client holds one: on `/sse` the stream and
/// the kept-alive connection its POSTs went over, on `/mcp` the kept-alive connection;
/// each session initialized and its tools listed once.
fn sessions(config: &Path, dir: &Path, report: &mut Report) {
    let n: usize = std::env::var("PERF_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let gw = Gw::start(config, dir, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let before = util::rss_kib(gw.pid());
    let mut sse = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = Sse::open(gw.addr);
        s.initialize();
        s.call(&list);
        sse.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let with_sse = util::rss_kib(gw.pid());
    let per_sse = with_sse.saturating_sub(before) as f64 / n as f64;
    report.value("RSS per idle initialized /sse session", "KiB", per_sse);
    drop(sse);
    // The streams and their connections end; what the gateway gives back is its business.
    std::thread::sleep(Duration::from_secs(1));
    let before = util::rss_kib(gw.pid());
    let mut mcp = Vec::with_capacity(n);
    for _ in 0..n {
        let mut m = Mcp::open(gw.addr);
        m.call(&list);
        mcp.push(m);
    }
    std::thread::sleep(Duration::from_millis(500));
    let per_mcp = util::rss_kib(gw.pid()).saturating_sub(before) as f64 / n as f64;
    report.value("RSS per idle initialized /mcp session", "KiB", per_mcp);
    report.note(format!(
        "{n} initialized sessions per transport, each with its kept-alive connection"
    ));
}

/// What the gateway keeps after a burst of large results: its RSS idle, then 5 s after
/// 120 results of 4 MiB through /mcp (four clients at once), beside each other.
fn burst(config: &Path, dir: &Path, report: &mut Report) {
    let gw = Gw::start(config, dir, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let idle = util::rss_kib(gw.pid());
    let addr = gw.addr;
    let clients: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let mut m = Mcp::open(addr);
                for i in 0..30 {
                    let call = json!({"jsonrpc": "2.0", "id": c * 100 + i, "method": "tools/call",
                                      "params": {"name": "echo__blob", "arguments": {"bytes": 4 * MIB}}});
                    assert_eq!(text_of(&m.call(&call)).len(), 4 * MIB);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    std::thread::sleep(Duration::from_secs(5));
    let after = util::rss_kib(gw.pid());
    report.value("gateway RSS, idle (before a burst)", "KiB", idle as f64);
    report.value(
        &format!(
            "gateway RSS 5 s after 120 results of 4 MiB ({:.2}× idle)",
            after as f64 / idle as f64
        ),
        "KiB",
        after as f64,
    );
}

fn open_idle_stream(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(LIMIT))?;
    let mut r = BufReader::new(s);
    r.get_mut()
        .write_all(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")?;
    let (status, _) = read_head(&mut r)?;
    if status != 200 {
        return Err(std::io::Error::other(format!("status {status}")));
    }
    read_chunk(&mut r)?;
    if !r.buffer().is_empty() {
        return Err(std::io::Error::other("more than the endpoint event"));
    }
    Ok(r.into_inner())
}

/// A process's CPU seconds and context switches (all its threads) so far.
struct Cost(f64, u64);

impl Cost {
    fn of(pid: u32) -> Cost {
        let switches = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .filter_map(|t| t.ok())
                    .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
                    .flat_map(|status| {
                        status
                            .lines()
                            .filter(|l| l.contains("ctxt_switches"))
                            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                            .collect::<Vec<u64>>()
                    })
                    .sum()
            })
            .unwrap_or(0);
        Cost(cpu_of(pid), switches)
    }

    /// Per call since `earlier`: (CPU µs, context switches).
    fn since(&self, earlier: &Cost, calls: usize) -> (f64, f64) {
        (
            (self.0 - earlier.0) * 1e6 / calls as f64,
            self.1.saturating_sub(earlier.1) as f64 / calls as f64,
        )
    }
}

/// Entries of /proc/PID/task (threads) or lines of /proc/PID/maps (mappings).
fn count_lines(pid: u32, what: &str) -> usize {
    let path = format!("/proc/{pid}/{what}");
    if what == "task" {
        std::fs::read_dir(path).map(|d| d.count()).unwrap_or(0)
    } else {
        std::fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

// ---- accounting -----------------------------------------------------------------------------

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn spread(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// CPU seconds this process has used.
fn cpu_self() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU seconds process `pid` has used (utime + stime from /proc).
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

#[derive(Clone, Copy)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
}

impl Percentiles {
    fn of(mut d: Vec<Duration>) -> Percentiles {
        d.sort();
        let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)].as_secs_f64() * 1e6;
        Percentiles {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
        }
    }
}

#[derive(Default)]
struct Report {
    lines: Vec<String>,
    notes: Vec<String>,
    json: Value,
}

impl Report {
    fn push(&mut self, key: &str, value: Value) {
        if !self.json.is_object() {
            self.json = json!({});
        }
        self.json[key] = value;
    }

    fn latency(&mut self, what: &str, runs: &[Percentiles], baseline: Option<(f64, &str)>) {
        let pick = |f: fn(&Percentiles) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
        let (p50, p90, p99) = (pick(|p| p.p50), pick(|p| p.p90), pick(|p| p.p99));
        let (lo, hi) = spread(&p50);
        let ratio = baseline.map(|(b, _)| median(p50.clone()) / b);
        self.lines.push(format!(
            "| latency {what} ({CALLS} calls, {PAYLOAD} B) | p50 {:.0} µs (runs {lo:.0}–{hi:.0}), p90 {:.0} µs, p99 {:.0} µs | {} |",
            median(p50.clone()),
            median(p90.clone()),
            median(p99.clone()),
            match (ratio, baseline) {
                (Some(r), Some((_, of))) => format!("{r:.2}× ({of})"),
                _ => "baseline".into(),
            }
        ));
        self.push(
            &format!("latency {what}"),
            json!({"p50_us": median(p50.clone()), "p90_us": median(p90), "p99_us": median(p99),
                   "p50_runs_us": p50, "ratio": ratio}),
        );
    }

    fn throughput(&mut self, clients: usize, what: &str, runs: &[f64], baseline: Option<f64>) {
        let (lo, hi) = spread(runs);
        let m = median(runs.to_vec());
        let ratio = baseline.map(|b| m / b);
        self.lines.push(format!(
            "| {clients} clients, {what} | {m:.0} calls/s (runs {lo:.0}–{hi:.0}) | {} |",
            ratio.map_or("baseline".into(), |r| format!(
                "{:.0}% of the trivial server",
                r * 100.0
            ))
        ));
        self.push(
            &format!("throughput {clients} clients {what}"),
            json!({"calls_per_s": m, "runs": runs, "ratio": ratio}),
        );
    }

    /// A gateway's throughput beside `limit` (what it could do at best, `what_limit`).
    fn throughput_of(&mut self, clients: usize, what: &str, runs: &[f64], limit: f64, of: &str) {
        let (lo, hi) = spread(runs);
        let m = median(runs.to_vec());
        self.lines.push(format!(
            "| {clients} clients, {what} | {m:.0} calls/s (runs {lo:.0}–{hi:.0}) | {:.2} of the {of}: {limit:.0} calls/s |",
            m / limit
        ));
        self.push(
            &format!("throughput {clients} clients {what}"),
            json!({"calls_per_s": m, "runs": runs, "limit": limit, "ratio_to_limit": m / limit}),
        );
    }

    fn row(&mut self, what: &str, unit: &str, runs: &[f64], baseline: Option<f64>) {
        let (lo, hi) = spread(runs);
        let m = median(runs.to_vec());
        let ratio = baseline.map(|b| m / b);
        self.lines.push(format!(
            "| {what} | {m:.1} {unit} (runs {lo:.1}–{hi:.1}) | {} |",
            ratio.map_or("baseline".into(), |r| format!("{r:.2}×"))
        ));
        self.push(
            what,
            json!({"median": m, "unit": unit, "runs": runs, "ratio": ratio}),
        );
    }

    fn value(&mut self, what: &str, unit: &str, v: f64) {
        self.lines.push(format!("| {what} | {v:.1} {unit} | |"));
        self.push(what, json!({"value": v, "unit": unit}));
    }

    fn size(&mut self, what: &str, path: &Path) {
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let linkage = Command::new("ldd")
            .arg(path)
            .output()
            .map(|o| {
                let text = String::from_utf8_lossy(&o.stdout).to_string()
                    + &String::from_utf8_lossy(&o.stderr);
                if text.contains("statically linked") || text.contains("not a dynamic executable") {
                    "static"
                } else {
                    "dynamic"
                }
            })
            .unwrap_or("?");
        self.lines.push(format!(
            "| {what} | {:.2} MiB ({bytes} bytes), {linkage} | |",
            bytes as f64 / MIB as f64
        ));
        self.push(what, json!({"bytes": bytes, "linkage": linkage}));
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn finish(mut self, runs: usize) {
        self.push("runs", json!(runs));
        self.push("notes", json!(self.notes));
        println!("| figure | value (median of {runs} runs, spread) | ratio to the baseline |");
        println!("|---|---|---|");
        for l in &self.lines {
            println!("{l}");
        }
        for n in &self.notes {
            println!("- {n}");
        }
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/perf.json");
        let _ = std::fs::write(&out, serde_json::to_string_pretty(&self.json).unwrap());
        println!("(also in {})", out.display());
    }
}

// ---- small things ----------------------------------------------------------------------------

/// The gateway binary measured: `PERF_BIN`; else the static artifact `tests/release`
/// builds, the one users copy; else this build's.
fn gateway_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PERF_BIN") {
        return PathBuf::from(bin);
    }
    let artifact = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/x86_64-unknown-linux-musl/release/mcp-gateway");
    if artifact.exists() {
        return artifact;
    }
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-gateway"))
}

/// Allocations and bytes allocated per `tools/call` on each transport, in a build that
/// counts them (`floor::counting_gateway`), over 1000 calls after 100 to warm up.
fn allocations_per_call(config: &Path, dir: &Path, report: &mut Report) {
    let Some(bin) = floor::counting_gateway() else {
        report.note(
            "no build counting allocations: `cargo build --release --features count-allocs` failed"
                .into(),
        );
        return;
    };
    let gw = Gw::start_bin(&bin, config, dir, &[]);
    let n = 1000u64;
    let mut sse = Sse::open(gw.addr);
    sse.initialize();
    let mut mcp = Mcp::open(gw.addr);
    for (what, call) in [
        ("/sse", &mut |i| {
            sse.call(&echo_call(i, "echo__echo")) as Value
        }),
        ("/mcp", &mut |i| mcp.call(&echo_call(i, "echo__echo"))),
    ] as [(&str, &mut dyn FnMut(u64) -> Value); 2]
    {
        for i in 0..100 {
            call(i);
        }
        let (count, bytes) = floor::allocations(gw.addr);
        for i in 0..n {
            assert_eq!(text_of(&call(1000 + i)).len(), PAYLOAD);
        }
        let (count2, bytes2) = floor::allocations(gw.addr);
        // The /metrics request itself allocates a little; over 1000 calls it is noise.
        report.value(
            &format!("allocations per call through {what}"),
            "",
            (count2 - count) as f64 / n as f64,
        );
        report.value(
            &format!("bytes allocated per call through {what}"),
            "B",
            (bytes2 - bytes) as f64 / n as f64,
        );
    }
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
