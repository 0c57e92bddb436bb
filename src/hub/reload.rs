//! Hot reload: applying a new config's backends as a difference (start, stop, restart
//! or just re-expose), keeping calls on unchanged backends running.

use super::{Backend, Hub, State};
use crate::config::BackendSpec;
use crate::contract::InstanceId;
use crate::registry::{BackendIx, Lists};

impl Hub {
    /// Applies a new config: backends no longer in it stop, new ones start, changed ones
    /// restart, and the rest keep running untouched, calls in flight included. A change
    /// only to what clients see or to the request policy (`tools`, `descriptions`,
    /// `prefix`, timeouts, `restart`, `maxConcurrent`) is applied without a restart.
    pub(super) fn reload(&mut self, specs: Vec<BackendSpec>) {
        let mut changes: Vec<String> = Vec::new();
        for b in (0..self.backends.len()).map(BackendIx) {
            let gone = self.backends[b].state != State::Removed
                && !specs.iter().any(|s| s.name == self.backends[b].spec.name);
            if gone {
                changes.push(format!("removed '{}'", self.backends[b].spec.name));
                self.retire(b, "was removed from the config");
            }
        }
        let mut restarted = Vec::new();
        for (position, spec) in specs.into_iter().enumerate() {
            let slot = self.backends.iter().position(|b| b.spec.name == spec.name);
            let Some(b) = slot.map(BackendIx) else {
                changes.push(format!("added '{}'", spec.name));
                self.backends.push(Backend::new(spec, position));
                restarted.push(BackendIx(self.backends.len() - 1));
                continue;
            };
            let backend = &mut self.backends[b];
            backend.position = position;
            if backend.state == State::Removed {
                changes.push(format!("added '{}'", spec.name));
            } else if backend.spec == spec && matches!(backend.state, State::Failed(_)) {
                // A reload is the moment to try a backend that failed for good again.
                changes.push(format!("trying '{}' again", spec.name));
            } else if backend.spec == spec {
                continue;
            } else if !needs_restart(&backend.spec, &spec) {
                changes.push(format!("updated '{}'", spec.name));
                let direct = spec.policy.max_concurrent.is_none();
                backend.spec = spec;
                // With a concurrency limit, answers go through the hub, which sends what
                // waits in line when a slot frees.
                for inst in self.instances.values().filter(|i| i.backend == b) {
                    inst.order.set_direct(direct);
                }
                continue;
            } else {
                changes.push(format!("restarting '{}' (changed)", spec.name));
                self.retire(b, "was restarted with a changed config");
            }
            // A fresh start in the same slot; the restart count goes on (it is a counter).
            let restarts = self.backends[b].restarts;
            self.backends[b] = Backend {
                restarts,
                ..Backend::new(spec, position)
            };
            restarted.push(b);
        }
        if changes.is_empty() {
            console!("config reloaded: no backend changed");
            return;
        }
        console!("config reloaded: {}", changes.join(", "));
        for b in restarted {
            self.start_backend(b);
        }
        self.rebuild_registry();
    }

    /// Takes backend `b` out of service: its instances stop and whatever is pending on
    /// them is answered with `reason`.
    pub(super) fn retire(&mut self, b: BackendIx, reason: &str) {
        let backend = &mut self.backends[b];
        backend.state = State::Removed;
        backend.source = None;
        backend.lists = Lists::default();
        let ids: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(_, i)| i.backend == b)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.end_instance(id, Some(reason.to_string()));
        }
    }
}

/// Whether a changed backend entry needs a new process: anything about how it is started
/// or reached does; what clients see and the request policy are read per request.
pub(super) fn needs_restart(old: &BackendSpec, new: &BackendSpec) -> bool {
    old.transport != new.transport
        || old.scope != new.scope
        || old.policy.max_message != new.policy.max_message
}
