//! `group:create`, `group:join`, `group:leave`, `group:members`.

use serde::{Deserialize, Serialize};
use serde_json::json;
use socketioxide::adapter::Adapter;

use super::Call;
use crate::{
    error::{ChatError, ErrorCode},
    keys::rooms,
    protocol::{Group, GroupId, UserId, events},
    store::GroupRefusal,
};

const MAX_NAME: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateReq {
    name: String,
    #[serde(default)]
    members: Vec<UserId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupReq {
    group: GroupId,
}

#[derive(Debug, Serialize)]
pub(crate) struct GroupRes {
    group: Group,
}

#[derive(Debug, Serialize)]
pub(crate) struct MembersRes {
    members: Vec<UserId>,
}

pub(crate) async fn create<A: Adapter>(
    call: Call<A>,
    req: CreateReq,
) -> Result<GroupRes, ChatError> {
    let ctx = &call.ctx;
    let name = req.name.trim();
    if name.is_empty() {
        return Err(ChatError::bad_request("name must not be empty"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ChatError::too_large("name is over 100 characters"));
    }
    let mut members = vec![call.user.clone()];
    for m in req.members {
        if !members.contains(&m) {
            if members.len() >= ctx.limits.max_group_size {
                return Err(ChatError::too_large(format!(
                    "a group has at most {} members",
                    ctx.limits.max_group_size
                )));
            }
            members.push(m);
        }
    }
    // Adding someone counts toward their cap as joining does: others must not be able to
    // push a user past it. (Checked before the store step: concurrent creates naming the
    // same user may pass it by as many as run at once; `group:join` checks atomically.)
    let counts = ctx.stores.groups.counts(&members).await?;
    for (i, n) in counts.into_iter().enumerate() {
        if n >= ctx.limits.groups_per_user {
            return Err(match i {
                0 => too_many_groups(),
                _ => ChatError::new(
                    ErrorCode::Conflict,
                    format!("{} belongs to too many groups", members[i]),
                ),
            });
        }
    }
    let group = Group {
        id: GroupId::random(),
        name: name.to_owned(),
        owner: call.user.clone(),
        members,
    };
    let group = ctx.stores.groups.create(group).await?;
    let room = rooms::group(&group.id);
    let member_rooms: Vec<String> = group.members.iter().map(rooms::user).collect();
    if let Err(e) = call.socket.within(member_rooms).join(room.clone()).await {
        tracing::warn!(group = %group.id, cause = %e, "cannot add member sockets to the group room");
    }
    // Each added member hears of its own joining (its devices learn the group), not of every
    // other member's: a group created with n members costs n events, not n².
    let id = &group.id;
    futures_util::future::join_all(group.members.iter().skip(1).map(|m| {
        let payload = json!({ "group": id, "user": m, "event": "joined" });
        let to = call.socket.within(rooms::user(m));
        async move {
            if let Err(e) = to.emit(events::GROUP_MEMBER, &payload).await {
                tracing::warn!(group = %id, cause = %e, "cannot announce membership");
            }
        }
    }))
    .await;
    Ok(GroupRes { group })
}

pub(crate) async fn join<A: Adapter>(call: Call<A>, req: GroupReq) -> Result<GroupRes, ChatError> {
    let ctx = &call.ctx;
    let joined = ctx
        .stores
        .groups
        .join(
            &req.group,
            &call.user,
            ctx.limits.max_group_size,
            ctx.limits.groups_per_user,
        )
        .await?;
    let (group, added) = match joined {
        Ok(ok) => ok,
        Err(GroupRefusal::NotFound) => return Err(ChatError::not_found("no such group")),
        Err(GroupRefusal::Full) => {
            return Err(ChatError::new(ErrorCode::Conflict, "the group is full"));
        }
        Err(GroupRefusal::TooManyGroups) => return Err(too_many_groups()),
    };
    if added {
        let room = rooms::group(&group.id);
        if let Err(e) = call.socket.within(rooms::user(&call.user)).join(room).await {
            tracing::warn!(group = %group.id, cause = %e, "cannot add sockets to the group room");
        }
        announce(&call, &group.id, &call.user, "joined").await;
    }
    Ok(GroupRes { group })
}

pub(crate) async fn leave<A: Adapter>(call: Call<A>, req: GroupReq) -> Result<(), ChatError> {
    if call.ctx.stores.groups.leave(&req.group, &call.user).await? {
        announce(&call, &req.group, &call.user, "left").await;
        let room = rooms::group(&req.group);
        if let Err(e) = call
            .socket
            .within(rooms::user(&call.user))
            .leave(room)
            .await
        {
            tracing::warn!(group = %req.group, cause = %e, "cannot remove sockets from the group room");
        }
    }
    Ok(())
}

pub(crate) async fn members<A: Adapter>(
    call: Call<A>,
    req: GroupReq,
) -> Result<MembersRes, ChatError> {
    let group = call
        .authorize(&crate::protocol::ConversationId::Group(req.group))
        .await?
        .ok_or_else(|| ChatError::not_found("no such group"))?;
    Ok(MembersRes {
        members: group.members,
    })
}

fn too_many_groups() -> ChatError {
    ChatError::new(ErrorCode::Conflict, "you belong to too many groups")
}

/// Tells every socket in the group room that `user` joined or left.
async fn announce<A: Adapter>(call: &Call<A>, group: &GroupId, user: &UserId, event: &str) {
    let payload = json!({ "group": group, "user": user, "event": event });
    if let Err(e) = call
        .socket
        .within(rooms::group(group))
        .emit(events::GROUP_MEMBER, &payload)
        .await
    {
        tracing::warn!(group = %group, cause = %e, "cannot announce membership");
    }
}
