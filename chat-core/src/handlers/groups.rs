//! `group:create`, `group:join`, `group:leave`, `group:members`; the server API manages
//! groups through the same steps ([`create_group`], [`add_member`], [`remove_member`]).

use serde::{Deserialize, Serialize};
use serde_json::json;
use socketioxide::{adapter::Adapter, operators::BroadcastOperators};

use super::{Call, Ctx};
use crate::{
    error::{ChatError, ErrorCode},
    keys::rooms,
    protocol::{Group, GroupId, UserId, Visibility, events},
    store::GroupRefusal,
};

/// Longest group name, in characters.
pub(crate) const MAX_NAME: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateReq {
    name: String,
    #[serde(default)]
    members: Vec<UserId>,
    #[serde(default)]
    visibility: Visibility,
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
    /// The whole group (owner, admins, topic, visibility): how a member reads it.
    group: Group,
}

pub(crate) async fn create<A: Adapter>(
    call: Call<A>,
    req: CreateReq,
) -> Result<GroupRes, ChatError> {
    let socket = call.socket.clone();
    let group = create_group(
        &call.ctx,
        &call.user,
        &req.name,
        req.members,
        req.visibility,
        |r| socket.within(r),
    )
    .await?;
    Ok(GroupRes { group })
}

pub(crate) async fn join<A: Adapter>(call: Call<A>, req: GroupReq) -> Result<GroupRes, ChatError> {
    let group = call.ctx.stores.groups.get(&req.group).await?;
    if let Some(g) = group
        && g.visibility == Visibility::Private
        && !g.members.contains(&call.user)
    {
        return Err(ChatError::forbidden(
            "this group is private: its owner or an admin adds members (group:invite)",
        ));
    }
    let socket = call.socket.clone();
    let (group, _) = add_member(&call.ctx, &req.group, &call.user, |r| socket.within(r)).await?;
    Ok(GroupRes { group })
}

pub(crate) async fn leave<A: Adapter>(call: Call<A>, req: GroupReq) -> Result<(), ChatError> {
    let socket = call.socket.clone();
    remove_member(&call.ctx, &req.group, &call.user, None, |r| {
        socket.within(r)
    })
    .await?;
    Ok(())
}

/// Creates a group owned by `owner` with `members` (the owner first, duplicates dropped),
/// joins the members' sockets on every node to its room and tells each added member.
/// `within` selects sockets in rooms, cluster-wide.
pub(crate) async fn create_group<A: Adapter>(
    ctx: &Ctx,
    owner: &UserId,
    name: &str,
    members: Vec<UserId>,
    visibility: Visibility,
    within: impl Fn(Vec<String>) -> BroadcastOperators<A>,
) -> Result<Group, ChatError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ChatError::bad_request("name must not be empty"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ChatError::too_large("name is over 100 characters"));
    }
    let mut all = vec![owner.clone()];
    for m in members {
        if !all.contains(&m) {
            if all.len() >= ctx.limits.max_group_size {
                return Err(ChatError::too_large(format!(
                    "a group has at most {} members",
                    ctx.limits.max_group_size
                )));
            }
            all.push(m);
        }
    }
    // Adding someone counts toward their cap as joining does: others must not be able to
    // push a user past it. (Checked before the store step: concurrent creates naming the
    // same user may pass it by as many as run at once; `group:join` checks atomically.)
    let counts = ctx.stores.groups.counts(&all).await?;
    for (i, n) in counts.into_iter().enumerate() {
        if n >= ctx.limits.groups_per_user {
            return Err(match i {
                0 => too_many_groups(),
                _ => ChatError::new(
                    ErrorCode::Conflict,
                    format!("{} belongs to too many groups", all[i]),
                ),
            });
        }
    }
    let group = Group {
        id: GroupId::random(),
        name: name.to_owned(),
        owner: owner.clone(),
        members: all,
        admins: Vec::new(),
        topic: None,
        visibility,
    };
    let group = ctx.stores.groups.create(group).await?;
    let room = rooms::group(&group.id);
    let member_rooms: Vec<String> = group.members.iter().map(rooms::user).collect();
    if let Err(e) = within(member_rooms).join(room.clone()).await {
        tracing::warn!(group = %group.id, cause = %e, "cannot add member sockets to the group room");
    }
    // Each added member hears of its own joining (its devices learn the group), not of every
    // other member's: a group created with n members costs n events, not n².
    let id = &group.id;
    futures_util::future::join_all(group.members.iter().skip(1).map(|m| {
        let payload = json!({ "group": id, "user": m, "event": "joined" });
        let to = within(vec![rooms::user(m)]);
        async move {
            if let Err(e) = to.emit(events::GROUP_MEMBER, &payload).await {
                tracing::warn!(group = %id, cause = %e, "cannot announce membership");
            }
        }
    }))
    .await;
    Ok(group)
}

