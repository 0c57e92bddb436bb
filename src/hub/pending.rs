//! The hub's requests in flight: what each gateway id stands for and what its answer
//! needs, and the table that holds them, indexed so that no lookup scans it whole.

use super::*;
use std::collections::BTreeSet;

/// What the audit log needs to know of a tool call.
pub(super) struct AuditCall {
    pub(super) tool: String,
    pub(super) original: String,
    pub(super) arguments: Option<Value>,
}

/// What to do with a routed request's answer besides passing it on.
pub(super) enum After {
    Nothing,
    /// A `resources/read` whose URI was rewritten: put the exposed URI back in the result.
    MapUri {
        original: String,
        exposed: String,
    },
    /// A `resources/subscribe`: on error, forget the subscription.
    Subscribed {
        uri: String,
    },
}

pub(super) enum Pending {
    /// A client's request, routed to a backend.
    Client {
        session: SessionId,
        id: Id,
        instance: InstanceId,
        method: String,
        /// The client's own progress token; the backend got the gateway id instead.
        progress: Option<Value>,
        after: After,
        /// When the client gets a timeout error instead; progress moves it on, up to
        /// `limit`.
        deadline: Instant,
        limit: Instant,
        timeout: Duration,
        /// What it asked for, for the timeout message (`tools/call 'x'`).
        what: String,
        started: Instant,
        audit: Option<Box<AuditCall>>,
    },
    /// A backend's request to a client (sampling, elicitation, roots), sent on to `session`.
    ServerRequest {
        session: SessionId,
        instance: InstanceId,
        backend_id: Id,
    },
    Initialize {
        instance: InstanceId,
    },
    List {
        instance: InstanceId,
        kind: Kind,
    },
    /// The gateway's own request whose answer only gets logged (setLevel, unsubscribe).
    Ignore {
        instance: InstanceId,
    },
    /// A health check.
    Ping {
        instance: InstanceId,
    },
}

impl Pending {
    pub(super) fn instance(&self) -> InstanceId {
        match self {
            Pending::Client { instance, .. }
            | Pending::ServerRequest { instance, .. }
            | Pending::Initialize { instance }
            | Pending::List { instance, .. }
            | Pending::Ignore { instance }
            | Pending::Ping { instance } => *instance,
        }
    }
}

impl Pending {
    /// The session a client request came from, or a server request went to.
    fn session(&self) -> Option<&SessionId> {
        match self {
            Pending::Client { session, .. } | Pending::ServerRequest { session, .. } => {
                Some(session)
            }
            _ => None,
        }
    }
}

/// Every request in flight, by gateway id, with the indexes the hub looks things up by:
/// the instance it waits on, the session it belongs to, a client request's own id, and
/// its deadline. Nothing here scans all entries; whoever removes an entry answers it.
#[derive(Default)]
pub(super) struct PendingTable {
    entries: HashMap<u64, Pending>,
    by_instance: HashMap<InstanceId, BTreeSet<u64>>,
    by_session: HashMap<SessionId, BTreeSet<u64>>,
    /// Client requests by (session, the client's id as written).
    by_client_id: HashMap<(SessionId, String), u64>,
    /// Client requests by deadline, earliest first.
    deadlines: BTreeSet<(Instant, u64)>,
    clients: usize,
    clients_by_instance: HashMap<InstanceId, usize>,
}

impl PendingTable {
    /// Registers `gid`. A client request whose (session, id) is already in flight must be
    /// refused before (see `client`).
    pub(super) fn insert(&mut self, gid: u64, entry: Pending) {
        let instance = entry.instance();
        self.by_instance.entry(instance).or_default().insert(gid);
        if let Some(session) = entry.session() {
            self.by_session
                .entry(session.clone())
                .or_default()
                .insert(gid);
        }
        if let Pending::Client {
            session,
            id,
            deadline,
            ..
        } = &entry
        {
            self.by_client_id
                .insert((session.clone(), id.to_string()), gid);
            self.deadlines.insert((*deadline, gid));
            self.clients += 1;
            *self.clients_by_instance.entry(instance).or_default() += 1;
        }
        if let Some(old) = self.entries.insert(gid, entry) {
            // Gateway ids are never reused; keep the indexes true even so.
            self.unindex(gid, &old);
        }
    }

