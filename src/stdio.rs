//! The stdio front end (`--stdio`): one client session over stdin/stdout, for clients
//! that only start servers as child processes (Claude Desktop).
//!
//! Owns stdin and stdout: nothing but protocol messages is written to stdout, one per line
//! (console lines go to stderr in this mode). Stdin closing ends the gateway, as a stdio
//! server should.

use crate::hub::{HubEvent, Outbound};
use crate::jsonrpc::Message;
use crossbeam_channel::Sender;
use log::{debug, warn};
use std::io::{BufRead, Write};
use std::thread::{self, JoinHandle};

const SESSION: &str = "stdio";

/// Starts the session and its two threads; `done` is told when stdin or stdout closes.
pub fn start(hub: Sender<HubEvent>, done: Sender<()>) -> std::io::Result<JoinHandle<()>> {
    let (tx, rx) = crate::hub::Queue::new(crate::http::SESSION_QUEUE);
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
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                match Message::parse(&line) {
                    Ok(msg) => {
                        debug!("< {SESSION}: {line}");
                        let _ = hub.send(HubEvent::FromClient {
                            session: SESSION.into(),
                            msg,
                        });
                    }
                    Err(e) => {
                        let reply = Outbound {
                            related: None,
                            msg: Message::Response(e.into_response()),
                        };
                        let _ = tx.push(reply);
                    }
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
