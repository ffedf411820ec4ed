//! `presence:status` (available, away or busy, with a text) and `presence:idle` (a device's
//! inactivity report): part of what `presence` tells, across nodes.
//!
//! A user is shown `idle` when they are `available` and every one of their devices reported
//! inactivity; any status they set wins over that.

use serde::Deserialize;
use socketioxide::adapter::Adapter;

use super::{Call, Ctx, connection::announce_presence};
use crate::{
    error::{ChatError, StoreError},
    keys::rooms,
    protocol::{PresenceInfo, Status, UserId, events},
    store::StatusRecord,
};

/// Longest status text, in characters.
pub(crate) const MAX_TEXT: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StatusReq {
    status: Status,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IdleReq {
    idle: bool,
}

/// Whether this socket's last inactivity report said idle (absent: it never reported).
#[derive(Debug, Clone)]
pub(crate) struct ReportedIdle(pub bool);

/// What others see: the status set, or `idle` for an available user whose every recorded
/// device is idle.
fn shown(record: &StatusRecord, devices: usize) -> Status {
    let all_idle = record.idle_devices > 0 && record.idle_devices >= devices;
    if record.status == Status::Available && all_idle {
        return Status::Idle;
    }
    record.status
}

/// The presence of each user with their status, in order.
pub(crate) async fn infos(ctx: &Ctx, users: &[UserId]) -> Result<Vec<PresenceInfo>, StoreError> {
    // Two stores, two round trips: taken side by side, the wait is one.
    let (states, records) = tokio::try_join!(
        ctx.stores.presence.get(users),
        ctx.stores.statuses.statuses(users)
    )?;
    let mut out = Vec::with_capacity(users.len());
    for ((user, state), record) in users.iter().zip(states).zip(records) {
        if !state.online {
            out.push(PresenceInfo {
                state,
                status: None,
                text: None,
            });
            continue;
        }
        // Devices are counted only when some reported idle: most users never do.
        let devices = match record.idle_devices {
            0 => 0,
            _ => ctx.stores.presence.devices(user).await?,
        };
        // `available` is left out: presence payloads stay as they were for users who never
        // set a status (clients that compare them whole keep working).
        let status = shown(&record, devices);
        out.push(PresenceInfo {
            state,
            status: (status != Status::Available).then_some(status),
            text: record.text,
        });
    }
    Ok(out)
}

/// What others see of an online user now (`None` offline).
async fn shown_now(
    ctx: &Ctx,
    user: &UserId,
) -> Result<Option<(Status, Option<String>)>, StoreError> {
    let info = infos(ctx, std::slice::from_ref(user)).await?;
    Ok(info
        .into_iter()
        .next()
        .filter(|i| i.state.online)
        .map(|i| (i.status.unwrap_or_default(), i.text)))
}

/// `presence:status`: sets what the user is up to, for every device.
pub(crate) async fn set<A: Adapter>(call: Call<A>, req: StatusReq) -> Result<(), ChatError> {
    if req.status == Status::Idle {
        return Err(ChatError::bad_request(
            "idle is not set: devices report it with presence:idle",
        ));
    }
    let text = req.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if text.is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err(ChatError::too_large(format!(
            "text is over {MAX_TEXT} characters"
        )));
    }
    let ctx = &*call.ctx;
    let before = shown_now(ctx, &call.user).await?;
    ctx.stores
        .statuses
        .set_status(&call.user, req.status, text)
        .await?;
    announce_if_changed(&call, before).await
}

/// `presence:idle`: this device is inactive (`true`) or in use again.
pub(crate) async fn idle<A: Adapter>(call: Call<A>, req: IdleReq) -> Result<(), ChatError> {
    let ctx = &*call.ctx;
    let before = shown_now(ctx, &call.user).await?;
    let socket = call.socket.id.to_string();
    ctx.stores
        .statuses
        .set_device_idle(&call.user, &socket, req.idle)
        .await?;
    call.socket.extensions.insert(ReportedIdle(req.idle));
    announce_if_changed(&call, before).await
}

/// Tells the user's audience and the user's own devices when what others see changed.
async fn announce_if_changed<A: Adapter>(
    call: &Call<A>,
    before: Option<(Status, Option<String>)>,
) -> Result<(), ChatError> {
    let ctx = &*call.ctx;
    let after = shown_now(ctx, &call.user).await?;
    if after == before {
        return Ok(());
    }
    announce_presence(ctx, call.socket.broadcast(), &call.user, true, None).await;
    // The user's own devices keep their status pickers in step.
    let info = infos(ctx, std::slice::from_ref(&call.user)).await?;
    let mut payload = serde_json::to_value(&info[0]).unwrap_or_default();
    payload["user"] = serde_json::json!(call.user);
    if let Err(e) = call
        .socket
        .within(rooms::user(&call.user))
        .emit(events::PRESENCE, &payload)
        .await
    {
        tracing::warn!(user = %call.user, cause = %e, "cannot send a status to its user");
    }
    Ok(())
}

/// A device in use left and the user still has others: if those are all idle, the user is
/// now `idle` for their audience. (An idle device leaving changes nothing: the others were
/// all idle before as after, or not.) Costs a read only for users with idle devices.
pub(crate) async fn active_device_left<A: Adapter>(
    ctx: &Ctx,
    ops: socketioxide::operators::BroadcastOperators<A>,
    user: &UserId,
) {
    match shown_now(ctx, user).await {
        Ok(Some((Status::Idle, _))) => announce_presence(ctx, ops, user, true, None).await,
        Ok(_) => {}
        Err(e) => tracing::warn!(user = %user, cause = %e, "cannot read a status"),
    }
}

/// A socket that reported idle leaves: it no longer counts as an idle device.
pub(crate) async fn left(ctx: &Ctx, user: &UserId, socket: &str, reported: Option<ReportedIdle>) {
    if reported.is_some_and(|r| r.0)
        && let Err(e) = ctx
            .stores
            .statuses
            .set_device_idle(user, socket, false)
            .await
    {
        tracing::warn!(user = %user, cause = %e, "cannot forget an idle device");
    }
}
