//! Group administration: `group:update`, `group:invite`, `group:kick`, `group:promote`,
//! `group:demote` and `group:delete`, by role ([`Role`]); every change told to the members
//! (`group:updated`, `group:member`) on every node; and `group:find`, the public groups by
//! name. The server API manages groups through the same steps.

use serde::{Deserialize, Serialize};
use serde_json::json;
use socketioxide::{adapter::Adapter, operators::BroadcastOperators};

use super::{Call, Ctx, groups::MAX_NAME};
use crate::{
    error::ChatError,
    keys::rooms,
    protocol::{Group, GroupId, Role, UserId, Visibility, events},
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
    visibility: Option<Visibility>,
}

/// What a group update changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupChange<'a> {
    /// The new name, 1–100 characters.
    pub name: Option<&'a str>,
    /// The new topic, up to 250 characters; `""` clears it.
    pub topic: Option<&'a str>,
    /// Public (found by name, anyone joins) or private (members are added).
    pub visibility: Option<Visibility>,
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
    let change = GroupChange {
        name: req.name.as_deref(),
        topic: req.topic.as_deref(),
        visibility: req.visibility,
    };
    let group = update_group(&call.ctx, &req.group, Some(&call.user), change, |r| {
        socket.within(r)
    })
    .await?;
    Ok(GroupRes { group })
}

/// Renames a group, sets its topic or visibility, as `by` (checked to be an admin), or as
/// the product's backend (`None`); tells the members.
pub(crate) async fn update_group<A: Adapter>(
    ctx: &Ctx,
    id: &GroupId,
    by: Option<&UserId>,
    change: GroupChange<'_>,
    within: impl Fn(Vec<String>) -> BroadcastOperators<A>,
) -> Result<Group, ChatError> {
    let GroupChange {
        name,
        topic,
        visibility,
    } = change;
    if name.is_none() && topic.is_none() && visibility.is_none() {
        return Err(ChatError::bad_request(
            "give a name, a topic or a visibility",
        ));
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
        .update(id, name.as_deref(), topic, visibility)
        .await?
        .ok_or_else(|| ChatError::not_found("no such group"))?;
    updated(&within, &group).await;
    Ok(group)
}

/// `group:invite`: adds a user to the group (owner and admins): how members join a private
/// group.
pub(crate) async fn invite<A: Adapter>(
    call: Call<A>,
    req: MemberReq,
) -> Result<GroupRes, ChatError> {
    let ctx = &*call.ctx;
    with_role(ctx, &req.group, &call.user, Role::Admin).await?;
    let socket = call.socket.clone();
    let (group, _) =
        super::groups::add_member(ctx, &req.group, &req.user, |r| socket.within(r)).await?;
    Ok(GroupRes { group })
}

/// Most groups per `group:find` page, and the default.
const FIND_MAX: usize = 50;
const FIND_DEFAULT: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FindReq {
    #[serde(default)]
    prefix: String,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// A public group as `group:find` shows it to anyone: not its members.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FoundGroup {
    id: GroupId,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    member_count: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct FindRes {
    groups: Vec<FoundGroup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// `group:find`: public groups whose name starts with `prefix` (any case), by name, paged.
pub(crate) async fn find<A: Adapter>(call: Call<A>, req: FindReq) -> Result<FindRes, ChatError> {
    let limit = req.limit.unwrap_or(FIND_DEFAULT);
    if !(1..=FIND_MAX).contains(&limit) {
        return Err(ChatError::bad_request(format!(
            "limit must be 1 to {FIND_MAX}"
        )));
    }
    let prefix = checked(&req.prefix, "prefix", MAX_NAME, true)?.to_lowercase();
    let after = match &req.cursor {
        Some(c) => Some(
            hex::decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|a| a.starts_with(&prefix))
                .ok_or_else(|| ChatError::bad_request("bad cursor"))?,
        ),
        None => None,
    };
    let (groups, next) = call
        .ctx
        .stores
        .groups
        .find(&prefix, after.as_deref(), limit)
        .await?;
    Ok(FindRes {
        groups: groups
            .into_iter()
            .map(|g| FoundGroup {
                member_count: g.members.len(),
                id: g.id,
                name: g.name,
                topic: g.topic,
            })
            .collect(),
        cursor: next.map(hex::encode),
    })
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
