//! Several instances behind a load balancer: two gateways with nginx, or HAProxy, in front
//! of them, run with docs/operations.md's configuration for it; sessions of both transports
//! through it; one instance drained with SIGTERM while calls go on.

mod util;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use util::{Gateway, McpClient, SseClient, TempDir, fixture};

/// A program on PATH, or where Debian puts daemons.
fn binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/sbin").join(name);
        debian.is_file().then_some(debian)
    })
}

/// docs/operations.md's `lang` block for several instances, pointed at these ports: the instances'
/// 127.0.0.1:9001 and :9002, and the line `listen_line` (TLS, in that page) replaced by
/// `listen`; lines starting with one of `drop` (certificates) left out.
fn readme_block(
    lang: &str,
    a: u16,
    b: u16,
    listen_line: &str,
    listen: &str,
    drop: &[&str],
) -> String {
    let page = std::fs::read_to_string(util::root().join("docs/operations.md")).unwrap();
    let section = &page[page
        .find("## Running several instances")
        .expect("docs/operations.md's section 'Running several instances'")..];
    let fence = format!("```{lang}\n");
    let block = &section[section
        .find(&fence)
        .unwrap_or_else(|| panic!("a {lang} block"))
        + fence.len()..];
    let block = &block[..block.find("```").unwrap()];
    let mut out = String::new();
    for line in block.lines() {
        let t = line.trim();
        if drop.iter().any(|d| t.starts_with(d)) {
            continue;
        }
        if t == listen_line {
            out.push_str(listen);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(
        out.contains(listen),
        "docs/operations.md's {lang} block has '{listen_line}'"
    );
    for (from, to) in [("127.0.0.1:9001", a), ("127.0.0.1:9002", b)] {
        assert!(
            out.contains(from),
            "docs/operations.md's {lang} block names {from}"
        );
        out = out.replace(from, &format!("127.0.0.1:{to}"));
    }
    out
}

/// A load balancer in front of two instances, on a loopback port of its own.
struct Balancer {
    child: Child,
    dir: TempDir,
    port: u16,
    log: PathBuf,
}

impl Balancer {
    /// nginx, with the page's block inside a minimal configuration of its own files.
    fn nginx(binary: &Path, a: u16, b: u16) -> Balancer {
        let dir = TempDir::new();
        let port = util::free_port();
        let d = dir.path().display();
        let block = readme_block(
            "nginx",
            a,
            b,
            "listen 443 ssl http2;",
            &format!("    listen 127.0.0.1:{port};"),
            &["ssl_certificate"],
        );
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             {user}events {{ worker_connections 1024; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
             {block}\n}}\n",
            // As root, nginx would run its worker as 'nobody', who cannot use these folders.
            user = if unsafe { libc::geteuid() } == 0 {
                "user root;\n"
            } else {
                ""
            },
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(binary);
        cmd.arg("-p").arg(dir.path());
        cmd.arg("-e").arg(dir.path().join("error.log"));
        cmd.arg("-c").arg(&path);
        let log = dir.path().join("error.log");
        Balancer::start(cmd, dir, port, log)
    }

    /// HAProxy, with the page's block as its whole configuration.
    fn haproxy(binary: &Path, a: u16, b: u16) -> Balancer {
        let dir = TempDir::new();
        let port = util::free_port();
        let conf = readme_block(
            "haproxy",
            a,
            b,
            "bind :443 ssl crt /etc/haproxy/certs/mcp.example.com.pem",
            &format!("    bind 127.0.0.1:{port}"),
            &[],
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, conf).unwrap();
        let mut cmd = Command::new(binary);
        // -db: in the foreground; its log goes to stderr.
        cmd.arg("-db").arg("-f").arg(&path);
        let log = dir.path().join("stderr.log");
        Balancer::start(cmd, dir, port, log)
    }

    fn start(mut cmd: Command, dir: TempDir, port: u16, log: PathBuf) -> Balancer {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("start the balancer");
        let balancer = Balancer {
            child,
            dir,
            port,
            log,
        };
        let listening = util::poll(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(
            listening,
            "the balancer did not listen:\n{}",
            balancer.log()
        );
        balancer
    }

    fn log(&self) -> String {
        let stderr = self.dir.path().join("stderr.log");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        if self.log == stderr {
            return read(&stderr);
        }
        read(&stderr) + &read(&self.log)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// What became of a call.
enum Outcome {
    /// Its result, as expected.
    Answered,
    /// The session is gone (404): start another and send the call again.
    SessionGone,
    /// Anything else: an error result, no answer, an unexpected HTTP status.
    Failed(String),
}

/// A session of either transport, through the balancer.
enum Session {
    Legacy(SseClient),
    Streamable(McpClient),
}

impl Session {
    fn open(port: u16, legacy: bool) -> Result<Session, String> {
        if legacy {
            let c = SseClient::try_connect(port)?;
            let init = json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "cluster", "version": "1"}}});
            let (status, body) = c.post_raw(&init.to_string());
            if status != 202 {
                return Err(format!("initialize: {status} {body}"));
            }
            c.wait_response(&json!("init"), Duration::from_secs(10))
                .ok_or("initialize: no answer")?;
            let (status, body) = c.post_raw(
                &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
            );
            if status != 202 {
                return Err(format!("notifications/initialized: {status} {body}"));
            }
            Ok(Session::Legacy(c))
        } else {
            McpClient::try_connect(port).map(Session::Streamable)
        }
    }

    fn id(&self) -> &str {
        match self {
            Session::Legacy(c) => c.session(),
            Session::Streamable(c) => &c.session,
        }
    }

    fn call(&self, id: u64, text: &str) -> Outcome {
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "fx__sleep", "arguments": {"ms": 20, "text": text}}});
        let reply = match self {
            Session::Legacy(c) => match c.post_raw(&request.to_string()) {
                (202, _) => match c.wait_response(&json!(id), Duration::from_secs(20)) {
                    Some(reply) => reply,
                    None => return Outcome::Failed(format!("call {id} accepted, never answered")),
                },
                (404, _) => return Outcome::SessionGone,
                (status, body) => return Outcome::Failed(format!("POST: {status} {body}")),
            },
            Session::Streamable(c) => {
                match McpClient::post(c.port, Some(&c.session), &[], &request) {
                    (200, headers, body) => {
                        let kind = headers
                            .iter()
                            .find(|(k, _)| k == "content-type")
                            .map(|(_, v)| v.clone())
                            .unwrap_or_default();
                        match util::messages_in(&kind, &body).pop() {
                            Some(reply) => reply,
                            None => return Outcome::Failed(format!("call {id}: empty answer")),
                        }
                    }
                    (404, _, _) => return Outcome::SessionGone,
                    (status, _, body) => return Outcome::Failed(format!("POST: {status} {body}")),
                }
            }
        };
        if reply["id"] == json!(id) && reply["result"]["content"][0]["text"] == text {
            Outcome::Answered
        } else {
            Outcome::Failed(format!("call {id}: {reply}"))
        }
    }
}

