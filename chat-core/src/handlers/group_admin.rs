//! Group administration: `group:update`, `group:kick`, `group:promote`, `group:demote` and
//! `group:delete`, by role ([`Role`]); every change told to the members (`group:updated`,
//! `group:member`) on every node. The server API manages groups through the same steps.

use serde::{Deserialize, Serialize};
use serde_json::json;
use socketioxide::{adapter::Adapter, operators::BroadcastOperators};

use super::{Call, Ctx, groups::MAX_NAME};
use crate::{
    error::ChatError,
    keys::rooms,
    protocol::{Group, GroupId, Role, UserId, events},
    store::GroupRefusal,
};

/// Longest topic, in characters.
pub(crate) const MAX_TOPIC: usize = 250;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateReq {
    group: GroupId,
    name: Option<String>,
    /// `""` clears the topic.
    topic: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberReq {
    group: GroupId,
    user: UserId,
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

/// The group and the caller's role in it, which must be at least `needed`.
async fn with_role(
    ctx: &Ctx,
    id: &GroupId,
    user: &UserId,
    needed: Role,
) -> Result<Group, ChatError> {
    let group = ctx
        .stores
        .groups
        .get(id)
        .await?
        .ok_or_else(|| ChatError::not_found("no such group"))?;
    match group.role(user) {
        None => Err(ChatError::forbidden("you are not a member of this group")),
        Some(role) if role < needed => Err(ChatError::forbidden(match needed {
            Role::Owner => "only the group's owner may do this",
            _ => "only the group's owner and admins may do this",
        })),
        Some(_) => Ok(group),
    }
}

/// Checks a name or topic: trimmed, within `max` characters; a name is not empty.
fn checked(value: &str, what: &str, max: usize, may_be_empty: bool) -> Result<String, ChatError> {
    let v = value.trim();
    if v.is_empty() && !may_be_empty {
        return Err(ChatError::bad_request(format!("{what} must not be empty")));
    }
    if v.chars().count() > max {
        return Err(ChatError::too_large(format!(
            "{what} is over {max} characters"
        )));
    }
    Ok(v.to_owned())
}

/// `group:update`: renames the group or sets its topic (owner and admins).
pub(crate) async fn update<A: Adapter>(
    call: Call<A>,
    req: UpdateReq,
) -> Result<GroupRes, ChatError> {
    let socket = call.socket.clone();
    let group = update_group(
        &call.ctx,
        &req.group,
        Some(&call.user),
        req.name.as_deref(),
        req.topic.as_deref(),
        |r| socket.within(r),
    )
    .await?;
    Ok(GroupRes { group })
}

/// Renames a group and sets its topic, as `by` (checked to be an admin), or as the
/// product's backend (`None`); tells the members.
pub(crate) async fn update_group<A: Adapter>(
    ctx: &Ctx,
    id: &GroupId,
    by: Option<&UserId>,
    name: Option<&str>,
    topic: Option<&str>,
    within: impl Fn(Vec<String>) -> BroadcastOperators<A>,
) -> Result<Group, ChatError> {
    if name.is_none() && topic.is_none() {
        return Err(ChatError::bad_request("give a name or a topic"));
    }
    let name = name
        .map(|n| checked(n, "name", MAX_NAME, false))
        .transpose()?;
    let topic = topic
        .map(|t| checked(t, "topic", MAX_TOPIC, true))
        .transpose()?;
    if let Some(by) = by {
        with_role(ctx, id, by, Role::Admin).await?;
    }
    let topic = topic
        .as_ref()
        .map(|t| Some(t.as_str()).filter(|t| !t.is_empty()));
    let group = ctx
        .stores
        .groups
        .update(id, name.as_deref(), topic)
        .await?
        .ok_or_else(|| ChatError::not_found("no such group"))?;
    updated(&within, &group).await;
    Ok(group)
}

/// `group:kick`: removes a member (owner and admins; admins remove members only).
pub(crate) async fn kick<A: Adapter>(call: Call<A>, req: MemberReq) -> Result<(), ChatError> {
    if req.user == call.user {
        return Err(ChatError::bad_request(
            "you cannot remove yourself: leave the group",
        ));
    }
    let ctx = &*call.ctx;
    let group = with_role(ctx, &req.group, &call.user, Role::Admin).await?;
    match (group.role(&call.user), group.role(&req.user)) {
        (_, None) => return Err(ChatError::not_found("not a member of this group")),
        (_, Some(Role::Owner)) | (Some(Role::Admin), Some(Role::Admin)) => {
            return Err(ChatError::forbidden(
                "only the owner removes admins, and nobody the owner",
            ));
        }
        _ => {}
    }
    let socket = call.socket.clone();
    super::groups::remove_member(ctx, &req.group, &req.user, Some(&call.user), |r| {
        socket.within(r)
    })
    .await?;
    Ok(())
}

/// `group:promote`: makes a member an admin (owner only).
pub(crate) async fn promote<A: Adapter>(
    call: Call<A>,
    req: MemberReq,
) -> Result<GroupRes, ChatError> {
    set_role(call, req, true).await
}

/// `group:demote`: makes an admin a plain member again (owner only).
pub(crate) async fn demote<A: Adapter>(
    call: Call<A>,
    req: MemberReq,
) -> Result<GroupRes, ChatError> {
    set_role(call, req, false).await
}

async fn set_role<A: Adapter>(
    call: Call<A>,
    req: MemberReq,
    admin: bool,
) -> Result<GroupRes, ChatError> {
    let socket = call.socket.clone();
    let group = set_admin(
        &call.ctx,
        &req.group,
        Some(&call.user),
        &req.user,
        admin,
        |r| socket.within(r),
    )
    .await?;
    Ok(GroupRes { group })
}

/// Gives `user` the admin role or takes it away, as `by` (checked to be the owner) or as
/// the product's backend (`None`); tells the members.
pub(crate) async fn set_admin<A: Adapter>(
    ctx: &Ctx,
    id: &GroupId,
    by: Option<&UserId>,
    user: &UserId,
    admin: bool,
    within: impl Fn(Vec<String>) -> BroadcastOperators<A>,
) -> Result<Group, ChatError> {
    let group = match by {
        Some(by) => with_role(ctx, id, by, Role::Owner).await?,
        None => ctx
            .stores
            .groups
            .get(id)
            .await?
            .ok_or_else(|| ChatError::not_found("no such group"))?,
    };
    if &group.owner == user {
        return Err(ChatError::bad_request("the owner's role does not change"));
    }
    let group = match ctx.stores.groups.set_admin(id, user, admin).await? {
        Ok(g) => g,
        Err(GroupRefusal::NotMember) => {
            return Err(ChatError::not_found("not a member of this group"));
        }
        Err(_) => return Err(ChatError::not_found("no such group")),
    };
    updated(&within, &group).await;
    Ok(group)
}

/// `group:delete`: deletes the group and its messages (owner only).
pub(crate) async fn delete<A: Adapter>(call: Call<A>, req: GroupReq) -> Result<(), ChatError> {
    let socket = call.socket.clone();
    delete_group(&call.ctx, &req.group, Some(&call.user), |r| {
        socket.within(r)
    })
    .await
}

/// Deletes a group as `by` (checked to be the owner) or as the product's backend (`None`):
/// the members are told (`group:updated` with `deleted: true`) and their sockets leave its
/// room on every node.
pub(crate) async fn delete_group<A: Adapter>(
    ctx: &Ctx,
    id: &GroupId,
    by: Option<&UserId>,
    within: impl Fn(Vec<String>) -> BroadcastOperators<A>,
) -> Result<(), ChatError> {
    if let Some(by) = by {
        with_role(ctx, id, by, Role::Owner).await?;
    }
    let group = ctx
        .stores
        .groups
        .delete(id)
        .await?
        .ok_or_else(|| ChatError::not_found("no such group"))?;
    let room = rooms::group(id);
    let payload = json!({ "group": group, "deleted": true });
    if let Err(e) = within(vec![room.clone()])
        .emit(events::GROUP_UPDATED, &payload)
        .await
    {
        tracing::warn!(group = %id, cause = %e, "cannot announce a deleted group");
    }
    let members: Vec<String> = group.members.iter().map(rooms::user).collect();
    if let Err(e) = within(members).leave(room).await {
        tracing::warn!(group = %id, cause = %e, "cannot empty a deleted group's room");
    }
    Ok(())
}

/// Tells every member's sockets what the group is now.
pub(crate) async fn updated<A: Adapter>(
    within: &impl Fn(Vec<String>) -> BroadcastOperators<A>,
    group: &Group,
) {
    let payload = json!({ "group": group });
    if let Err(e) = within(vec![rooms::group(&group.id)])
        .emit(events::GROUP_UPDATED, &payload)
        .await
    {
        tracing::warn!(group = %group.id, cause = %e, "cannot announce a group change");
    }
}
