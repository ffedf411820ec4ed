//! `presence:subscribe`: a snapshot now, `presence` events later.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use socketioxide::adapter::Adapter;

use super::Call;
use crate::{
    error::ChatError,
    keys::rooms,
    protocol::{PresenceState, UserId},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscribeReq {
    users: Vec<UserId>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SubscribeRes {
    presence: BTreeMap<UserId, PresenceState>,
}

pub(crate) async fn subscribe<A: Adapter>(
    call: Call<A>,
    req: SubscribeReq,
) -> Result<SubscribeRes, ChatError> {
    let limits = &call.ctx.limits;
    if req.users.len() > limits.presence_batch {
        return Err(ChatError::too_large(format!(
            "at most {} users per call",
            limits.presence_batch
        )));
    }
    let wanted: Vec<String> = req.users.iter().map(rooms::presence).collect();
    let current = call.socket.rooms();
    let subscribed = current
        .iter()
        .filter(|r| r.starts_with(rooms::PRESENCE))
        .count();
    let new = wanted
        .iter()
        .filter(|r| !current.iter().any(|c| c == r.as_str()))
        .count();
    if subscribed + new > limits.presence_per_socket {
        return Err(ChatError::too_large(format!(
            "at most {} presence subscriptions per connection",
            limits.presence_per_socket
        )));
    }
    call.ctx.join(&call.socket, wanted).await;
    let states = call.ctx.stores.presence.get(&req.users).await?;
    Ok(SubscribeRes {
        presence: req.users.into_iter().zip(states).collect(),
    })
}
