//! Supervision: starting a backend's instances, their handshake (initialize, then the
//! first lists), health pings, failures, restarts with backoff, and per-session instances.

use super::demand;
use super::pending::Pending;
use super::replies::{Direct, ToHub};
use super::unavailable::Unavailable;
use super::{Caps, FIRST_BACKOFF, Hub, Instance, MAX_BACKOFF, Owner, STABLE, State};
use crate::config::Scope;
use crate::contract::{InstanceId, Order, PROTOCOL_VERSIONS, SessionId};
use crate::jsonrpc::{self, ErrorObject, INTERNAL_ERROR, Message, Notification, Request, Response};
use crate::registry::{BackendIx, Kind, Lists};
use log::{info, warn};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::time::Instant;

impl Hub {
    /// Starts backend `b`'s shared instance (or its probe); an on-demand backend whose
    /// lists the catalogue cache holds sleeps instead (`demand.rs`).
    pub(super) fn start_backend(&mut self, b: BackendIx) {
        if self.on_demand(b) && self.sleep_from_cache(b) {
            return;
        }
        match self.start_instance(b, None) {
            Ok(id) => self.backends[b].source = Some(id),
            Err(
                e @ Unavailable::CannotStart {
                    permanent: true, ..
                },
            ) => self.fail_for_good(b, e.into_reason()),
            // A program that cannot be started now may be installed later.
            Err(e) if self.backends[b].spec.policy.restart => {
                self.schedule_restart(b, e.into_reason())
            }
            Err(e) => self.backend_failed(b, e.into_reason()),
        }
    }

