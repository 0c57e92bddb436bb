//! The hub's requests in flight: what each gateway id stands for and what its answer
//! needs, and the table that holds them, indexed so that no lookup scans it whole.

use crate::contract::{InstanceId, SessionId, Sink};
use crate::jsonrpc::{self, ErrorObject, Id};
use crate::registry::Kind;
use serde_json::Value;
use serde_json::value::RawValue;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the audit log needs to know of a tool call.
pub(super) struct AuditCall {
    /// The client's name, from its `initialize`.
    pub(super) client: Arc<str>,
    pub(super) tool: String,
    pub(super) original: Arc<str>,
    pub(super) arguments: Option<Value>,
    /// The label of the client token the session was opened with.
    pub(super) token: Option<Arc<str>>,
    /// The profile it was opened at.
    pub(super) profile: Option<String>,
}

impl AuditCall {
    /// What the audit line of a call of `original` (exposed as `tool`) will need; its
    /// arguments only when the audit log records them.
    pub(super) fn new(
        audit: &crate::audit::Audit,
        client: Arc<str>,
        tool: String,
        original: Arc<str>,
        arguments: Option<&RawValue>,
    ) -> Box<AuditCall> {
        Box::new(AuditCall {
            client,
            tool,
            original,
            token: None,
            profile: None,
            arguments: audit
                .arguments
                .then(|| arguments.and_then(|v| serde_json::from_str(v.get()).ok()))
                .flatten(),
        })
    }
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
    /// A `tools/call` made as a task: name the new task for its client.
    TaskCreated,
    /// A request about a task: the backend's task id back to the client's.
    Task {
        exposed: String,
        original: String,
    },
}

/// What a client request's entry is made of; `Pending::client` starts its clock.
pub(super) struct ClientCall {
    pub(super) session: SessionId,
    pub(super) id: Id,
    pub(super) instance: InstanceId,
    pub(super) method: String,
    pub(super) progress: Option<Value>,
    pub(super) after: After,
    /// Its time, and how far progress may extend it.
    pub(super) timeout: Duration,
    pub(super) max_timeout: Duration,
    pub(super) what: Arc<str>,
    pub(super) audit: Option<Box<AuditCall>>,
    pub(super) sink: Option<Arc<dyn Sink>>,
    pub(super) version: &'static str,
}

impl Pending {
    /// A client request's entry, its deadline `timeout` from now, and progress extending it
    /// up to `max_timeout` (or `timeout`, if that is longer).
    pub(super) fn client(c: ClientCall) -> Pending {
        let now = Instant::now();
        Pending::Client {
            session: c.session,
            id: c.id,
            instance: c.instance,
            method: c.method,
            progress: c.progress,
            after: c.after,
            deadline: now + c.timeout,
            limit: now + c.max_timeout.max(c.timeout),
            timeout: c.timeout,
            what: c.what,
            started: now,
            audit: c.audit,
            sink: c.sink,
            version: c.version,
        }
    }
}

