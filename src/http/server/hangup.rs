//! Noticing that a client hung up on a stream it only reads: one thread waits (epoll, on
//! Linux) for the peer's FIN or an error on every stream's socket, and tells the stream's
//! writer through a channel, so a vanished client is noticed at once rather than at the
//! next keep-alive write, and an idle stream costs no wake-ups.
//!
//! Elsewhere the channel never fires and a writer notices at its next write, as before.

use crossbeam_channel::Receiver;
use std::net::TcpStream;

/// The watcher shared by all of one server's streams.
#[derive(Clone, Default)]
pub struct Hangups {
    #[cfg(target_os = "linux")]
    epoll: Option<std::sync::Arc<linux::Epoll>>,
}

/// One stream's registration: `rx` gets a message when its client hangs up. Dropped (before
/// the socket is closed) it stops the watching.
pub struct Watch {
    pub rx: Receiver<()>,
    #[cfg(target_os = "linux")]
    registered: Option<(std::sync::Arc<linux::Epoll>, u64, std::os::fd::RawFd)>,
}

impl Hangups {
    /// Starts the watching thread; without it (or off Linux) streams are not watched.
    pub fn start() -> Hangups {
        #[cfg(target_os = "linux")]
        return Hangups {
            epoll: linux::Epoll::start()
                .map_err(|e| log::warn!("http: cannot watch streams for hang-ups: {e}"))
                .ok(),
        };
        #[cfg(not(target_os = "linux"))]
        Hangups::default()
    }

    /// Watches `tcp` until the returned `Watch` is dropped.
    pub fn watch(&self, tcp: &TcpStream) -> Watch {
        #[cfg(target_os = "linux")]
        if let Some(epoll) = &self.epoll {
            use std::os::fd::AsRawFd;
            let fd = tcp.as_raw_fd();
            if let Some((token, rx)) = epoll.add(fd) {
                return Watch {
                    rx,
                    registered: Some((epoll.clone(), token, fd)),
                };
            }
        }
        let _ = tcp;
        Watch {
            rx: crossbeam_channel::never(),
            #[cfg(target_os = "linux")]
            registered: None,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some((epoll, token, fd)) = self.registered.take() {
            epoll.remove(token, fd);
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use crossbeam_channel::{Receiver, Sender};
    use std::collections::HashMap;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    pub struct Epoll {
        fd: OwnedFd,
        /// The writer to tell, by the token its socket was registered with.
        waiting: Mutex<HashMap<u64, Sender<()>>>,
        next: AtomicU64,
    }

    impl Epoll {
        pub fn start() -> std::io::Result<Arc<Epoll>> {
            // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new
            // descriptor that nothing else owns.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let epoll = Arc::new(Epoll {
                // SAFETY: `fd` was just created and is owned by nothing else.
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
                waiting: Mutex::default(),
                next: AtomicU64::new(1),
            });
            let watcher = epoll.clone();
            std::thread::Builder::new()
                .name("http-hangup".into())
                .stack_size(64 * 1024)
                .spawn(move || watcher.run())?;
            Ok(epoll)
        }

        fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Sender<()>>> {
            self.waiting.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// Registers `fd` for one hang-up (or error) event.
        pub fn add(&self, fd: RawFd) -> Option<(u64, Receiver<()>)> {
            let token = self.next.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = crossbeam_channel::bounded(1);
            self.waiting().insert(token, tx);
            let mut event = libc::epoll_event {
                events: (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLONESHOT)
                    as u32,
                u64: token,
            };
            // SAFETY: the event is a valid epoll_event for the call's duration; `fd` is an
            // open socket, registered until `remove`, which runs before it is closed.
            let rc = unsafe {
                libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event)
            };
            if rc != 0 {
                self.waiting().remove(&token);
                return None;
            }
            Some((token, rx))
        }

        pub fn remove(&self, token: u64, fd: RawFd) {
            self.waiting().remove(&token);
            // SAFETY: removing a registration passes no event; `fd` is still open.
            unsafe {
                libc::epoll_ctl(
                    self.fd.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd,
                    std::ptr::null_mut(),
                );
            }
        }

        fn run(&self) {
            let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
            loop {
                // SAFETY: `events` has room for the 64 events asked for.
                let n =
                    unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), 64, -1) };
                if n < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    log::warn!("http: stopped watching streams for hang-ups: {e}");
                    return;
                }
                let mut waiting = self.waiting();
                for event in &events[..n as usize] {
                    let token = event.u64;
                    if let Some(tx) = waiting.remove(&token) {
                        let _ = tx.try_send(());
                    }
                }
            }
        }
    }
}