/// Adds `user` to a group (within its caps), joins their sockets to the group room and
/// tells the group. Returns the group and whether the user was added (false: a member).
pub(crate) async fn add_member<A: Adapter>(
    ctx: &Ctx,
    group: &GroupId,
    user: &UserId,
    within: impl Fn(Vec<String>) -> BroadcastOperators<A>,
) -> Result<(Group, bool), ChatError> {
    let joined = ctx
        .stores
        .groups
        .join(
            group,
            user,
            ctx.limits.max_group_size,
            ctx.limits.groups_per_user,
        )
        .await?;
    let (group, added) = match joined {
        Ok(ok) => ok,
        Err(GroupRefusal::NotFound | GroupRefusal::NotMember) => {
            return Err(ChatError::not_found("no such group"));
        }
        Err(GroupRefusal::Full) => {
            return Err(ChatError::new(ErrorCode::Conflict, "the group is full"));
        }
        Err(GroupRefusal::TooManyGroups) => return Err(too_many_groups()),
    };
    if added {
        let room = rooms::group(&group.id);
        if let Err(e) = within(vec![rooms::user(user)]).join(room).await {
            tracing::warn!(group = %group.id, cause = %e, "cannot add sockets to the group room");
        }
        announce(&within, &group.id, user, "joined").await;
    }
    Ok((group, added))
}

/// Removes `user` from a group, tells the group (the user included: `left`, or `removed`
/// with `by` when a member removed them) and takes their sockets out of the room; a new
/// owner, when the owner left, is told with `group:updated`. False if the user was not a
/// member.
pub(crate) async fn remove_member<A: Adapter>(
    ctx: &Ctx,
    group: &GroupId,
    user: &UserId,
    by: Option<&UserId>,
    within: impl Fn(Vec<String>) -> BroadcastOperators<A>,
) -> Result<bool, ChatError> {
    let was_owner = ctx
        .stores
        .groups
        .get(group)
        .await?
        .is_some_and(|g| &g.owner == user);
    if !ctx.stores.groups.leave(group, user).await? {
        return Ok(false);
    }
    let payload = match by {
        Some(by) => json!({ "group": group, "user": user, "event": "removed", "by": by }),
        None => json!({ "group": group, "user": user, "event": "left" }),
    };
    if let Err(e) = within(vec![rooms::group(group)])
        .emit(events::GROUP_MEMBER, &payload)
        .await
    {
        tracing::warn!(group = %group, cause = %e, "cannot announce membership");
    }
    let room = rooms::group(group);
    if let Err(e) = within(vec![rooms::user(user)]).leave(room).await {
        tracing::warn!(group = %group, cause = %e, "cannot remove sockets from the group room");
    }
    if was_owner && let Some(now) = ctx.stores.groups.get(group).await? {
        super::group_admin::updated(&within, &now).await;
    }
    Ok(true)
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
        members: group.members.clone(),
        group,
    })
}

fn too_many_groups() -> ChatError {
    ChatError::new(ErrorCode::Conflict, "you belong to too many groups")
}

/// Tells every socket in the group room that `user` joined or left.
async fn announce<A: Adapter>(
    within: &impl Fn(Vec<String>) -> BroadcastOperators<A>,
    group: &GroupId,
    user: &UserId,
    event: &str,
) {
    let payload = json!({ "group": group, "user": user, "event": event });
    if let Err(e) = within(vec![rooms::group(group)])
        .emit(events::GROUP_MEMBER, &payload)
        .await
    {
        tracing::warn!(group = %group, cause = %e, "cannot announce membership");
    }
}