    /// Takes `gid` out: the caller answers it.
    pub(super) fn remove(&mut self, gid: u64) -> Option<Pending> {
        let entry = self.entries.remove(&gid)?;
        self.unindex(gid, &entry);
        Some(entry)
    }

    fn unindex(&mut self, gid: u64, entry: &Pending) {
        let instance = entry.instance();
        if let Some(set) = self.by_instance.get_mut(&instance) {
            set.remove(&gid);
            if set.is_empty() {
                self.by_instance.remove(&instance);
            }
        }
        if let Some(session) = entry.session()
            && let Some(set) = self.by_session.get_mut(session)
        {
            set.remove(&gid);
            if set.is_empty() {
                self.by_session.remove(session);
            }
        }
        if let Pending::Client {
            session,
            id,
            deadline,
            ..
        } = entry
        {
            let key = (session.clone(), id.to_string());
            if self.by_client_id.get(&key) == Some(&gid) {
                self.by_client_id.remove(&key);
            }
            self.deadlines.remove(&(*deadline, gid));
            self.clients -= 1;
            if let Some(n) = self.clients_by_instance.get_mut(&instance) {
                *n -= 1;
                if *n == 0 {
                    self.clients_by_instance.remove(&instance);
                }
            }
        }
    }

    pub(super) fn get(&self, gid: u64) -> Option<&Pending> {
        self.entries.get(&gid)
    }

    /// Moves a client request's deadline (progress extends it).
    pub(super) fn set_deadline(&mut self, gid: u64, to: Instant) {
        if let Some(Pending::Client { deadline, .. }) = self.entries.get_mut(&gid) {
            self.deadlines.remove(&(*deadline, gid));
            *deadline = to;
            self.deadlines.insert((to, gid));
        }
    }

    /// The gateway id of `session`'s request `id`, if it is in flight.
    pub(super) fn client(&self, session: &str, id: &Id) -> Option<u64> {
        self.by_client_id
            .get(&(session.to_string(), id.to_string()))
            .copied()
    }

    /// The gateway id of `session`'s request whose id is the JSON value `target` (as a
    /// `notifications/cancelled` names it).
    pub(super) fn client_matching(&self, session: &str, target: &Value) -> Option<u64> {
        if let Some(&gid) = self
            .by_client_id
            .get(&(session.to_string(), target.to_string()))
        {
            return Some(gid);
        }
        // Written differently (spacing, escapes): compare values, within the session only.
        self.of_session(session).into_iter().find(|gid| {
            matches!(self.entries.get(gid), Some(Pending::Client { id, .. }) if id.matches(target))
        })
    }

    /// The entries waiting on `instance`, oldest first.
    pub(super) fn on_instance(
        &self,
        instance: InstanceId,
    ) -> impl Iterator<Item = (u64, &Pending)> {
        self.by_instance
            .get(&instance)
            .into_iter()
            .flatten()
            .filter_map(|gid| self.entries.get(gid).map(|p| (*gid, p)))
    }

