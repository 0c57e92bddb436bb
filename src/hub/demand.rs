//! Backends on demand, and failures a retry will not fix. An on-demand backend
//! (`"start": "on-demand"`) runs only while something needs it — a request in flight, a
//! resource subscription, a task, its queue — and sleeps `idleStop` after the last of
//! these ends: no process, its lists kept (and in the catalogue cache, `cache.rs`, so a
//! restarted gateway lists them without starting it). A request for a sleeping backend
//! wakes it and waits in its instance's queue until it is ready. A backend that cannot
//! start for a reason a retry will not fix (no such program, npm's 404) is `failed`, and
//! tried again only every `RETRY_FAILED`, on a reload, or when a request asks for it (at
//! most every `RETRY_ON_REQUEST`), not with the short backoff of a transient failure.

use super::unavailable::Unavailable;
use super::{Backend, BackendIx, Hub, InstanceId, Kind, Lists, Scope, State};
use crate::cache::Cached;
use log::{debug, info, warn};
use std::time::{Duration, Instant};

/// How often a backend failed for good is tried again by itself.
const RETRY_FAILED: Duration = Duration::from_secs(300);
/// How often a request may try a failed backend again.
const RETRY_ON_REQUEST: Duration = Duration::from_secs(10);

/// Whether a start failure is one a retry will not fix: the program or a path is not
/// there, or a package manager says the package does not exist.
pub(super) fn is_permanent(reason: &str) -> bool {
    const SIGNS: &[&str] = &[
        "not found on the PATH",
        "No such file or directory",
        "is not a directory",
        "Permission denied",
        // npm and npx: a package that is not in the registry.
        "E404",
        "404 Not Found",
        "is not in this registry",
        // uv/uvx.
        "No solution found when resolving",
        "was not found in the package registry",
        // python -m of a module that is not installed.
        "No module named",
    ];
    SIGNS.iter().any(|s| reason.contains(s))
}

/// A hash of a backend's lists and what it said of itself, to tell whether the cache holds them already.
fn hash_of(lists: &Lists, server: Option<&serde_json::Value>) -> u64 {
    let mut text: String = Kind::ALL
        .iter()
        .map(|k| serde_json::to_string(lists.get(*k)).unwrap_or_default())
        .collect();
    text.push_str(&server.map(|s| s.to_string()).unwrap_or_default());
    crate::cache::fnv1a(text.as_bytes())
}

impl Hub {
    /// Whether backend `b` runs on demand (its own `start`, else the gateway's).
    pub(super) fn on_demand(&self, b: BackendIx) -> bool {
        self.backends[b]
            .spec
            .on_demand
            .unwrap_or(self.opts.on_demand)
    }

    fn idle_stop(&self, b: BackendIx) -> Duration {
        self.backends[b]
            .spec
            .idle_stop
            .unwrap_or(self.opts.idle_stop)
    }

    /// At start: an on-demand backend whose lists the cache holds for its entry sleeps at
    /// once, listed from the cache. A damaged cache costs a warning and a fresh learn.
    pub(super) fn sleep_from_cache(&mut self, b: BackendIx) -> bool {
        let Some(cache) = &self.opts.cache else {
            return false;
        };
        let backend = &self.backends[b];
        match cache.load(&backend.spec) {
            Ok(Cached::Lists(lists, server)) => {
                let name = backend.spec.name.clone();
                let stored = hash_of(&lists, server.as_ref());
                let backend = &mut self.backends[b];
                backend.lists = lists;
                backend.server = server;
                backend.stored = Some(stored);
                backend.state = State::Sleeping;
                backend.took = Some(Duration::ZERO);
                let counts = Kind::ALL.map(|k| backend.lists.get(k).len());
                console!(
                    "  {:<16} {:<15} sleeping {:>3} tools, {} prompts, {} resources, {} templates (on demand, from the catalogue cache)",
                    name,
                    backend.spec.transport.type_name(),
                    counts[0],
                    counts[1],
                    counts[2],
                    counts[3],
                );
                self.rebuild_registry();
                true
            }
            Ok(Cached::Missing) => false,
            Err(e) => {
                warn!(
                    "backend '{}': the catalogue cache is not usable ({e}); learning its lists anew",
                    backend.spec.name
                );
                false
            }
        }
    }

    /// Wakes a sleeping backend for a request: its instance, which the request waits in
    /// the queue of until it is ready.
    pub(super) fn wake(&mut self, b: BackendIx) -> Result<InstanceId, Unavailable> {
        let started = Instant::now();
        match self.start_instance(b, None) {
            Ok(id) => {
                let backend = &mut self.backends[b];
                backend.source = Some(id);
                backend.state = State::Waking;
                backend.started = started;
                info!("backend '{}': waking for a request", backend.spec.name);
                Ok(id)
            }
            Err(e) => {
                if let Unavailable::CannotStart {
                    reason,
                    permanent: true,
                    ..
                } = &e
                {
                    self.fail_for_good(b, reason.clone());
                }
                Err(e)
            }
        }
    }

    /// The lists of an on-demand backend, into the catalogue cache when they changed.
    pub(super) fn remember_catalog(&mut self, b: BackendIx) {
        if !self.on_demand(b) {
            return;
        }
        let Some(cache) = &self.opts.cache else {
            return;
        };
        let backend = &self.backends[b];
        let hash = hash_of(&backend.lists, backend.server.as_ref());
        if backend.stored == Some(hash) {
            return;
        }
        match cache.store(&backend.spec, &backend.lists, backend.server.as_ref()) {
            Ok(()) => {
                debug!(
                    "backend '{}': its lists are in the catalogue cache",
                    backend.spec.name
                );
                self.backends[b].stored = Some(hash);
            }
            Err(e) => {
                // Said once for these lists, not on every wake: tried again when they change.
                warn!(
                    "backend '{}': catalogue cache: {e} (its lists are learned anew after a restart)",
                    backend.spec.name
                );
                self.backends[b].stored = Some(hash);
            }
        }
    }

