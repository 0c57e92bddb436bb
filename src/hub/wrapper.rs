//! Backends started with npx run without npm from their second start on (`npm.rs`): when
//! an instance started through npm is up, the program npm ran is read and kept, and the
//! backend's later instances (after an idle stop, a restart, or for each session) run it
//! directly. Should that program be gone or fail to come up, npm is used again.

use super::{BackendIx, Hub, InstanceId};
use crate::config::{BackendSpec, Transport};
use log::{info, warn};

impl Hub {
    /// Whether backend `b`'s instances may run without npm.
    fn unwrapped(&self, b: BackendIx) -> bool {
        let spec = &self.backends[b].spec;
        !spec.keep_wrapper.unwrap_or(self.opts.keep_wrapper)
            && matches!(&spec.transport, Transport::Stdio(l) if crate::npm::is_wrapper(l))
    }

    /// What backend `b`'s next instance runs when that is the program npm ran for an
    /// earlier one (and it is still there); `None`: its entry.
    pub(super) fn direct_spec(&mut self, b: BackendIx) -> Option<BackendSpec> {
        let backend = &mut self.backends[b];
        let direct = backend.direct.as_ref()?;
        if crate::npm::still_there(direct) {
            let mut spec = backend.spec.clone();
            spec.transport = Transport::Stdio(direct.clone());
            return Some(spec);
        }
        warn!(
            "backend '{}': '{}' (what npm ran) is gone; starting it through npm again",
            backend.spec.name,
            direct.args.first().unwrap_or(&direct.command)
        );
        backend.direct = None;
        None
    }

    /// An instance is up: when npm started it, the program npm ran is kept for the next.
    pub(super) fn learn_program(&mut self, instance: InstanceId) {
        let Some(inst) = self.instances.get(&instance) else {
            return;
        };
        let b = inst.backend;
        if inst.direct || self.backends[b].direct.is_some() || !self.unwrapped(b) {
            return;
        }
        let (Some(pid), Transport::Stdio(launch)) = (
            inst.conn.as_ref().and_then(|c| c.pid),
            &self.backends[b].spec.transport,
        ) else {
            return;
        };
        match crate::npm::program_under(launch, pid) {
            Some(direct) => {
                info!(
                    "backend '{}': npm runs '{}'; its next starts run that directly (\"keepWrapper\": true keeps npm)",
                    self.backends[b].spec.name,
                    direct.args.first().unwrap_or(&direct.command)
                );
                self.backends[b].direct = Some(direct);
            }
            None => info!(
                "backend '{}': which program npm runs could not be told; npm stays",
                self.backends[b].spec.name
            ),
        }
    }

    /// An instance ended: one that ran npm's program directly and never came up sends
    /// the next start through npm again.
    pub(super) fn forget_program(&mut self, b: BackendIx, direct: bool, came_up: bool) {
        if direct && !came_up && self.backends[b].direct.take().is_some() {
            warn!(
                "backend '{}': what npm ran did not come up by itself; starting it through npm again",
                self.backends[b].spec.name
            );
        }
    }
}
