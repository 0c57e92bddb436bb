//! What the perf bench measures the gateway against, beside the trivial HTTP server in
//! perf.rs: a trivial legacy SSE server (the floor for /sse), the echo backend driven
//! directly by many clients at once (each its own process, as the gateway's clients are
//! its own sessions), and the allocations per call of a build made to count them.

use super::{Caller, LIMIT, PAYLOAD, read_chunk, read_lines, text_of};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A trivial legacy SSE server: `GET /sse` streams, `POST /messages?s=N` answers 202 and
/// puts the call's answer (a tool result echoing `arguments.text`) on stream N. What a
/// server with no gateway and no backend behind it costs, on the same client code.
pub struct TrivialSse {
    pub addr: SocketAddr,
}

type Streams = Arc<Mutex<HashMap<u64, crossbeam_channel::Sender<String>>>>;

impl TrivialSse {
    pub fn start() -> TrivialSse {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let streams: Streams = Arc::default();
        std::thread::spawn(move || {
            let mut next = 0u64;
            for s in listener.incoming().map_while(Result::ok) {
                next += 1;
                let (streams, n) = (streams.clone(), next);
                std::thread::spawn(move || serve(s, &streams, n));
            }
        });
        TrivialSse { addr }
    }
}

fn serve(s: TcpStream, streams: &Streams, n: u64) {
    let _ = s.set_nodelay(true);
    let mut r = BufReader::new(s);
    while let Ok((first, headers)) = read_lines(&mut r) {
        if first.starts_with("GET /sse") {
            let (tx, rx) = crossbeam_channel::unbounded::<String>();
            streams.lock().unwrap().insert(n, tx);
            let mut w = r.into_inner();
            let endpoint = format!("event: endpoint\ndata: /messages?s={n}\n\n");
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{endpoint}\r\n",
                endpoint.len()
            );
            if w.write_all(head.as_bytes()).is_err() {
                return;
            }
            for data in rx {
                let event = format!("event: message\ndata: {data}\n\n");
                let chunk = format!("{:x}\r\n{event}\r\n", event.len());
                if w.write_all(chunk.as_bytes()).is_err() {
                    return;
                }
            }
            return;
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let stream: Option<u64> = first
            .split("s=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok());
        let msg: Value = serde_json::from_slice(&body).unwrap_or_default();
        if let (Some(id), Some(s)) = (msg.get("id"), stream) {
            let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": msg["params"]["arguments"]["text"]}]}});
            if let Some(tx) = streams.lock().unwrap().get(&s) {
                let _ = tx.send(answer.to_string());
            }
        }
        let _ = r
            .get_mut()
            .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    }
}

/// A client of the trivial SSE server: its stream, and a kept-alive connection to POST on.
pub struct TrivialSseCaller {
    stream: BufReader<TcpStream>,
    pending: String,
    post: BufReader<TcpStream>,
    endpoint: String,
}

impl TrivialSseCaller {
    pub fn new(addr: SocketAddr) -> TrivialSseCaller {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let mut stream = BufReader::new(s);
        stream
            .get_mut()
            .write_all(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        read_lines(&mut stream).unwrap();
        let post = TcpStream::connect(addr).unwrap();
        post.set_nodelay(true).unwrap();
        post.set_read_timeout(Some(LIMIT)).unwrap();
        let mut c = TrivialSseCaller {
            stream,
            pending: String::new(),
            post: BufReader::new(post),
            endpoint: String::new(),
        };
        c.endpoint = c.next_data();
        c
    }

    fn next_data(&mut self) -> String {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let ev: String = self.pending.drain(..end + 2).collect();
                if let Some(data) = ev.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return data.to_string();
                }
                continue;
            }
            let chunk = read_chunk(&mut self.stream).unwrap().unwrap();
            self.pending.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    pub fn call(&mut self, msg: &Value) -> Value {
        let body = msg.to_string();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.endpoint,
            body.len()
        );
        self.post.get_mut().write_all(head.as_bytes()).unwrap();
        let (status, _) = read_lines(&mut self.post).unwrap();
        assert!(status.contains(" 202 "), "{status}");
        serde_json::from_str(&self.next_data()).unwrap()
    }
}

impl Caller for TrivialSseCaller {
    fn call(&mut self, i: u64) -> bool {
        let msg = super::echo_call(i + 1, "echo");
        text_of(&TrivialSseCaller::call(self, &msg)).len() == PAYLOAD
    }
}

/// One client of its own echo backend process, driven over the pipes.
pub struct DirectCaller(super::Direct);

impl DirectCaller {
    pub fn new(me: &Path) -> DirectCaller {
        let mut d = super::Direct::start(me);
        d.initialize();
        DirectCaller(d)
    }
}

impl Caller for DirectCaller {
    fn call(&mut self, i: u64) -> bool {
        text_of(&self.0.call(&super::echo_call(i + 1, "echo"))).len() == PAYLOAD
    }
}

/// The gateway built to count its allocations (`--features count-allocs`): `PERF_ALLOC_BIN`,
/// or built here into target/count-allocs (a glibc release build: what is counted is the
/// gateway's own code, the same on every libc).
pub fn counting_gateway() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("PERF_ALLOC_BIN") {
        return Some(PathBuf::from(bin));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target/count-allocs");
    let built = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--features",
            "count-allocs",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(&root)
        .status()
        .is_ok_and(|s| s.success());
    built.then(|| target.join("release/mcp-gateway"))
}

/// The gateway's allocation counters (`/metrics` of a count-allocs build).
pub fn allocations(addr: SocketAddr) -> (u64, u64) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        get("mcp_gateway_allocations_total "),
        get("mcp_gateway_allocated_bytes_total "),
    )
}
