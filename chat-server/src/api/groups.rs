//! `POST /api/v1/groups`, `POST /api/v1/groups/{id}/members` and
//! `DELETE /api/v1/groups/{id}/members/{user}`.

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
};
use chat_core::protocol::{Group, GroupId, UserId, Visibility};
use chat_env::api::{ApiError, ErrorBody, json_rejection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Api, Authorized, MAX_BODY, bad_id, schema::GroupSchema};

/// `POST /api/v1/groups` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    /// Display name, 1–100 characters.
    #[schema(example = "Team")]
    name: String,
    /// The owner, a member from the start.
    #[schema(example = "alice")]
    owner: String,
    /// Members besides the owner (up to `CHAT_MAX_GROUP_SIZE` in all).
    #[serde(default)]
    #[schema(example = json!(["bob", "carol"]))]
    members: Vec<String>,
    /// `public` (the default: found by name, anyone joins) or `private` (members are added).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "public")]
    visibility: Visibility,
}

/// A group.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GroupBody {
    #[schema(value_type = GroupSchema)]
    group: Group,
}

impl GroupBody {
    pub(crate) fn new(group: Group) -> Self {
        Self { group }
    }
}

/// Creates a group; its members' connected devices join it at once, on every node.
#[utoipa::path(
    post,
    path = "/api/v1/groups",
    tag = "groups",
    request_body = CreateBody,
    responses(
        (status = 201, body = GroupBody),
        (status = 400, description = "Malformed body, unknown field, bad id or empty name (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 409, description = "The owner or a member belongs to too many groups, 1000 (`conflict`); nothing was created", body = ErrorBody),
        (status = 413, description = "Name over 100 characters, more members than `CHAT_MAX_GROUP_SIZE`, or request over 64 KiB (`too_large`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    _: Authorized,
    State(api): State<Api>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<GroupBody>), ApiError> {
    let Json(body) = body.map_err(|r| json_rejection(r, MAX_BODY))?;
    let owner = UserId::parse(body.owner).map_err(|e| bad_id("owner", e))?;
    let members = body
        .members
        .into_iter()
        .map(UserId::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_id("members", e))?;
    let group = api
        .chat
        .create_group(&owner, &body.name, members, body.visibility)
        .await?;
    Ok((StatusCode::CREATED, Json(GroupBody { group })))
}

/// `POST /api/v1/groups/{id}/members` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberBody {
    /// The user to add.
    #[schema(example = "dave")]
    user: String,
}

/// The group after an addition.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Added {
    #[schema(value_type = GroupSchema)]
    group: Group,
    /// False if the user was a member already (nothing changed).
    added: bool,
}

/// Adds a member; their connected devices join the group at once, on every node.
#[utoipa::path(
    post,
    path = "/api/v1/groups/{id}/members",
    tag = "groups",
    params(("id" = String, Path, description = "The group id")),
    request_body = MemberBody,
    responses(
        (status = 200, body = Added),
        (status = 400, description = "Malformed body, unknown field or bad id (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such group (`not_found`)", body = ErrorBody),
        (status = 409, description = "The group is full (`CHAT_MAX_GROUP_SIZE`), or the user belongs to too many groups, 1000 (`conflict`)", body = ErrorBody),
        (status = 413, description = "Request over 64 KiB (`too_large`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn add_member(
    _: Authorized,
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Result<Json<MemberBody>, JsonRejection>,
) -> Result<Json<Added>, ApiError> {
    let group = GroupId::parse(id).map_err(|e| bad_id("group", e))?;
    let Json(body) = body.map_err(|r| json_rejection(r, MAX_BODY))?;
    let user = UserId::parse(body.user).map_err(|e| bad_id("user", e))?;
    let (group, added) = api.chat.add_member(&group, &user).await?;
    Ok(Json(Added { group, added }))
}

/// Removes a member; their devices leave the group at once, on every node.
#[utoipa::path(
    delete,
    path = "/api/v1/groups/{id}/members/{user}",
    tag = "groups",
    params(
        ("id" = String, Path, description = "The group id"),
        ("user" = String, Path, description = "The member to remove"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Bad id (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such group, or the user is not a member (`not_found`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn remove_member(
    _: Authorized,
    State(api): State<Api>,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let group = GroupId::parse(id).map_err(|e| bad_id("group", e))?;
    let user = UserId::parse(user).map_err(|e| bad_id("user", e))?;
    match api.chat.remove_member(&group, &user).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            chat_core::ErrorCode::NotFound,
            "the user is not a member of this group",
        )),
    }
}
