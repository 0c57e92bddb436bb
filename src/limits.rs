//! The process's limits and what fits in them: the open-file limit (raised to the hard
//! limit at start), `vm.max_map_count`, and from those how many sessions and client
//! connections the gateway takes before it answers 503. Only the first two touch the
//! process (they read, and raise, its limits); the rest is arithmetic, tested as data.

/// Each stream holds a socket: lets the process use every descriptor the hard limit
/// allows; returns the limit in force (None where there is none to read).
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return None;
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every Unix
        (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// Makes large blocks (a message of 256 KiB or more, and its copies) their own mappings,
/// returned to the system as soon as they are freed. glibc's allocator otherwise raises
/// that threshold as large blocks are freed and keeps them in its per-thread arenas: a
/// burst of 4 MiB messages left a glibc build at 133 MiB when idle. musl's allocator, in
/// the static release build, returns large blocks by itself, so there this does nothing.
/// Call at start, before other threads.
pub fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no other thread allocates yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// The memory mappings a process may have (Linux's `vm.max_map_count`).
pub fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What a session is budgeted: its stream and three connections of calls in parallel (a
/// descriptor each), and three threads (the stream's writer and two connections'), each a
/// stack, its guard page and a signal stack with its own: four mappings. The connection cap
/// bounds what clients open beyond that.
const FDS_PER_SESSION: u64 = 4;
const MAPS_PER_SESSION: u64 = 12;
/// What one client connection holds: a descriptor and a thread.
const MAPS_PER_CONNECTION: u64 = 4;
/// Connections served at once when `maxConnections` is not set and the limits allow it.
const DEFAULT_MAX_CONNECTIONS: u64 = 20_000;
/// Descriptors for everything else: logs, the listener, short requests; and per backend.
const FD_RESERVE: u64 = 64;
const FDS_PER_BACKEND: u64 = 8;
const MAP_RESERVE: u64 = 1024;

/// How many sessions fit in the process's limits, and which limits bind. Sessions beyond
/// this are refused with 503, like `--max-sessions`, before the process runs out.
pub fn session_capacity(
    requested: usize,
    backends: usize,
    fds: Option<u64>,
    maps: Option<u64>,
) -> (usize, Vec<String>) {
    let mut capacity = requested as u64;
    let mut limits = Vec::new();
    if let Some(fds) = fds {
        let reserve = FD_RESERVE + FDS_PER_BACKEND * backends as u64;
        let fit = fds.saturating_sub(reserve) / FDS_PER_SESSION;
        if fit < capacity {
            capacity = fit;
            limits.push(format!(
                "the open-file limit is {fds} and each session needs {FDS_PER_SESSION} (raise it with 'ulimit -n' or LimitNOFILE=)"
            ));
        }
    }
    if let Some(maps) = maps {
        let fit = maps.saturating_sub(MAP_RESERVE) / MAPS_PER_SESSION;
        if fit < capacity {
            capacity = fit;
            limits.push(format!(
                "vm.max_map_count is {maps} and each session needs {MAPS_PER_SESSION} mappings (raise it with 'sysctl vm.max_map_count=262144')"
            ));
        }
    }
    (capacity.max(1) as usize, limits)
}

/// How many client connections the HTTP layer keeps open at once: `maxConnections` when
/// set (beyond the open-file limit the accept loop copes: it backs off and answers 503),
/// else as many as the open-file limit and `vm.max_map_count` leave room for, at most
/// `DEFAULT_MAX_CONNECTIONS`.
pub fn connection_capacity(
    configured: Option<usize>,
    backends: usize,
    fds: Option<u64>,
    maps: Option<u64>,
) -> usize {
    let fit_fds = fds.map(|f| f.saturating_sub(FD_RESERVE + FDS_PER_BACKEND * backends as u64));
    let fit_maps = maps.map(|m| m.saturating_sub(MAP_RESERVE) / MAPS_PER_CONNECTION);
    let fit = [fit_fds, fit_maps].into_iter().flatten().min();
    match configured {
        Some(n) => {
            if let Some(fit) = fit.filter(|&fit| (n as u64) > fit) {
                log::warn!(
                    "maxConnections is {n}, but the process's limits leave room for about {fit}: past that, new connections get 503 while descriptors are short"
                );
            }
            n
        }
        None => fit
            .unwrap_or(DEFAULT_MAX_CONNECTIONS)
            .clamp(1, DEFAULT_MAX_CONNECTIONS) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_capped_by_descriptors_and_mappings() {
        assert_eq!(session_capacity(10_000, 2, None, None), (10_000, vec![]));
        assert_eq!(
            session_capacity(10_000, 2, Some(1_048_576), Some(262_144)).0,
            10_000
        );
        let (n, why) = session_capacity(10_000, 2, Some(20_000), Some(262_144));
        assert_eq!(n, (20_000 - 64 - 16) / 4);
        assert!(why[0].contains("open-file limit is 20000"), "{why:?}");
        let (n, why) = session_capacity(10_000, 2, Some(1_048_576), Some(65_530));
        assert_eq!(n, (65_530 - 1024) / 12);
        assert!(why[0].contains("vm.max_map_count is 65530"), "{why:?}");
        assert_eq!(session_capacity(10_000, 0, Some(10), None).0, 1);
    }

    #[test]
    fn connections_are_capped_by_descriptors_unless_configured() {
        assert_eq!(connection_capacity(None, 0, None, None), 20_000);
        assert_eq!(
            connection_capacity(None, 2, Some(1_048_576), Some(262_144)),
            20_000
        );
        assert_eq!(connection_capacity(None, 2, Some(256), None), 256 - 64 - 16);
        assert_eq!(
            connection_capacity(None, 0, Some(1_048_576), Some(65_530)),
            (65_530 - 1024) / 4
        );
        assert_eq!(connection_capacity(None, 0, Some(10), None), 1);
        assert_eq!(connection_capacity(Some(1000), 0, Some(128), None), 1000);
    }
}