// Nearly every entry is a client request: boxing it to shrink the rare others would cost
// an allocation per call.
#[allow(clippy::large_enum_variant)]
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
        what: Arc<str>,
        started: Instant,
        audit: Option<Box<AuditCall>>,
        /// Where the answer goes (None: the session had ended), and the protocol version
        /// the client speaks, for what it must not be sent.
        sink: Option<Arc<dyn Sink>>,
        version: &'static str,
    },
    /// A backend's request to a client (sampling, elicitation, roots), sent on to `session`.
    ServerRequest {
        session: SessionId,
        instance: InstanceId,
        backend_id: Id,
        /// When the client was asked.
        asked: Instant,
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

impl After {
    pub(super) fn is_nothing(&self) -> bool {
        matches!(self, After::Nothing)
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

/// The id the gateway puts on a request it sends a backend (the client's own id is kept
/// in the entry and restored on the answer). Unique for the gateway's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub(super) struct GatewayId(pub(super) u64);

impl std::fmt::Display for GatewayId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl GatewayId {
    /// The id on the wire.
    pub(super) fn to_id(self) -> Id {
        Id::number(self.0)
    }

    /// The gateway id an answer carries, if it carries one.
    pub(super) fn of(id: Option<&Id>) -> Option<GatewayId> {
        id.and_then(Id::as_u64).map(GatewayId)
    }
}

/// Every request in flight, by gateway id, with the indexes the hub looks things up by:
/// the instance it waits on, the session it belongs to, and client requests' deadlines.
/// Nothing here scans all entries (a session's own few are scanned to find a client's
/// id); whoever removes an entry answers it. The indexes are plain vectors and a heap,
/// kept small in code as well as in memory: gateway ids only grow, so appending keeps
/// each vector sorted.
#[derive(Default)]
pub(super) struct PendingTable {
    entries: HashMap<GatewayId, Pending>,
    by_instance: HashMap<InstanceId, OnInstance>,
    by_session: HashMap<SessionId, Vec<GatewayId>>,
    /// Client requests' deadlines, earliest first: one position per request, put back
    /// with its new deadline when progress has moved it. Positions of answered requests
    /// are skipped when they come up, and dropped all at once when they outnumber the
    /// live ones.
    deadlines: BinaryHeap<Reverse<(Instant, GatewayId)>>,
    clients: usize,
    /// Index vectors emptied, kept for the next session or instance that needs one: a
    /// session with one call at a time would otherwise allocate one per call.
    spare: Vec<Vec<GatewayId>>,
}

/// How many emptied index vectors are kept, and the largest kept (a large one is freed).
const SPARE: usize = 64;
const SPARE_CAPACITY: usize = 16;

/// Keeps an emptied index vector for reuse, when there is room and it is small.
fn recycle(spare: &mut Vec<Vec<GatewayId>>, ids: Vec<GatewayId>) {
    if spare.len() < SPARE && ids.capacity() <= SPARE_CAPACITY {
        spare.push(ids);
    }
}

#[derive(Default)]
struct OnInstance {
    ids: Vec<GatewayId>,
    clients: usize,
}

/// Takes `gid` out of a sorted vector.
fn unlist(ids: &mut Vec<GatewayId>, gid: GatewayId) {
    if let Ok(i) = ids.binary_search(&gid) {
        ids.remove(i);
    }
}

impl PendingTable {
    /// Registers `gid`, newer than every id registered before. A client request whose
    /// (session, id) is already in flight must be refused before (see `client`).
    pub(super) fn insert(&mut self, gid: GatewayId, entry: Pending) {
        let spare = &mut self.spare;
        let on = self
            .by_instance
            .entry(entry.instance())
            .or_insert_with(|| OnInstance {
                ids: spare.pop().unwrap_or_default(),
                clients: 0,
            });
        on.ids.push(gid);
        if let Some(session) = entry.session() {
            match self.by_session.get_mut(session) {
                Some(ids) => ids.push(gid),
                None => {
                    let mut ids = self.spare.pop().unwrap_or_default();
                    ids.push(gid);
                    self.by_session.insert(session.clone(), ids);
                }
            }
        }
        if let Pending::Client { deadline, .. } = &entry {
            on.clients += 1;
            self.clients += 1;
            self.deadlines.push(Reverse((*deadline, gid)));
        }
        if let Some(old) = self.entries.insert(gid, entry) {
            // Gateway ids are never reused; keep the indexes true even so.
            self.unindex(gid, &old);
        }
    }

    /// Takes `gid` out: the caller answers it.
    pub(super) fn remove(&mut self, gid: GatewayId) -> Option<Pending> {
        let entry = self.entries.remove(&gid)?;
        self.unindex(gid, &entry);
        Some(entry)
    }

    fn unindex(&mut self, gid: GatewayId, entry: &Pending) {
        let instance = entry.instance();
        if let Some(on) = self.by_instance.get_mut(&instance) {
            unlist(&mut on.ids, gid);
            if matches!(entry, Pending::Client { .. }) {
                on.clients -= 1;
            }
            if on.ids.is_empty()
                && let Some(on) = self.by_instance.remove(&instance)
            {
                recycle(&mut self.spare, on.ids);
            }
        }
        if let Some(session) = entry.session()
            && let Some(ids) = self.by_session.get_mut(session)
        {
            unlist(ids, gid);
            if ids.is_empty()
                && let Some(ids) = self.by_session.remove(session)
            {
                recycle(&mut self.spare, ids);
            }
        }
        if matches!(entry, Pending::Client { .. }) {
            self.clients -= 1;
            if self.deadlines.len() > 2 * self.clients + 64 {
                self.rebuild_deadlines();
            }
        }
    }

    fn rebuild_deadlines(&mut self) {
        self.deadlines = self
            .entries
            .iter()
            .filter_map(|(gid, p)| match p {
                Pending::Client { deadline, .. } => Some(Reverse((*deadline, *gid))),
                _ => None,
            })
            .collect();
    }

    pub(super) fn get(&self, gid: GatewayId) -> Option<&Pending> {
        self.entries.get(&gid)
    }

    /// Moves a client request's deadline later (progress extends it; never earlier).
    pub(super) fn set_deadline(&mut self, gid: GatewayId, to: Instant) {
        if let Some(Pending::Client { deadline, .. }) = self.entries.get_mut(&gid) {
            *deadline = (*deadline).max(to);
        }
    }

    /// The gateway id of `session`'s request `id`, if it is in flight.
    pub(super) fn client(&self, session: &str, id: &Id) -> Option<GatewayId> {
        self.session_client(session, |mine| mine == id)
    }

    /// The one check that a client's request id is not in flight in its session already,
    /// with the error it gets when it is.
    pub(super) fn check_new(&self, session: &str, id: &Id) -> Result<(), ErrorObject> {
        match self.client(session, id) {
            Some(_) => Err(jsonrpc::id_in_flight(id)),
            None => Ok(()),
        }
    }

    /// The gateway id of `session`'s request whose id is the JSON value `target` (as a
    /// `notifications/cancelled` names it).
    pub(super) fn client_matching(&self, session: &str, target: &Value) -> Option<GatewayId> {
        self.session_client(session, |mine| mine.matches(target))
    }

    fn session_client(&self, session: &str, is: impl Fn(&Id) -> bool) -> Option<GatewayId> {
        self.by_session
            .get(session)?
            .iter()
            .copied()
            .find(|gid| matches!(self.entries.get(gid), Some(Pending::Client { id, .. }) if is(id)))
    }

    /// The entries waiting on `instance`, oldest first.
    pub(super) fn on_instance(
        &self,
        instance: InstanceId,
    ) -> impl Iterator<Item = (GatewayId, &Pending)> {
        self.by_instance
            .get(&instance)
            .into_iter()
            .flat_map(|on| on.ids.iter())
            .filter_map(|gid| self.entries.get(gid).map(|p| (*gid, p)))
    }

    /// The gateway ids waiting on `instance`, oldest first.
    pub(super) fn ids_on_instance(&self, instance: InstanceId) -> Vec<GatewayId> {
        self.by_instance
            .get(&instance)
            .map(|on| on.ids.clone())
            .unwrap_or_default()
    }

    /// Whether anything waits on `instance`.
    pub(super) fn waits_on(&self, instance: InstanceId) -> bool {
        self.by_instance.contains_key(&instance)
    }

    /// Client requests waiting on `instance`.
    pub(super) fn clients_on(&self, instance: InstanceId) -> usize {
        self.by_instance.get(&instance).map_or(0, |on| on.clients)
    }

    /// The gateway ids of `session`'s requests and of requests sent to it, oldest first.
    pub(super) fn of_session(&self, session: &str) -> Vec<GatewayId> {
        self.by_session.get(session).cloned().unwrap_or_default()
    }

    /// Client requests whose deadline is at or before `now`, earliest first, each once
    /// (the caller removes and answers them).
    pub(super) fn due(&mut self, now: Instant) -> Vec<GatewayId> {
        let mut due = Vec::new();
        while let Some(&Reverse((at, gid))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            match self.entries.get(&gid) {
                Some(Pending::Client { deadline, .. }) if *deadline <= now => due.push(gid),
                // Progress moved it on: back in line at its new deadline.
                Some(Pending::Client { deadline, .. }) => {
                    self.deadlines.push(Reverse((*deadline, gid)));
                }
                _ => {}
            }
        }
        due
    }

    /// Client requests in flight.
    pub(super) fn clients(&self) -> usize {
        self.clients
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every entry, taken out (at shutdown).
    pub(super) fn drain(&mut self) -> Vec<(GatewayId, Pending)> {
        self.by_instance.clear();
        self.by_session.clear();
        self.deadlines.clear();
        self.clients = 0;
        self.entries.drain().collect()
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
            what: Arc::from("tools/call 'x'"),
            started: deadline,
            audit: None,
            sink: None,
            version: "2025-11-25",
        }
    }

    /// Every index agrees with the entries.
    fn consistent(t: &PendingTable) {
        let mut on_instances = 0;
        for (instance, on) in &t.by_instance {
            assert!(!on.ids.is_empty());
            assert!(on.ids.windows(2).all(|w| w[0] < w[1]), "sorted");
            let mut clients = 0;
            for gid in &on.ids {
                assert_eq!(t.entries[gid].instance(), *instance);
                clients += usize::from(matches!(t.entries[gid], Pending::Client { .. }));
                on_instances += 1;
            }
            assert_eq!(on.clients, clients);
        }
        assert_eq!(on_instances, t.entries.len());
        let clients = t
            .entries
            .values()
            .filter(|p| matches!(p, Pending::Client { .. }))
            .count();
        assert_eq!(t.clients, clients);
        for ids in t.by_session.values() {
            assert!(!ids.is_empty());
        }
    }

    fn g(n: u64) -> GatewayId {
        GatewayId(n)
    }

    fn gs(ns: &[u64]) -> Vec<GatewayId> {
        ns.iter().copied().map(GatewayId).collect()
    }

    #[test]
    fn indexes_follow_every_insert_and_removal() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let mut t = PendingTable::default();
        t.insert(g(1), client("a", 7, InstanceId(10), now + s(5)));
        t.insert(g(2), client("b", 7, InstanceId(10), now + s(1)));
        t.insert(g(3), client("a", 8, InstanceId(11), now + s(3)));
        t.insert(
            g(4),
            Pending::Ping {
                instance: InstanceId(10),
            },
        );
        t.insert(
            g(5),
            Pending::ServerRequest {
                session: "a".into(),
                instance: InstanceId(11),
                backend_id: Id::number(0),
                asked: Instant::now(),
            },
        );
        consistent(&t);
        assert_eq!((t.len(), t.clients()), (5, 3));
        assert_eq!(t.client("a", &Id::number(7)), Some(g(1)));
        assert_eq!(t.client("b", &Id::number(7)), Some(g(2)));
        assert_eq!(t.client("b", &Id::number(8)), None);
        assert_eq!(t.client_matching("a", &serde_json::json!(8)), Some(g(3)));
        assert_eq!(t.ids_on_instance(InstanceId(10)), gs(&[1, 2, 4]));
        assert_eq!(
            (
                t.clients_on(InstanceId(10)),
                t.clients_on(InstanceId(11)),
                t.clients_on(InstanceId(12))
            ),
            (2, 1, 0)
        );
        assert_eq!(t.of_session("a"), gs(&[1, 3, 5]));
        // Progress moves a deadline on (never back); what is due is taken once.
        t.set_deadline(g(2), now + s(9));
        t.set_deadline(g(1), now);
        assert_eq!(t.due(now + s(3)), gs(&[3]));
        assert_eq!(t.due(now + s(3)), gs(&[]));
        assert!(
            matches!(t.remove(g(3)), Some(Pending::Client { .. })),
            "the caller answers it"
        );
        assert_eq!(t.due(now + s(5)), gs(&[1]));
        assert_eq!(t.due(now + s(9)), gs(&[2]), "each once");
        consistent(&t);
        assert!(matches!(t.remove(g(1)), Some(Pending::Client { .. })));
        assert!(t.remove(g(1)).is_none(), "removed once, answered once");
        assert_eq!(t.client("a", &Id::number(7)), None);
        assert_eq!(t.ids_on_instance(InstanceId(10)), gs(&[2, 4]));
        consistent(&t);
        // Answered requests do not pile up in the deadline heap.
        for gid in 100..1100 {
            t.insert(g(gid), client("c", gid, InstanceId(12), now + s(60)));
            t.remove(g(gid));
        }
        assert!(
            t.deadlines.len() <= 2 * t.clients() + 64,
            "{}",
            t.deadlines.len()
        );
        consistent(&t);
        let all = t.drain();
        assert_eq!(all.len(), 3);
        consistent(&t);
        assert_eq!((t.len(), t.clients()), (0, 0));
        assert!(t.by_instance.is_empty() && t.by_session.is_empty());
        assert!(t.deadlines.is_empty());
    }

    #[test]
    fn emptied_index_vectors_are_reused_within_their_bounds() {
        let now = Instant::now();
        let mut t = PendingTable::default();
        // A session at a time, one call each: the vectors come back for the next.
        for n in 0..1000u64 {
            let session = format!("s{n}");
            t.insert(g(n), client(&session, n, InstanceId(1), now));
            t.remove(g(n));
            assert!(t.spare.len() <= 2, "{}", t.spare.len());
        }
        // Many sessions at once: at most SPARE kept afterwards, none large.
        for n in 0..200u64 {
            t.insert(g(2000 + n), client(&format!("m{n}"), n, InstanceId(n), now));
        }
        for n in 0..200u64 {
            t.remove(g(2000 + n));
        }
        consistent(&t);
        assert!(t.by_instance.is_empty() && t.by_session.is_empty());
        assert_eq!(t.spare.len(), SPARE);
        assert!(
            t.spare
                .iter()
                .all(|v| v.is_empty() && v.capacity() <= SPARE_CAPACITY)
        );
    }
}