/// The tag of a session id: what comes before its first '.'.
fn tag(session: &str) -> &str {
    session.split('.').next().unwrap_or("")
}

#[derive(Default)]
struct Tally {
    /// Every session opened, with when (false: before the drain began).
    sessions: Vec<(String, bool)>,
    failures: Vec<String>,
}

/// What the clients and the test share.
#[derive(Default)]
struct Run {
    tally: Mutex<Tally>,
    /// Calls answered as expected.
    calls: AtomicUsize,
    /// Sessions started again after a 404.
    reopened: AtomicUsize,
    /// Calls answered on gw-a's sessions, and 404s for them, between SIGTERM and its exit.
    answered_in_drain: AtomicUsize,
    gone_in_drain: AtomicUsize,
    /// 404s for gw-a's sessions after it stopped (from gw-b, where the balancer sends them).
    gone_after: AtomicUsize,
    /// Clients whose first calls are done: the drain starts when all are.
    warm: AtomicUsize,
    /// Sessions on gw-a counted at warm-up, to pick every other one to pause.
    on_a_seen: AtomicUsize,
    draining: AtomicBool,
    a_gone: AtomicBool,
}

const CLIENTS: usize = 20;
const CALLS_BEFORE: u64 = 5;
const CALLS_AFTER: u64 = 5;

