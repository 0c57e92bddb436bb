//! A backend that could not read a request answers with an error whose id is null (it
//! never got to the id); an answer over `maxMessageSize` whose first bytes do not reach
//! its id becomes such an error too (`lines::oversized`). When exactly one client request
//! is in flight on that instance, the error can only be for it: it is answered at once
//! instead of at its timeout.

use super::{GatewayId, Hub, InstanceId, Pending};
use crate::jsonrpc::{INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, Response};
use log::warn;

impl Hub {
    /// The gateway id of the one client request an id-less parse error can be for, if
    /// there is exactly one in flight on `instance`.
    pub(super) fn sole_request_for(
        &self,
        instance: InstanceId,
        resp: &Response,
    ) -> Option<GatewayId> {
        let code = resp.outcome.as_ref().err()?.code;
        if resp.id.is_some() || !matches!(code, PARSE_ERROR | INVALID_REQUEST | INTERNAL_ERROR) {
            return None;
        }
        let gid = {
            let table = self.pending();
            let mut mine = table
                .on_instance(instance)
                .filter(|(_, p)| matches!(p, Pending::Client { .. }));
            let (gid, _) = mine.next()?;
            if mine.next().is_some() {
                return None;
            }
            gid
        };
        warn!(
            "backend '{}': an error without an id (code {code}); the one request in flight on it gets it",
            self.name_of(instance)
        );
        Some(gid)
    }
}
