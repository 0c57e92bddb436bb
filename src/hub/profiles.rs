//! Profiles: a session opened at a profile's endpoint sees the catalogue through it. Each
//! profile's view (the items it shows of each kind, its own descriptions put in) is built
//! again whenever the registry is; lists are paged from it, calls, reads and completions
//! of what it does not show are refused as unknown, and a list change reaches only the
//! sessions whose view changed. Sessions without a profile see the whole catalogue.

use super::Hub;
use crate::config::profiles::Profile;
use crate::contract::SessionId;
use crate::jsonrpc;
use crate::registry::{BackendIx, Kind, Registry};
use log::info;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// A profile's view of the catalogue.
#[derive(Default)]
pub(super) struct ProfileView {
    /// Each kind's items as the profile's sessions get them.
    items: [Vec<Box<RawValue>>; 4],
    /// Each kind's exposed names (URIs, URI templates) in it: what its sessions may reach.
    names: [HashSet<String>; 4],
    /// In catalogue mode, the tools its three listed ones search, describe and call.
    catalogue: Vec<Box<RawValue>>,
}

fn filter(p: &Profile, kind: Kind) -> &crate::config::View {
    match kind {
        Kind::Tools => &p.tools,
        Kind::Prompts => &p.prompts,
        Kind::Resources | Kind::Templates => &p.resources,
    }
}

impl Hub {
    /// Every profile's view of the registry as it is now.
    pub(super) fn build_views(&self) -> Vec<ProfileView> {
        self.opts.profiles.iter().map(|p| self.view_of(p)).collect()
    }

    fn view_of(&self, p: &Profile) -> ProfileView {
        let mut view = ProfileView::default();
        for kind in Kind::ALL {
            let catalog = self.registry.catalog(kind);
            for (entry, item) in catalog.entries().iter().zip(catalog.items()) {
                let backend = &self.backends[entry.backend.0].spec;
                if !p.shows_backend(backend) || !filter(p, kind).shows(&entry.exposed) {
                    continue;
                }
                let item = match (kind, p.tools.description(&entry.exposed)) {
                    (Kind::Tools, Some(d)) => {
                        let mut m: Map<String, Value> =
                            serde_json::from_str(item.get()).unwrap_or_default();
                        m.insert("description".into(), Value::from(d));
                        jsonrpc::to_raw(&m)
                    }
                    _ => item.clone(),
                };
                view.items[kind.index()].push(item);
                view.names[kind.index()].insert(entry.exposed.clone());
            }
        }
        if p.catalogue {
            let listed = &mut view.items[Kind::Tools.index()];
            view.catalogue = std::mem::replace(listed, super::catalogue::tools());
        }
        view
    }

    /// The tools a catalogue profile's sessions search, describe and call.
    pub(super) fn profile_tools(&self, p: usize) -> &[Box<RawValue>] {
        &self.views[p].catalogue
    }

    /// The tools each profile's sessions may call, for the routers.
    pub(super) fn reachable_tools(&self) -> Vec<std::sync::Arc<HashSet<String>>> {
        use super::catalogue::{CALL, DESCRIBE, SEARCH};
        self.opts
            .profiles
            .iter()
            .zip(&self.views)
            .map(|(p, v)| {
                let mut names = v.names[Kind::Tools.index()].clone();
                if p.catalogue {
                    // Its three tools are the hub's to answer, whatever a backend calls its own.
                    for own in [SEARCH, DESCRIBE, CALL] {
                        names.remove(own);
                    }
                }
                std::sync::Arc::new(names)
            })
            .collect()
    }

    /// Each profile's name, the tools it reaches, and whether it is a catalogue.
    pub(super) fn profile_counts(&self) -> Vec<(&str, usize, bool)> {
        self.opts
            .profiles
            .iter()
            .zip(&self.views)
            .map(|(p, v)| {
                (
                    p.name.as_str(),
                    v.names[Kind::Tools.index()].len(),
                    p.catalogue,
                )
            })
            .collect()
    }

    /// The session's profile, if it has one.
    pub(super) fn profile_of(&self, session: &str) -> Option<usize> {
        self.sessions.get(session).and_then(|s| s.profile)
    }

    /// The items of `kind` the session sees.
    pub(super) fn visible(&self, session: &str, kind: Kind) -> &[Box<RawValue>] {
        match self.profile_of(session) {
            Some(p) => &self.views[p].items[kind.index()],
            None => self.registry.catalog(kind).items(),
        }
    }

    /// Whether the session sees `exposed` of `kind`.
    pub(super) fn shows(&self, session: &str, kind: Kind, exposed: &str) -> bool {
        self.profile_of(session)
            .is_none_or(|p| self.views[p].names[kind.index()].contains(exposed))
    }

    /// Whether the session may reach `uri` (listed, or under a template) of backend `b`.
    pub(super) fn shows_uri(&self, session: &str, b: BackendIx, uri: &str) -> bool {
        self.profile_of(session).is_none_or(|p| {
            let profile = &self.opts.profiles[p];
            profile.shows_backend(&self.backends[b.0].spec) && profile.shows_uri(uri)
        })
    }

    /// Whether the session's profile shows backend `b` at all (its log lines, its
    /// per-session instance).
    pub(super) fn shows_backend(&self, session: &str, b: BackendIx) -> bool {
        self.profile_of(session)
            .is_none_or(|p| self.opts.profiles[p].shows_backend(&self.backends[b.0].spec))
    }

    /// After the registry changed from `old` (and the views from `old_views`): each kind's
    /// `list_changed` to the sessions whose view of it changed.
    pub(super) fn announce_changes(&mut self, old: &Registry, old_views: &[ProfileView]) {
        let same = |a: &[Box<RawValue>], b: &[Box<RawValue>]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.get() == y.get())
        };
        let mut sent: HashSet<(&'static str, Option<usize>)> = HashSet::new();
        for kind in Kind::ALL {
            let method = kind.changed_notification();
            let (a, b) = (
                old.catalog(kind).items(),
                self.registry.catalog(kind).items(),
            );
            let mut changed: Vec<Option<usize>> = Vec::new();
            if !same(a, b) {
                info!("{} changed: {} now", kind.list_method(), b.len());
                changed.push(None);
            }
            for (p, view) in self.views.iter().enumerate() {
                let before = old_views.get(p).map_or(&[][..], |v| &v.items[kind.index()]);
                if !same(before, &view.items[kind.index()]) {
                    changed.push(Some(p));
                }
            }
            changed.retain(|p| sent.insert((method, *p)));
            if changed.is_empty() {
                continue;
            }
            let targets: Vec<SessionId> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.initialized && changed.contains(&s.profile))
                .map(|(id, _)| id.clone())
                .collect();
            for session in targets {
                self.notify_session(&session, method, None);
            }
        }
    }
}
