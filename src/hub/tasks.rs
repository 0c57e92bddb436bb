//! Tasks (protocol 2025-11-25, experimental): a `tools/call` made as a task answers at once
//! with a task id, and the client then asks `tasks/get`, `tasks/result`, `tasks/cancel` and
//! `tasks/list` about it. Task ids are the backend's; clients get them prefixed with the
//! backend's name (`<backend>.<id>`), unique across backends, and each task belongs to the
//! session that made it. The hub keeps the last state it saw of each task (from the
//! creation, `tasks/get`, `tasks/cancel` and status notifications), which is what
//! `tasks/list` answers with.

use super::pending::After;
use super::{Hub, Params, State};
use crate::contract::{InstanceId, SessionId};
use crate::jsonrpc::{self, ErrorObject, INVALID_PARAMS};
use crate::registry::BackendIx;
use log::warn;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// Tasks one session may have the gateway keep; making one more forgets its oldest.
pub(super) const MAX_TASKS: usize = 1000;

/// A task a session made on a backend.
pub(super) struct Task {
    pub(super) session: SessionId,
    /// When it was made, among all tasks (for forgetting the oldest).
    pub(super) seq: u64,
    pub(super) backend: BackendIx,
    /// The backend's own id.
    pub(super) original: String,
    /// The last state seen (a `Task` object, with the client's id).
    pub(super) last: Value,
}

const RELATED: &str = "io.modelcontextprotocol/related-task";

impl Hub {
    /// Whether a backend that is up takes tools as tasks, or one asleep said it does when
    /// it last ran.
    pub(super) fn tasks_offered(&self) -> bool {
        self.instances.values().any(|i| i.caps.tasks)
            || self.backends.iter().any(|b| {
                matches!(b.state, State::Sleeping | State::Waking)
                    && b.server
                        .as_ref()
                        .and_then(|s| s.pointer("/capabilities/tasks/requests/tools/call"))
                        .is_some()
            })
    }

    /// A `tasks/get`, `tasks/result` or `tasks/cancel` of the session's task: the backend,
    /// with `taskId` put back to the backend's own.
    pub(super) fn route_task(
        &self,
        session: &str,
        params: &mut Params,
    ) -> Result<(BackendIx, After), ErrorObject> {
        let exposed = params
            .get("taskId")
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
            .ok_or_else(|| ErrorObject::new(INVALID_PARAMS, "'params.taskId' must be a string"))?;
        let task = self
            .tasks
            .get(&exposed)
            .filter(|t| t.session == session)
            .ok_or_else(|| ErrorObject::new(INVALID_PARAMS, format!("unknown task '{exposed}'")))?;
        params.insert("taskId".into(), jsonrpc::to_raw(&task.original));
        let after = After::Task {
            exposed,
            original: task.original.clone(),
        };
        Ok((task.backend, after))
    }

    /// A task's answer as its client knows it: the backend's id replaced by the exposed
    /// one (a `Task` object's, and a result's related-task), its state remembered.
    pub(super) fn task_answered(
        &mut self,
        result: &RawValue,
        exposed: &str,
        original: &str,
    ) -> Box<RawValue> {
        let Ok(mut v) = serde_json::from_str::<Value>(result.get()) else {
            return result.to_owned();
        };
        let related = format!("/_meta/{}/taskId", RELATED.replace('/', "~1"));
        for pointer in ["/taskId", "/task/taskId", related.as_str()] {
            if let Some(task_id) = v.pointer_mut(pointer)
                && task_id == original
            {
                *task_id = Value::from(exposed);
            }
        }
        let state = if v.get("status").is_some() {
            Some(v.clone())
        } else {
            v.get("task").cloned()
        };
        if let (Some(state), Some(task)) = (state, self.tasks.get_mut(exposed)) {
            task.last = state;
        }
        jsonrpc::to_raw(&v)
    }

    /// A task-augmented `tools/call`'s answer: a new task, named for its client.
    pub(super) fn task_created(
        &mut self,
        session: &str,
        instance: InstanceId,
        result: &RawValue,
    ) -> Box<RawValue> {
        let Some(b) = self.instances.get(&instance).map(|i| i.backend) else {
            return result.to_owned();
        };
        let original = serde_json::from_str::<Value>(result.get())
            .ok()
            .and_then(|v| v.pointer("/task/taskId")?.as_str().map(str::to_string));
        let Some(original) = original else {
            return result.to_owned();
        };
        let exposed = format!("{}.{original}", self.backends[b].spec.name);
        let mine: Vec<(u64, &String)> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.session == session)
            .map(|(id, t)| (t.seq, id))
            .collect();
        if mine.len() >= MAX_TASKS
            && let Some((_, oldest)) = mine.iter().min()
        {
            let oldest = (*oldest).clone();
            warn!(
                "session {session}: over {MAX_TASKS} tasks kept; forgetting the oldest, '{oldest}'"
            );
            self.tasks.remove(&oldest);
        }
        self.task_seq += 1;
        let seq = self.task_seq;
        self.tasks.insert(
            exposed.clone(),
            Task {
                session: session.to_string(),
                seq,
                backend: b,
                original: original.clone(),
                last: Value::Null,
            },
        );
        self.task_answered(result, &exposed, &original)
    }

    /// `tasks/list`: the session's tasks, as last seen.
    pub(super) fn tasks_list(&self, session: &str) -> Box<RawValue> {
        let tasks: Vec<&Value> = self
            .tasks
            .values()
            .filter(|t| t.session == session && !t.last.is_null())
            .map(|t| &t.last)
            .collect();
        jsonrpc::to_raw(&json!({ "tasks": tasks }))
    }

    /// A backend's `notifications/tasks/status`: to the session whose task it is, with its
    /// id; `None` when it is no session's.
    pub(super) fn task_status(
        &mut self,
        instance: InstanceId,
        params: &mut Map<String, Value>,
    ) -> Option<SessionId> {
        let b = self.instances.get(&instance)?.backend;
        let original = params.get("taskId")?.as_str()?.to_string();
        let (exposed, task) = self
            .tasks
            .iter_mut()
            .find(|(_, t)| t.backend == b && t.original == original)?;
        params.insert("taskId".into(), Value::from(exposed.clone()));
        task.last = Value::Object(params.clone());
        Some(task.session.clone())
    }

    /// A backend's request about one of its tasks (its `_meta` names the task, as a
    /// 2025-11-25 server's requests for a task's input do): the task's session, with the
    /// task named for it. `None` when the request names no task the gateway knows.
    pub(super) fn task_request(
        &self,
        instance: InstanceId,
        params: &mut Option<Box<RawValue>>,
    ) -> Option<SessionId> {
        let raw = params.as_deref().filter(|p| p.get().contains(RELATED))?;
        let mut v: Value = serde_json::from_str(raw.get()).ok()?;
        let named = v.get_mut("_meta")?.get_mut(RELATED)?.get_mut("taskId")?;
        let b = self.instances.get(&instance)?.backend;
        let (exposed, task) = self
            .tasks
            .iter()
            .find(|(_, t)| t.backend == b && *named == t.original.as_str())?;
        *named = Value::from(exposed.as_str());
        *params = Some(jsonrpc::to_raw(&v));
        Some(task.session.clone())
    }

    /// Forgets the tasks of a session that ended.
    pub(super) fn forget_tasks(&mut self, session: &str) {
        self.tasks.retain(|_, t| t.session != session);
    }
}