    /// Starts a process for backend `b` and sends it `initialize`.
    pub(super) fn start_instance(
        &mut self,
        b: BackendIx,
        owner: Option<Owner>,
    ) -> Result<InstanceId, Unavailable> {
        let id = InstanceId(self.replies.alloc_id());
        let unlimited = self.backends[b].spec.policy.max_concurrent.is_none();
        let name = self.backends[b].spec.name.clone();
        let order = Order::new(unlimited);
        let inbox = ToHub {
            hub: self.events_tx.clone(),
            instance: id,
            direct: Direct {
                replies: self.replies.clone(),
                order: order.clone(),
                instance: id,
                backend: name.clone(),
            },
        };
        let inbox = std::sync::Arc::new(inbox);
        let direct = self.direct_spec(b);
        let spec = direct.as_ref().unwrap_or(&self.backends[b].spec);
        let conn = match (self.opts.spawner)(spec, inbox.clone()) {
            Ok(conn) => conn,
            Err(e) if direct.is_some() => {
                self.forget_program(b, true, false);
                warn!("backend '{name}': {e}");
                (self.opts.spawner)(&self.backends[b].spec, inbox)
                    .map_err(|e| Unavailable::cannot_start(&name, e))?
            }
            Err(e) => return Err(Unavailable::cannot_start(&name, e)),
        };
        let direct = direct.is_some() && self.backends[b].direct.is_some();
        let now = Instant::now();
        self.instances.insert(
            id,
            Instance {
                backend: b,
                owner: owner.clone(),
                conn: Some(conn),
                ready: false,
                caps: Caps::default(),
                init_deadline: Some(now + self.opts.init_timeout),
                listing: Default::default(),
                pages: [0; 4],
                queued: Default::default(),
                last_used: now,
                log_level: None,
                last_heard: now,
                ping_deadline: None,
                order,
                alive: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
                direct,
            },
        );
        if let Some(o) = &owner {
            info!("backend '{name}': started an instance for {o}");
        }
        let params = json!({
            "protocolVersion": PROTOCOL_VERSIONS[0],
            // Everything the gateway can route back to a client.
            "capabilities": {"roots": {"listChanged": true}, "sampling": {}, "elicitation": {"form": {}, "url": {}}},
            "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        });
        self.request_instance(
            id,
            "initialize",
            Some(params),
            Pending::Initialize { instance: id },
        );
        Ok(id)
    }

    /// Sends a gateway-originated request to an instance.
    pub(super) fn request_instance(
        &mut self,
        instance: InstanceId,
        method: &str,
        params: Option<Value>,
        why: Pending,
    ) {
        let gid = self.alloc_id();
        let request = Request {
            id: gid.to_id(),
            method: method.to_string(),
            params: params.map(|p| jsonrpc::to_raw(&p)),
        };
        self.pending().insert(gid, why);
        if !self.send_instance(instance, Message::Request(request)) {
            self.instance_failed(instance, "its stdin is closed".into());
        }
    }

    pub(super) fn send_instance(&self, instance: InstanceId, msg: Message) -> bool {
        self.instances
            .get(&instance)
            .and_then(|i| i.conn.as_ref())
            .is_some_and(|c| c.send(msg))
    }

    pub(super) fn notify_instance(
        &self,
        instance: InstanceId,
        method: &str,
        params: Option<Value>,
    ) {
        let n = Notification {
            method: method.into(),
            params: params.map(|p| jsonrpc::to_raw(&p)),
        };
        self.send_instance(instance, Message::Notification(n));
    }

    /// The instance that serves backend `b` for `session`, starting a per-session one if
    /// needed. It may still be initializing: requests to it wait in its queue.
    pub(super) fn instance_for(
        &mut self,
        b: BackendIx,
        session: &str,
    ) -> Result<InstanceId, Unavailable> {
        let backend = &self.backends[b];
        if backend.state == State::Removed {
            return Err(Unavailable::Removed {
                backend: backend.spec.name.clone(),
            });
        }
        if let State::Failed(reason) = &backend.state {
            let reason = reason.clone();
            // A request may try a backend that failed for good once more (now and then).
            if let Some(id) = self.retry_for_request(b) {
                return Ok(id);
            }
            return Err(Unavailable::Failed {
                backend: self.backends[b].spec.name.clone(),
                reason,
            });
        }
        let backend = &self.backends[b];
        if backend.state == State::Sleeping && backend.spec.scope == Scope::Shared {
            return self.wake(b);
        }
        if let (State::Restarting { reason, at }, None) = (&backend.state, backend.source) {
            return Err(Unavailable::Restarting {
                backend: backend.spec.name.clone(),
                reason: reason.clone(),
                next: at.saturating_duration_since(Instant::now()),
            });
        }
        match backend.spec.scope {
            Scope::Shared => backend.source.ok_or_else(|| Unavailable::NotRunning {
                backend: backend.spec.name.clone(),
            }),
            Scope::Session { .. } => {
                // A 2026-07-28 request's session lasts one request: the instance is its
                // client's, kept across its requests until idle.
                let key = self
                    .sessions
                    .get(session)
                    .and_then(|s| s.client_key(&self.opts.profiles));
                if let Some(key) = key {
                    if let Some(&id) = self.keyed.get(&(b, key.clone())) {
                        return Ok(id);
                    }
                    let id = self.start_instance(b, Some(Owner::Client(key.clone())))?;
                    self.keyed.insert((b, key), id);
                    return Ok(id);
                }
                if let Some(&id) = self.sessions.get(session).and_then(|s| s.instances.get(&b)) {
                    return Ok(id);
                }
                let id = self.start_instance(b, Some(Owner::Session(session.to_string())))?;
                if let Some(s) = self.sessions.get_mut(session) {
                    s.instances.insert(b, id);
                }
                Ok(id)
            }
        }
    }

    /// Whether `session` is (or, for a 2026-07-28 client's instance, is one of the
    /// requests of) the owner of a per-session instance.
    pub(super) fn owned_by(&self, owner: &Owner, session: &str) -> bool {
        match owner {
            Owner::Session(s) => s == session,
            Owner::Client(key) => self
                .sessions
                .get(session)
                .and_then(|s| s.client_key(&self.opts.profiles))
                .is_some_and(|k| &k == key),
        }
    }

    /// The sessions a per-session instance's owner has now.
    pub(super) fn owner_sessions(&self, owner: &Owner) -> Vec<SessionId> {
        self.sessions
            .keys()
            .filter(|s| self.owned_by(owner, s))
            .cloned()
            .collect()
    }

    /// An instance failed: it is stopped and everything pending on it is answered.
    pub(super) fn instance_failed(&mut self, instance: InstanceId, reason: String) {
        self.end_instance(instance, Some(reason));
    }

    /// A deliberate stop: the session ended, the instance sat idle, or a probe is done.
    pub(super) fn stop_instance(&mut self, instance: InstanceId) {
        self.end_instance(instance, None);
    }

    pub(super) fn end_instance(&mut self, instance: InstanceId, failure: Option<String>) {
        let deliberate = failure.is_none();
        let reason = failure.unwrap_or_else(|| "was stopped".into());
        let Some(mut inst) = self.instances.remove(&instance) else {
            return;
        };
        {
            // Under the table's lock: a router either registered before this (and its
            // request is answered below) or sees the instance gone.
            let _table = self.pending();
            inst.alive.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        self.publish_routes();
        if let Some(conn) = inst.conn.take() {
            self.stopped.extend(conn.stop());
        }
        let b = inst.backend;
        if !deliberate {
            self.forget_program(b, inst.direct, inst.ready);
        }
        let name = self.backends[b].spec.name.clone();
        let orphaned = self.pending().ids_on_instance(instance);
        for gid in orphaned {
            let entry = self.pending().remove(gid);
            match entry {
                Some(Pending::Client {
                    session,
                    id,
                    method,
                    started,
                    audit,
                    ..
                }) => {
                    {
                        let mut metrics = self.replies.metrics();
                        metrics.record(&name, &method, "error", started.elapsed());
                        metrics.error(&name, &method, &reason);
                    }
                    if let Some(call) = &audit {
                        self.audit(&session, call, &name, started, Err(&reason));
                    }
                    let reply = Response::error(
                        Some(id),
                        INTERNAL_ERROR,
                        format!("backend '{name}' {reason} before answering this request"),
                    );
                    self.deliver(&session, Message::Response(reply));
                }
                Some(Pending::ServerRequest { session, .. }) => {
                    let params =
                        json!({"requestId": gid, "reason": format!("backend '{name}' {reason}")});
                    self.notify_session(&session, "notifications/cancelled", Some(params));
                }
                _ => {}
            }
        }
        self.subscriptions.retain(|(i, _), _| *i != instance);
        if let Some(owner) = &inst.owner {
            match owner {
                Owner::Session(s) => {
                    if let Some(s) = self.sessions.get_mut(s) {
                        s.instances.remove(&b);
                    }
                }
                Owner::Client(key) => {
                    self.keyed.remove(&(b, key.clone()));
                }
            }
            if !deliberate {
                warn!("backend '{name}': the instance of {owner} {reason}");
            }
        }
        if self.backends[b].source == Some(instance) {
            self.backends[b].source = None;
            let shared_or_starting = self.backends[b].spec.scope == Scope::Shared
                || self.backends[b].state == State::Starting;
            let learned = !self.backends[b].lists.items.iter().all(Vec::is_empty)
                || self.backends[b].stored.is_some();
            if deliberate || !shared_or_starting {
                // A probe that is done, or a per-session backend: nothing to restart.
            } else if demand::is_permanent(&reason) && self.backends[b].state != State::Ready {
                self.fail_for_good(b, reason);
            } else if self.on_demand(b) && learned {
                // An on-demand backend is not restarted for nobody: the next request
                // wakes it (what was waiting on it got the error above).
                warn!("backend '{name}': {reason}; sleeping until a request needs it");
                self.backends[b].state = State::Sleeping;
            } else if self.backends[b].spec.policy.restart {
                self.schedule_restart(b, reason);
            } else {
                self.backend_failed(b, reason);
            }
        }
    }

    /// Plans the next start of a backend that went down, with exponential backoff.
    pub(super) fn schedule_restart(&mut self, b: BackendIx, reason: String) {
        let backend = &mut self.backends[b];
        if backend
            .ready_since
            .take()
            .is_some_and(|t| t.elapsed() >= STABLE)
        {
            backend.backoff = FIRST_BACKOFF;
        }
        let wait = backend.backoff;
        backend.backoff = (backend.backoff * 2).min(MAX_BACKOFF);
        let at = Instant::now() + wait;
        let name = backend.spec.name.clone();
        let first = backend.state == State::Starting;
        backend.state = State::Restarting {
            reason: reason.clone(),
            at,
        };
        let status = if first { "FAILED  " } else { "DOWN    " };
        console!(
            "  {:<16} {:<15} {status} {reason}; restarting in {} s",
            name,
            backend.spec.transport.type_name(),
            wait.as_secs()
        );
        self.maybe_print_summary();
    }

    /// Starts the backends whose restart time has come.
    pub(super) fn restart_due(&mut self, now: Instant) {
        let due: Vec<BackendIx> = ((0..self.backends.len()).map(BackendIx))
            .filter(|&b| {
                matches!(self.backends[b].state, State::Restarting { at, .. } if at <= now)
                    && self.backends[b].source.is_none()
            })
            .collect();
        for b in due {
            self.backends[b].restarts += 1;
            info!(
                "backend '{}': restart {}",
                self.backends[b].spec.name, self.backends[b].restarts
            );
            match self.start_instance(b, None) {
                Ok(id) => self.backends[b].source = Some(id),
                Err(
                    e @ Unavailable::CannotStart {
                        permanent: true, ..
                    },
                ) => self.fail_for_good(b, e.into_reason()),
                Err(e) => self.schedule_restart(b, e.into_reason()),
            }
        }
    }

    /// Marks a backend failed: its catalog is withdrawn.
    pub(super) fn backend_failed(&mut self, b: BackendIx, reason: String) {
        let backend = &mut self.backends[b];
        if matches!(backend.state, State::Failed(_)) {
            return;
        }
        let was = std::mem::replace(&mut backend.state, State::Failed(reason.clone()));
        let name = backend.spec.name.clone();
        if was == State::Starting {
            console!(
                "  {:<16} {:<15} FAILED   {reason}",
                name,
                backend.spec.transport.type_name()
            );
        } else {
            warn!("backend '{name}': {reason}; its tools, prompts and resources are withdrawn");
        }
        if backend.lists != Lists::default() {
            backend.lists = Lists::default();
            self.rebuild_registry();
        }
        self.maybe_print_summary();
    }

    pub(super) fn tick(&mut self) {
        let now = Instant::now();
        let late: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(_, i)| i.init_deadline.is_some_and(|d| now >= d))
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let secs = self.opts.init_timeout.as_secs_f64();
            self.instance_failed(
                id,
                format!("did not finish initializing within {secs:.0} s"),
            );
        }
        let idle: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(id, i)| {
                let Scope::Session { idle } = self.backends[i.backend].spec.scope else {
                    return false;
                };
                i.owner.is_some()
                    && now.duration_since(i.last_used) >= idle
                    && !self.pending().waits_on(**id)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in idle {
            info!(
                "backend '{}': stopping an idle per-session instance",
                self.backends[self.instances[&id].backend].spec.name
            );
            self.stop_instance(id);
        }
        self.expire_requests(now);
        self.check_health(now);
        self.sleep_idle(now);
        self.retry_failed(now);
        self.restart_due(now);
        self.show_progress(now);
        self.release_lists(false);
    }

    /// Pings backends that have been quiet for a while; restarts those that do not answer.
    pub(super) fn check_health(&mut self, now: Instant) {
        let (interval, timeout) = (self.opts.ping_interval, self.opts.ping_timeout);
        let mut unanswered = Vec::new();
        let mut quiet = Vec::new();
        for (&id, inst) in &self.instances {
            match inst.ping_deadline {
                Some(d) if d <= now => unanswered.push(id),
                Some(_) => {}
                // Only idle ones: a server busy with a long call may not answer until it is
                // done, and that is no reason to kill it.
                None if inst.ready
                    && now.duration_since(
                        inst.order
                            .heard()
                            .map_or(inst.last_heard, |h| h.max(inst.last_heard)),
                    ) >= interval
                    && self.pending().clients_on(id) == 0 =>
                {
                    quiet.push(id)
                }
                None => {}
            }
        }
        for id in unanswered {
            self.instance_failed(
                id,
                format!("did not answer a ping within {} s", timeout.as_secs()),
            );
        }
        for id in quiet {
            if let Some(inst) = self.instances.get_mut(&id) {
                inst.ping_deadline = Some(now + timeout);
            }
            self.request_instance(id, "ping", None, Pending::Ping { instance: id });
        }
    }

    pub(super) fn instance_initialized(
        &mut self,
        instance: InstanceId,
        outcome: Result<Box<RawValue>, ErrorObject>,
    ) {
        let result = match outcome {
            Ok(r) => r,
            Err(e) => {
                self.instance_failed(
                    instance,
                    format!("initialize failed: {} ({})", e.message, e.code),
                );
                return;
            }
        };
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct InitResult {
            protocol_version: Option<String>,
            capabilities: Option<Map<String, Value>>,
            server_info: Option<Value>,
        }
        let r: InitResult = serde_json::from_str(result.get()).unwrap_or_default();
        let declared = r.capabilities.unwrap_or_default();
        let has = |k: &str| declared.contains_key(k);
        let caps = Caps {
            lists: [
                has("tools"),
                has("prompts"),
                has("resources"),
                has("resources"),
            ],
            logging: has("logging"),
            tasks: declared
                .get("tasks")
                .and_then(|t| t.pointer("/requests/tools/call"))
                .is_some(),
        };
        info!(
            "backend '{}': initialized: protocol {}, server {}, capabilities {}",
            self.name_of(instance),
            r.protocol_version.as_deref().unwrap_or("?"),
            r.server_info
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            Value::Object(declared.clone())
        );
        self.notify_instance(instance, "notifications/initialized", None);
        let b = self.instances[&instance].backend;
        if self.backends[b].source == Some(instance) {
            self.backends[b].server = Some(json!({
                "protocolVersion": r.protocol_version,
                "serverInfo": r.server_info,
                "capabilities": declared,
            }));
        }
        let inst = self
            .instances
            .get_mut(&instance)
            .expect("checked by the caller");
        inst.caps = caps.clone();
        inst.init_deadline = Some(Instant::now() + self.opts.init_timeout);
        let is_source = self.backends[inst.backend].source == Some(instance);
        if is_source && caps.lists.iter().any(|&l| l) {
            for kind in Kind::ALL {
                if caps.lists[kind.index()] {
                    self.list(instance, kind, None);
                }
            }
        } else {
            self.instance_ready(instance);
        }
    }

    pub(super) fn instance_ready(&mut self, instance: InstanceId) {
        let Some(inst) = self.instances.get_mut(&instance) else {
            return;
        };
        inst.ready = true;
        inst.init_deadline = None;
        let b = inst.backend;
        self.learn_program(instance);
        let is_source = self.backends[b].source == Some(instance);
        self.pump(instance);
        if is_source {
            self.backends[b].ready_since = Some(Instant::now());
        }
        if is_source && self.backends[b].state == State::Waking {
            let backend = &mut self.backends[b];
            backend.state = State::Ready;
            info!(
                "backend '{}': awake in {:.0} ms",
                backend.spec.name,
                backend.started.elapsed().as_secs_f64() * 1000.0
            );
            self.rebuild_registry();
            self.remember_catalog(b);
        } else if is_source && matches!(self.backends[b].state, State::Restarting { .. }) {
            let backend = &mut self.backends[b];
            backend.state = State::Ready;
            console!(
                "  {:<16} {:<15} ready again (restart {})",
                backend.spec.name,
                backend.spec.transport.type_name(),
                backend.restarts
            );
            self.rebuild_registry();
        } else if is_source && self.backends[b].state == State::Starting {
            let backend = &mut self.backends[b];
            backend.state = State::Ready;
            backend.took = Some(backend.started.elapsed());
            let took = backend.started.elapsed().as_secs_f64() * 1000.0;
            let counts = Kind::ALL.map(|k| backend.lists.get(k).len());
            let scope = if matches!(backend.spec.scope, Scope::Session { .. }) {
                ", per session"
            } else {
                ""
            };
            console!(
                "  {:<16} {:<15} ready    {:>3} tools, {} prompts, {} resources, {} templates{scope}  {took:.0} ms",
                backend.spec.name,
                backend.spec.transport.type_name(),
                counts[0],
                counts[1],
                counts[2],
                counts[3],
            );
            if let Scope::Session { .. } = backend.spec.scope {
                // The probe has told us the lists; sessions get their own instances.
                backend.source = None;
                self.stop_instance(instance);
            }
            self.rebuild_registry();
            self.remember_catalog(b);
            self.maybe_print_summary();
        }
        self.apply_log_levels();
        self.publish_routes();
    }
}
