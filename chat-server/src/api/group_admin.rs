//! `PATCH /api/v1/groups/{id}`, `DELETE /api/v1/groups/{id}`,
//! `PUT /api/v1/groups/{id}/admins/{user}` and `DELETE /api/v1/groups/{id}/admins/{user}`:
//! the backend's side of `group:update`, `group:delete`, `group:promote` and `group:demote`.

use axum::{
    Json,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
};
use chat_core::{
    api::GroupChange,
    protocol::{GroupId, UserId, Visibility},
};
use chat_env::api::{ApiError, ErrorBody, json_rejection};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{Api, Authorized, MAX_BODY, bad_id, groups::GroupBody};

/// `PATCH /api/v1/groups/{id}` body: at least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    /// The new display name, 1–100 characters.
    #[schema(example = "Core team")]
    name: Option<String>,
    /// The new topic, up to 250 characters; `""` clears it.
    #[schema(example = "Q3 plans")]
    topic: Option<String>,
    /// `public` (found by name, anyone joins) or `private` (members are added).
    #[schema(value_type = Option<String>, example = "private")]
    visibility: Option<Visibility>,
}

/// Renames a group, sets its topic or its visibility; members get `group:updated`.
#[utoipa::path(
    patch,
    path = "/api/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path, description = "The group id")),
    request_body = UpdateBody,
    responses(
        (status = 200, body = GroupBody),
        (status = 400, description = "Malformed body, unknown field, bad id, no field, or an empty name (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such group (`not_found`)", body = ErrorBody),
        (status = 413, description = "Name over 100 or topic over 250 characters, or request over 64 KiB (`too_large`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn update(
    _: Authorized,
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Result<Json<UpdateBody>, JsonRejection>,
) -> Result<Json<GroupBody>, ApiError> {
    let group = GroupId::parse(id).map_err(|e| bad_id("group", e))?;
    let Json(body) = body.map_err(|r| json_rejection(r, MAX_BODY))?;
    let group = api
        .chat
        .update_group(
            &group,
            GroupChange {
                name: body.name.as_deref(),
                topic: body.topic.as_deref(),
                visibility: body.visibility,
            },
        )
        .await?;
    Ok(Json(GroupBody::new(group)))
}

/// Deletes a group and its messages; members get `group:updated` with `deleted: true` and
/// leave it on every node.
#[utoipa::path(
    delete,
    path = "/api/v1/groups/{id}",
    tag = "groups",
    params(("id" = String, Path, description = "The group id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad id (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such group (`not_found`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    _: Authorized,
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let group = GroupId::parse(id).map_err(|e| bad_id("group", e))?;
    api.chat.delete_group(&group).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a member an admin; members get `group:updated`.
#[utoipa::path(
    put,
    path = "/api/v1/groups/{id}/admins/{user}",
    tag = "groups",
    params(
        ("id" = String, Path, description = "The group id"),
        ("user" = String, Path, description = "The member to promote"),
    ),
    responses(
        (status = 200, body = GroupBody),
        (status = 400, description = "Bad id, or the owner (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such group, or the user is not a member (`not_found`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn promote(
    auth: Authorized,
    state: State<Api>,
    path: Path<(String, String)>,
) -> Result<Json<GroupBody>, ApiError> {
    set_admin(auth, state, path, true).await
}

/// Makes an admin a plain member again; members get `group:updated`.
#[utoipa::path(
    delete,
    path = "/api/v1/groups/{id}/admins/{user}",
    tag = "groups",
    params(
        ("id" = String, Path, description = "The group id"),
        ("user" = String, Path, description = "The admin to demote"),
    ),
    responses(
        (status = 200, body = GroupBody),
        (status = 400, description = "Bad id, or the owner (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such group, or the user is not a member (`not_found`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn demote(
    auth: Authorized,
    state: State<Api>,
    path: Path<(String, String)>,
) -> Result<Json<GroupBody>, ApiError> {
    set_admin(auth, state, path, false).await
}

async fn set_admin(
    _: Authorized,
    State(api): State<Api>,
    Path((id, user)): Path<(String, String)>,
    admin: bool,
) -> Result<Json<GroupBody>, ApiError> {
    let group = GroupId::parse(id).map_err(|e| bad_id("group", e))?;
    let user = UserId::parse(user).map_err(|e| bad_id("user", e))?;
    let group = api.chat.set_admin(&group, &user, admin).await?;
    Ok(Json(GroupBody::new(group)))
}