/// Client `n` (legacy if even, else Streamable HTTP): a session through the balancer at
/// `port`, calls until it has made `CALLS_AFTER` after gw-a stopped, a new session after
/// each 404.
fn client(n: usize, port: u16, run: &Run, deadline: Instant) {
    let legacy = n.is_multiple_of(2);
    let open = || loop {
        match Session::open(port, legacy) {
            Ok(s) => {
                let during = run.draining.load(Ordering::SeqCst);
                let id = s.id().to_string();
                run.tally.lock().unwrap().sessions.push((id, during));
                return Some(s);
            }
            Err(e) => {
                let failure = format!("client {n}: {e}");
                run.tally.lock().unwrap().failures.push(failure);
                if Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let Some(mut session) = open() else {
        return;
    };
    // Every other session on gw-a pauses after its first calls until gw-a has stopped, so
    // it meets the stopped instance rather than the draining one.
    let mut pauses = false;
    let mut after = 0;
    let mut id = 0u64;
    while Instant::now() < deadline {
        if pauses {
            pauses = false;
            while !run.a_gone.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        id += 1;
        let text = format!("client {n} call {id}");
        loop {
            match session.call(id, &text) {
                Outcome::Answered => {
                    if run.draining.load(Ordering::SeqCst)
                        && !run.a_gone.load(Ordering::SeqCst)
                        && tag(session.id()) == "gw-a"
                    {
                        run.answered_in_drain.fetch_add(1, Ordering::SeqCst);
                    }
                    run.calls.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Outcome::SessionGone => {
                    let count = if run.a_gone.load(Ordering::SeqCst) {
                        &run.gone_after
                    } else {
                        &run.gone_in_drain
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    run.reopened.fetch_add(1, Ordering::SeqCst);
                    match open() {
                        Some(s) => session = s,
                        None => return,
                    }
                }
                Outcome::Failed(why) => {
                    let failure = format!("client {n}: {why}");
                    run.tally.lock().unwrap().failures.push(failure);
                    break;
                }
            }
        }
        if id == CALLS_BEFORE {
            pauses = tag(session.id()) == "gw-a"
                && run.on_a_seen.fetch_add(1, Ordering::SeqCst) % 2 == 1;
            run.warm.fetch_add(1, Ordering::SeqCst);
        }
        if run.a_gone.load(Ordering::SeqCst) {
            after += 1;
            if after == CALLS_AFTER {
                break;
            }
        }
    }
}

#[test]
fn two_instances_behind_nginx_share_the_load_and_one_drains_without_losing_a_call() {
    cluster("nginx", Balancer::nginx);
}

#[test]
fn two_instances_behind_haproxy_share_the_load_and_one_drains_without_losing_a_call() {
    cluster("haproxy", Balancer::haproxy);
}

/// Two instances behind `name`; the official SDK clients through it; 20 sessions, half of
/// each transport, through it; then one instance drained while the calls go on.
fn cluster(name: &str, start: fn(&Path, u16, u16) -> Balancer) {
    let Some(program) = binary(name) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required in CI (tests/run installs it)"
        );
        eprintln!("SKIPPED: {name} is not installed (tests/run installs it when it can)");
        return;
    };
    let config = json!({
        "fx": fixture(&[]),
        "ev": {"type": "stdio", "command": "node", "args": [util::everything()]},
    });
    let mut a = Gateway::start_with(&config, &["--instance-id", "gw-a", "--drain-timeout", "60"]);
    let b = Gateway::start_with(&config, &["--instance-id", "gw-b", "--drain-timeout", "60"]);
    let balancer = start(&program, a.port, b.port);
    let port = balancer.port;

    // The official SDK clients, over both transports, through the balancer.
    let python = util::sdk_python();
    let base = format!("http://127.0.0.1:{port}");
    for url in [format!("{base}/mcp"), format!("{base}/sse")] {
        for (program, script, who) in [
            (python.as_path(), "tests/python/sdk_transports.py", "python"),
            (
                Path::new("node"),
                "tests/node/sdk_transports.mjs",
                "typescript",
            ),
        ] {
            let seen = util::run_client(&a, program, script, &url, &["ev"]);
            assert_eq!(
                seen["ev"],
                format!("Echo: {who} via ev"),
                "{who} over {url} through {name}"
            );
        }
    }

    let run = Arc::new(Run::default());
    let deadline = Instant::now() + Duration::from_secs(90);
    let workers: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let run = run.clone();
            std::thread::spawn(move || client(n, port, &run, deadline))
        })
        .collect();
    let all_warm = util::poll(|| run.warm.load(Ordering::SeqCst) == CLIENTS);
    assert!(
        all_warm,
        "clients stuck: {:#?}",
        run.tally.lock().unwrap().failures
    );
    let before = run.calls.load(Ordering::SeqCst);
    {
        let t = run.tally.lock().unwrap();
        assert!(t.failures.is_empty(), "{:#?}", t.failures);
        let on_a = t.sessions.iter().filter(|(s, _)| tag(s) == "gw-a").count();
        let on_b = t.sessions.iter().filter(|(s, _)| tag(s) == "gw-b").count();
        assert_eq!(on_a + on_b, CLIENTS, "{:?}", t.sessions);
        assert!(
            on_a >= 2 && on_b > 0,
            "both instances serve sessions: {on_a} and {on_b}"
        );
    }

    // A long call in flight on gw-a when the drain begins: the drain lasts until it is
    // answered, so the other sessions on gw-a meet the draining instance for sure. (The
    // legacy transport's 202 means the gateway holds the request.)
    let slow = (0..20)
        .filter_map(|_| SseClient::try_connect(port).ok())
        .find(|c| tag(c.session()) == "gw-a")
        .expect("a session on gw-a");
    let (status, body) = slow.post_raw(
        &json!({"jsonrpc": "2.0", "id": "slow", "method": "tools/call",
            "params": {"name": "fx__sleep", "arguments": {"ms": 1000, "text": "finished"}}})
        .to_string(),
    );
    assert_eq!(status, 202, "{body}");

    // Drain gw-a while the calls go on.
    run.draining.store(true, Ordering::SeqCst);
    let drain_started = Instant::now();
    a.signal(libc::SIGTERM);
    let answer = slow.wait_response(&json!("slow"), Duration::from_secs(20));
    let status = a.wait_exit();
    let drain_took = drain_started.elapsed();
    let answer = answer.expect("the call in flight at the drain was answered");
    assert_eq!(
        answer["result"]["content"][0]["text"], "finished",
        "{answer}"
    );
    run.a_gone.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("a client thread panicked");
    }
    assert!(status.success(), "gw-a: {status}\n{}", a.stderr());
    assert!(
        a.stdout().contains("drained: no call in flight"),
        "{}",
        a.stdout()
    );

    let t = run.tally.lock().unwrap();
    let total = run.calls.load(Ordering::SeqCst);
    let first: Vec<&str> = t
        .sessions
        .iter()
        .filter(|(_, d)| !d)
        .map(|(s, _)| tag(s))
        .collect();
    let on_a = first.iter().filter(|&&g| g == "gw-a").count();
    let later: Vec<&str> = t
        .sessions
        .iter()
        .filter(|(_, d)| *d)
        .map(|(s, _)| tag(s))
        .collect();
    eprintln!(
        "{name}: {CLIENTS} sessions ({on_a} on gw-a, {} on gw-b); {before} calls before the drain, \
         {} during and after it; gw-a drained (a 1 s call in flight) and stopped in {} ms (meanwhile calls \
         answered: {}, refused with 404: {}); {} more 404s after it stopped; {} sessions \
         re-initialized after a 404 (all on gw-b: {}); failures: {}",
        CLIENTS - on_a,
        total - before,
        drain_took.as_millis(),
        run.answered_in_drain.load(Ordering::SeqCst),
        run.gone_in_drain.load(Ordering::SeqCst),
        run.gone_after.load(Ordering::SeqCst),
        later.len(),
        later.iter().all(|&g| g == "gw-b"),
        t.failures.len(),
    );
    assert!(
        t.failures.is_empty(),
        "{:#?}\n{name}:\n{}",
        t.failures,
        balancer.log()
    );
    // Every session that was on gw-a moved, to gw-b, and nothing else moved.
    assert_eq!(later.len(), on_a, "{:?}", t.sessions);
    assert!(later.iter().all(|&g| g == "gw-b"), "{later:?}");
    assert_eq!(run.reopened.load(Ordering::SeqCst), on_a);
    // Both ways a session can meet its instance's end were taken.
    assert!(
        run.gone_in_drain.load(Ordering::SeqCst) > 0 && run.gone_after.load(Ordering::SeqCst) > 0
    );
    assert!(total >= before + CLIENTS * CALLS_AFTER as usize);
    // gw-b served on.
    let c = McpClient::connect(b.port);
    assert!(tag(&c.session) == "gw-b");
}
