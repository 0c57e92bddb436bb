//! The aggregated lists: learning each backend's, rebuilding the registry, telling
//! sessions what changed, and paging them to clients.

use super::pending::Pending;
use super::{Backend, Hub, MAX_PAGES, State};
use crate::compat;
use crate::contract::{InstanceId, PROTOCOL_VERSIONS};
use crate::jsonrpc::{self, ErrorObject, INVALID_PARAMS};
use crate::registry::{BackendIx, BackendLists, Kind, Registry};
use log::{debug, warn};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

impl Hub {
    /// One page of an aggregated list, with the gateway's own cursor.
    pub(super) fn list_page(
        &self,
        session: &str,
        kind: Kind,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, ErrorObject> {
        #[derive(Deserialize, Default)]
        struct P {
            cursor: Option<Value>,
        }
        let p: P = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let items = self.visible(session, kind);
        let start = match p.cursor.filter(|c| !c.is_null()) {
            None => 0,
            Some(c) => c
                .as_str()
                .and_then(|c| decode_cursor(kind, c))
                .filter(|&offset| offset <= items.len())
                .ok_or_else(|| {
                    ErrorObject::new(
                        INVALID_PARAMS,
                        format!("invalid cursor {c} for {}", kind.list_method()),
                    )
                })?,
        };
        let end = items.len().min(start + self.opts.page_size.max(1));
        let version = self
            .sessions
            .get(session)
            .map_or(PROTOCOL_VERSIONS[0], |s| s.version);
        let mut out = String::with_capacity(
            64 + items[start..end]
                .iter()
                .map(|i| i.get().len() + 1)
                .sum::<usize>(),
        );
        out.push_str("{\"");
        out.push_str(kind.field());
        out.push_str("\":[");
        for (i, item) in items[start..end].iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if compat::needs_downgrade(version) {
                let mut m: Map<String, Value> =
                    serde_json::from_str(item.get()).unwrap_or_default();
                compat::downgrade_item(kind, &mut m, version);
                out.push_str(&Value::Object(m).to_string());
            } else {
                out.push_str(item.get());
            }
        }
        out.push(']');
        if end < items.len() {
            out.push_str(",\"nextCursor\":\"");
            out.push_str(&encode_cursor(kind, end));
            out.push('"');
        }
        out.push('}');
        Ok(RawValue::from_string(out).expect("concatenated JSON items form valid JSON"))
    }

    pub(super) fn list(&mut self, instance: InstanceId, kind: Kind, cursor: Option<Value>) {
        let Some(inst) = self.instances.get_mut(&instance) else {
            return;
        };
        let slot = kind.index();
        if cursor.is_none() {
            inst.listing[slot] = Some(Vec::new());
            inst.pages[slot] = 0;
        }
        inst.pages[slot] += 1;
        let params = cursor.map(|c| json!({ "cursor": c }));
        self.request_instance(
            instance,
            kind.list_method(),
            params,
            Pending::List { instance, kind },
        );
    }

    pub(super) fn listed(
        &mut self,
        instance: InstanceId,
        kind: Kind,
        outcome: Result<Box<RawValue>, ErrorObject>,
    ) {
        let field = kind.field();
        // A backend that declares the capability but has not the method (many answer
        // `resources/templates/list` so) has none of that kind.
        let outcome = outcome.or_else(|e| match e.code {
            jsonrpc::METHOD_NOT_FOUND => {
                debug!("{} answered -32601: taken as none", kind.list_method());
                Ok(jsonrpc::to_raw(&json!({ field: [] })))
            }
            _ => Err(e),
        });
        let page = outcome
            .map_err(|e| format!("{} failed: {} ({})", kind.list_method(), e.message, e.code))
            .and_then(|r| {
                let mut v: Map<String, Value> = serde_json::from_str(r.get()).map_err(|e| {
                    format!("{} returned an unreadable result: {e}", kind.list_method())
                })?;
                let items = match v.remove(field) {
                    Some(Value::Array(items)) => items
                        .into_iter()
                        .filter_map(|i| match i {
                            Value::Object(m) => Some(m),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                    _ => return Err(format!("{} returned no '{field}' list", kind.list_method())),
                };
                Ok((items, v.remove("nextCursor").filter(|c| !c.is_null())))
            });
        let Some(inst) = self.instances.get_mut(&instance) else {
            return;
        };
        let slot = kind.index();
        let (items, next) = match page {
            Ok(p) => p,
            Err(e) => {
                if inst.ready {
                    warn!(
                        "backend '{}': {e}; keeping its previous list",
                        self.backends[inst.backend].spec.name
                    );
                    inst.listing[slot] = None;
                } else {
                    self.instance_failed(instance, e);
                }
                return;
            }
        };
        inst.listing[slot]
            .get_or_insert_with(Vec::new)
            .extend(items);
        match next {
            Some(_) if inst.pages[slot] >= MAX_PAGES => {
                let e = format!(
                    "{} still had more pages after {MAX_PAGES}",
                    kind.list_method()
                );
                self.instance_failed(instance, e);
            }
            Some(cursor) => self.list(instance, kind, Some(cursor)),
            None => {
                let done = inst.listing[slot].take().unwrap_or_default();
                let b = inst.backend;
                self.backends[b].lists.items[slot] = done;
                let inst = &self.instances[&instance];
                if inst.ready {
                    self.rebuild_registry();
                    self.remember_catalog(b);
                } else if inst.listing.iter().all(Option::is_none) {
                    self.instance_ready(instance);
                }
            }
        }
    }

    pub(super) fn rebuild_registry(&mut self) {
        let mut ready: Vec<(usize, &Backend)> = self
            .backends
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                // A failed backend's lists are empty, but an on-demand one's it had learned.
                matches!(
                    b.state,
                    State::Ready
                        | State::Restarting { .. }
                        | State::Sleeping
                        | State::Waking
                        | State::Failed(_)
                )
            })
            .collect();
        ready.sort_by_key(|(_, b)| b.position);
        let ready: Vec<BackendLists<'_>> = ready
            .into_iter()
            .map(|(i, b)| BackendLists {
                backend: BackendIx(i),
                name: &b.spec.name,
                prefix: &b.spec.prefix,
                lists: &b.lists,
                view: &b.spec.view,
            })
            .collect();
        let registry = Registry::build(&ready);
        for note in &registry.notes {
            if !self.registry.notes.contains(note) {
                warn!("{note}");
            }
        }
        let old = std::mem::replace(&mut self.registry, registry);
        let views = self.build_views();
        let old_views = std::mem::replace(&mut self.views, views);
        self.publish_routes();
        if !self.summary_printed {
            return;
        }
        self.announce_changes(&old, &old_views);
    }
}

/// The gateway's list cursor: opaque to clients, `<kind>:<offset>` in hex.
pub(super) fn encode_cursor(kind: Kind, offset: usize) -> String {
    format!("{}:{offset}", kind.field())
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(super) fn decode_cursor(kind: Kind, cursor: &str) -> Option<usize> {
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&cursor[i..i + 2], 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (field, offset) = text.split_once(':')?;
    (field == kind.field()).then(|| offset.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(Kind::Tools, 500);
        assert_eq!(decode_cursor(Kind::Tools, &c), Some(500));
        assert_eq!(
            decode_cursor(Kind::Prompts, &c),
            None,
            "a tools cursor is not a prompts cursor"
        );
        for bad in ["", "zz", "abc", "bogus", "746f6f6c733a", "é"] {
            assert_eq!(decode_cursor(Kind::Tools, bad), None, "{bad}");
        }
    }
}