    /// The gateway ids waiting on `instance`, oldest first.
    pub(super) fn ids_on_instance(&self, instance: InstanceId) -> Vec<u64> {
        self.by_instance
            .get(&instance)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether anything waits on `instance`.
    pub(super) fn waits_on(&self, instance: InstanceId) -> bool {
        self.by_instance.contains_key(&instance)
    }

    /// Client requests waiting on `instance`.
    pub(super) fn clients_on(&self, instance: InstanceId) -> usize {
        self.clients_by_instance
            .get(&instance)
            .copied()
            .unwrap_or(0)
    }

    /// The gateway ids of `session`'s requests and of requests sent to it, oldest first.
    pub(super) fn of_session(&self, session: &str) -> Vec<u64> {
        self.by_session
            .get(session)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Client requests whose deadline is at or before `now`, earliest first.
    pub(super) fn due(&self, now: Instant) -> Vec<u64> {
        self.deadlines
            .iter()
            .take_while(|(d, _)| *d <= now)
            .map(|(_, gid)| *gid)
            .collect()
    }

    /// Client requests in flight.
    pub(super) fn clients(&self) -> usize {
        self.clients
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry, taken out (at shutdown).
    pub(super) fn drain(&mut self) -> Vec<(u64, Pending)> {
        let all: Vec<u64> = self.entries.keys().copied().collect();
        all.into_iter()
            .filter_map(|gid| self.remove(gid).map(|p| (gid, p)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(session: &str, id: u64, instance: InstanceId, deadline: Instant) -> Pending {
        Pending::Client {
            session: session.into(),
            id: Id::number(id),
            instance,
            method: "tools/call".into(),
            progress: None,
            after: After::Nothing,
            deadline,
            limit: deadline,
            timeout: Duration::from_secs(1),
            what: "tools/call 'x'".into(),
            started: deadline,
            audit: None,
        }
    }

    /// Every index agrees with the entries.
    fn consistent(t: &PendingTable) {
        let mut on_instances = 0;
        for (instance, set) in &t.by_instance {
            assert!(!set.is_empty());
            for gid in set {
                assert_eq!(t.entries[gid].instance(), *instance);
                on_instances += 1;
            }
        }
        assert_eq!(on_instances, t.entries.len());
        let clients = t
            .entries
            .values()
            .filter(|p| matches!(p, Pending::Client { .. }))
            .count();
        assert_eq!(t.clients, clients);
        assert_eq!(t.deadlines.len(), clients);
        assert_eq!(t.by_client_id.len(), clients);
        assert_eq!(t.clients_by_instance.values().sum::<usize>(), clients);
        for set in t.by_session.values() {
            assert!(!set.is_empty());
        }
    }

    #[test]
    fn indexes_follow_every_insert_and_removal() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let mut t = PendingTable::default();
        t.insert(1, client("a", 7, 10, now + s(5)));
        t.insert(2, client("b", 7, 10, now + s(1)));
        t.insert(3, client("a", 8, 11, now + s(3)));
        t.insert(4, Pending::Ping { instance: 10 });
        t.insert(
            5,
            Pending::ServerRequest {
                session: "a".into(),
                instance: 11,
                backend_id: Id::number(0),
            },
        );
        consistent(&t);
        assert_eq!((t.len(), t.clients()), (5, 3));
        assert_eq!(t.client("a", &Id::number(7)), Some(1));
        assert_eq!(t.client("b", &Id::number(7)), Some(2));
        assert_eq!(t.client("b", &Id::number(8)), None);
        assert_eq!(t.client_matching("a", &serde_json::json!(8)), Some(3));
        assert_eq!(t.ids_on_instance(10), [1, 2, 4]);
        assert_eq!(
            (t.clients_on(10), t.clients_on(11), t.clients_on(12)),
            (2, 1, 0)
        );
        assert_eq!(t.of_session("a"), [1, 3, 5]);
        assert_eq!(t.due(now + s(3)), [2, 3]);
        // Progress moves a deadline on.
        t.set_deadline(2, now + s(9));
        assert_eq!(t.due(now + s(5)), [3, 1]);
        consistent(&t);
        assert!(matches!(t.remove(1), Some(Pending::Client { .. })));
        assert!(t.remove(1).is_none(), "removed once, answered once");
        assert_eq!(t.client("a", &Id::number(7)), None);
        assert_eq!(t.ids_on_instance(10), [2, 4]);
        consistent(&t);
        let all = t.drain();
        assert_eq!(all.len(), 4);
        consistent(&t);
        assert_eq!((t.len(), t.clients()), (0, 0));
        assert!(t.by_instance.is_empty() && t.by_session.is_empty());
    }
}
