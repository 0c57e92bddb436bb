//! The stdio front end (`--stdio`): one client session over stdin/stdout, for clients
//! that only start servers as child processes (Claude Desktop).
//!
//! Owns stdin and stdout: nothing but protocol messages is written to stdout, one per line
//! (console lines go to stderr in this mode). Stdin closing ends the gateway, as a stdio
//! server should.

use crate::contract::{HubEvent, Outbound};
use crate::http::MAX_BODY;
use crate::jsonrpc::{self, Message};
use crate::lines::{Line, read_line_limited};
use crossbeam_channel::Sender;
use log::{debug, warn};
use std::io::Write;
use std::thread::{self, JoinHandle};

const SESSION: &str = "stdio";

/// Starts the session and its two threads; `done` is told when stdin or stdout closes.
pub fn start(
    hub: Sender<HubEvent>,
    router: crate::hub::Router,
    done: Sender<()>,
) -> std::io::Result<JoinHandle<()>> {
    let (tx, rx) = crate::contract::Queue::new(crate::http::SESSION_QUEUE);
    let _ = hub.send(HubEvent::ClientOpened {
        session: SESSION.into(),
        sink: Box::new(tx.clone()),
        transport: "stdio",
    });
    let writer_done = done.clone();
    let writer = thread::Builder::new()
        .name("stdio-writer".into())
        .spawn(move || {
            let mut out = std::io::stdout().lock();
            for o in rx {
                let mut line = o.msg.to_json();
                debug!("> {SESSION}: {line}");
                line.push('\n');
                if out
                    .write_all(line.as_bytes())
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    warn!("stdio: stdout closed");
                    let _ = writer_done.try_send(());
                    return;
                }
            }
        })?;
    thread::Builder::new()
        .name("stdio-reader".into())
        .spawn(move || {
            let answer = |e: jsonrpc::ParseError| {
                let reply = Outbound {
                    related: None,
                    msg: Message::Response(e.into_response()),
                };
                let _ = tx.push(reply);
            };
            let mut input = std::io::BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
            let mut line = Vec::new();
            loop {
                // Only the end of input ends the session: a bad line gets the error the HTTP
                // path gives the same body, and the next line is read.
                match read_line_limited(&mut input, &mut line, MAX_BODY) {
                    Ok(Line::End) => break,
                    Ok(Line::TooLong(size)) => {
                        warn!("stdio: a line of {size} bytes, over the {MAX_BODY}-byte limit");
                        answer(jsonrpc::ParseError {
                            code: jsonrpc::INVALID_REQUEST,
                            message: format!(
                                "message of {size} bytes is over the {MAX_BODY}-byte limit"
                            ),
                            id: None,
                        });
                        continue;
                    }
                    Ok(Line::Text) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        warn!("stdio: cannot read stdin: {e}");
                        break;
                    }
                }
                if line.trim_ascii().is_empty() {
                    continue;
                }
                match crate::http::parse_body(line.trim_ascii()) {
                    Ok(msg) => {
                        debug!("< {SESSION}: {}", String::from_utf8_lossy(&line).trim_end());
                        let _ = router.dispatch(SESSION, msg);
                    }
                    Err(e) => answer(e),
                }
            }
            debug!("stdio: stdin closed; stopping");
            let _ = hub.send(HubEvent::ClientGone {
                session: SESSION.into(),
            });
            let _ = done.try_send(());
        })?;
    Ok(writer)
}