    /// Whether something needs instance `id` to run: a request in flight or queued, a
    /// resource subscription, a task of its backend.
    fn needed(&self, id: InstanceId) -> bool {
        let Some(inst) = self.instances.get(&id) else {
            return false;
        };
        !inst.queued.is_empty()
            || self.pending().waits_on(id)
            || self.subscriptions.keys().any(|(i, _)| *i == id)
            || self.tasks.values().any(|t| t.backend == inst.backend)
    }

    /// On-demand backends idle for their `idleStop` go to sleep (the tick's).
    pub(super) fn sleep_idle(&mut self, now: Instant) {
        let idle: Vec<(BackendIx, InstanceId)> = (0..self.backends.len())
            .map(BackendIx)
            .filter(|&b| self.on_demand(b) && self.backends[b].state == State::Ready)
            .filter(|&b| self.backends[b].spec.scope == Scope::Shared)
            .filter_map(|b| Some((b, self.backends[b].source?)))
            .filter(|&(b, id)| {
                let inst = &self.instances[&id];
                // What its reader last heard counts too: calls routed without the hub.
                let last = inst
                    .order
                    .heard()
                    .map_or(inst.last_used, |h| h.max(inst.last_used));
                now.duration_since(last) >= self.idle_stop(b) && !self.needed(id)
            })
            .collect();
        for (b, id) in idle {
            info!(
                "backend '{}': idle for {} s; sleeping (the next request wakes it)",
                self.backends[b].spec.name,
                self.idle_stop(b).as_secs()
            );
            self.stop_instance(id);
            self.backends[b].state = State::Sleeping;
        }
    }

    /// A backend that cannot start for a reason a retry will not fix: `failed`, said once,
    /// and tried again only now and then.
    pub(super) fn fail_for_good(&mut self, b: BackendIx, reason: String) {
        let said = matches!(&self.backends[b].state, State::Failed(r) if *r == reason)
            || self.backends[b].retry_at.is_some();
        if said {
            debug!(
                "backend '{}': still cannot start: {reason}",
                self.backends[b].spec.name
            );
            self.backends[b].state = State::Failed(reason);
        } else if self.on_demand(b) && self.backends[b].lists != Lists::default() {
            // Its tools stay listed: a call of one tries it again (and says why not).
            let backend = &mut self.backends[b];
            warn!(
                "backend '{}': {reason}; it cannot be started",
                backend.spec.name
            );
            console!(
                "  {:<16} {:<15} FAILED   {reason}",
                backend.spec.name,
                backend.spec.transport.type_name()
            );
            backend.state = State::Failed(reason);
            console!(
                "  {:<16} {:<15} not retried for {} min (a retry will not fix this): reload the config, or call one of its tools, once it is fixed",
                self.backends[b].spec.name,
                self.backends[b].spec.transport.type_name(),
                RETRY_FAILED.as_secs() / 60
            );
        } else {
            self.backend_failed(b, reason);
            console!(
                "  {:<16} {:<15} not retried for {} min (a retry will not fix this): reload the config, or call one of its tools, once it is fixed",
                self.backends[b].spec.name,
                self.backends[b].spec.transport.type_name(),
                RETRY_FAILED.as_secs() / 60
            );
        }
        self.backends[b].retry_at = Some(Instant::now() + RETRY_FAILED);
        // This was an attempt too: a request tries again only after `RETRY_ON_REQUEST`.
        self.backends[b].tried_at = Some(Instant::now());
        self.maybe_print_summary();
    }

    /// Failed-for-good backends whose time has come are tried again (the tick's).
    pub(super) fn retry_failed(&mut self, now: Instant) {
        let due: Vec<BackendIx> = (0..self.backends.len())
            .map(BackendIx)
            .filter(|&b| {
                let backend = &self.backends[b];
                matches!(backend.state, State::Failed(_))
                    && backend.spec.policy.restart
                    && backend.source.is_none()
                    && backend.retry_at.is_some_and(|at| at <= now)
            })
            .collect();
        for b in due {
            self.try_again(b);
        }
    }

    /// A request for a failed backend: tried again, at most every `RETRY_ON_REQUEST`.
    pub(super) fn retry_for_request(&mut self, b: BackendIx) -> Option<InstanceId> {
        let backend = &self.backends[b];
        if backend.retry_at.is_none()
            || backend.source.is_some()
            || backend
                .tried_at
                .is_some_and(|t| t.elapsed() < RETRY_ON_REQUEST)
        {
            return None;
        }
        self.backends[b].tried_at = Some(Instant::now());
        self.try_again(b);
        self.backends[b].source
    }

    /// Starts a failed backend once more (quietly: it was said to have failed).
    pub(super) fn try_again(&mut self, b: BackendIx) {
        debug!("backend '{}': trying it again", self.backends[b].spec.name);
        match self.start_instance(b, None) {
            Ok(id) => {
                let backend: &mut Backend = &mut self.backends[b];
                backend.source = Some(id);
                backend.state = State::Starting;
                backend.started = Instant::now();
            }
            Err(e) => self.fail_for_good(b, e.into_reason()),
        }
    }
}
