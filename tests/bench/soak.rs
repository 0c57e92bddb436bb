//! Soak: clients calling at full load for a bounded time while a backend is killed again
//! and again. Reports requests sent and answered (results and errors); any request left
//! without an answer fails the run.
//!
//!     cargo bench --bench soak                      # 120 s, 16 clients
//!     SOAK_SECS=300 SOAK_CLIENTS=32 cargo bench --bench soak
//!
//! Loopback only; every loop is bounded in time.

#[path = "../util/mod.rs"]
mod util;

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let secs = util::env_number("SOAK_SECS", 120);
    let clients = util::env_number("SOAK_CLIENTS", 16) as usize;
    let kill_every = Duration::from_secs(util::env_number("SOAK_KILL_EVERY", 10));
    let gw = util::Gateway::start_with(
        &json!({ "fx": util::fixture(&[]), "steady": util::fixture(&[]) }),
        &["--sse-keepalive", "2", "--log-level", "warn"],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, results, errors) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let crossed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let port = gw.port;
    let workers: Vec<_> = (0..clients)
        .map(|n| {
            let (stop, sent, results, errors, crossed) = (
                stop.clone(),
                sent.clone(),
                results.clone(),
                errors.clone(),
                crossed.clone(),
            );
            std::thread::spawn(move || {
                let c = util::SseClient::connect(port);
                c.initialize();
                let mut i: u64 = 0;
                while !stop.load(Ordering::SeqCst) {
                    let backend = if i.is_multiple_of(2) { "fx" } else { "steady" };
                    sent.fetch_add(1, Ordering::SeqCst);
                    let r = c.call(
                        json!(i),
                        &format!("{backend}__echo"),
                        json!({"text": format!("{n}/{i}")}),
                    );
                    match (&r["result"], &r["error"]) {
                        (Value::Object(res), _) => {
                            // The answer must be this call's own: its text is "<client>/<call>".
                            if res["content"][0]["text"] != format!("{n}/{i}").as_str() {
                                crossed.fetch_add(1, Ordering::SeqCst);
                            }
                            results.fetch_add(1, Ordering::SeqCst)
                        }
                        (_, Value::Object(_)) => errors.fetch_add(1, Ordering::SeqCst),
                        _ => panic!("neither result nor error: {r}"),
                    };
                    i += 1;
                }
                c.close();
            })
        })
        .collect();
    let mut kills = 0;
    let killer = util::SseClient::connect(port);
    killer.initialize();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(
            kill_every.min(Duration::from_secs(secs).saturating_sub(started.elapsed())),
        );
        if started.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        let _ = killer.call(json!(format!("kill{kills}")), "fx__crash", json!({}));
        kills += 1;
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().expect("a client thread failed");
    }
    let (sent, results, errors) = (
        sent.load(Ordering::SeqCst),
        results.load(Ordering::SeqCst),
        errors.load(Ordering::SeqCst),
    );
    let elapsed = started.elapsed().as_secs_f64();
    let report = json!({
        "seconds": elapsed.round(),
        "clients": clients,
        "backend_kills": kills,
        "sent": sent,
        "answered": results + errors,
        "results": results,
        "errors": errors,
        "unanswered": sent - results - errors,
        "crossed": crossed.load(Ordering::SeqCst),
        "calls_per_second": (sent as f64 / elapsed).round(),
    });
    println!("{report}");
    assert_eq!(sent, results + errors, "requests went unanswered");
    assert_eq!(
        crossed.load(Ordering::SeqCst),
        0,
        "answers reached the wrong call"
    );
}
