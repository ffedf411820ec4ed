//! `presence:subscribe`: a snapshot now, `presence` events later; and who may learn a
//! user's presence ([`PresenceVisibility`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use socketioxide::adapter::Adapter;

use super::{Call, Ctx};
use crate::{
    config::PresenceVisibility,
    error::{ChatError, StoreError},
    keys::rooms,
    protocol::{ContactState, PresenceInfo, UserId},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscribeReq {
    users: Vec<UserId>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SubscribeRes {
    presence: BTreeMap<UserId, PresenceInfo>,
    /// With visibility `contacts`: the users who do not show the caller their presence.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hidden: Vec<UserId>,
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
    let shown = visible(&call.ctx, &call.user, &req.users).await?;
    let (users, hidden): (Vec<_>, Vec<_>) = req.users.into_iter().zip(shown).partition(|u| u.1);
    let users: Vec<UserId> = users.into_iter().map(|(u, _)| u).collect();
    if call.ctx.presence_visibility == PresenceVisibility::Everyone {
        call.ctx.join(&call.socket, wanted).await;
    }
    // With `contacts`, contacts hear of each other through their user rooms (`audience`):
    // a subscription adds nothing, and joins no room.
    let states = super::status::infos(&call.ctx, &users).await?;
    Ok(SubscribeRes {
        presence: users.into_iter().zip(states).collect(),
        hidden: hidden.into_iter().map(|(u, _)| u).collect(),
    })
}

/// Whether each of `owners` lets `viewer` learn their presence, in order: everyone does
/// with visibility `everyone`; with `contacts`, those whose roster holds `viewer` as a
/// contact (and `viewer` itself).
pub(crate) async fn visible(
    ctx: &Ctx,
    viewer: &UserId,
    owners: &[UserId],
) -> Result<Vec<bool>, StoreError> {
    if ctx.presence_visibility == PresenceVisibility::Everyone {
        return Ok(vec![true; owners.len()]);
    }
    let pairs: Vec<(UserId, UserId)> = owners.iter().map(|o| (o.clone(), viewer.clone())).collect();
    let states = ctx.stores.contacts.contact_states(&pairs).await?;
    Ok(owners
        .iter()
        .zip(states)
        .map(|(o, s)| o == viewer || s == Some(ContactState::Contact))
        .collect())
}

/// The rooms that hear of `user` coming and going: with `everyone`, their subscribers, DM
/// partners and fellow members of small groups; with `contacts`, their contacts' devices
/// (none for a user without contacts: a broadcast to no room would reach every socket).
pub(crate) async fn audience(ctx: &Ctx, user: &UserId) -> Vec<String> {
    if ctx.presence_visibility == PresenceVisibility::Contacts {
        return match ctx.stores.contacts.contacts(user).await {
            Ok(contacts) => contacts.iter().map(rooms::user).collect(),
            Err(e) => {
                tracing::warn!(user = %user, cause = %e, "cannot load contacts");
                Vec::new()
            }
        };
    }
    let mut targets = vec![rooms::presence(user)];
    match ctx.stores.messages.dm_peers(user).await {
        Ok(peers) => targets.extend(peers.iter().map(rooms::user)),
        Err(e) => tracing::warn!(user = %user, cause = %e, "cannot load dm peers"),
    }
    match ctx.stores.groups.of_user(user).await {
        Ok(groups) => targets.extend(
            groups
                .iter()
                .filter(|g| g.members.len() <= ctx.limits.receipt_group_max)
                .map(|g| rooms::group(&g.id)),
        ),
        Err(e) => tracing::warn!(user = %user, cause = %e, "cannot load groups"),
    }
    targets
}
