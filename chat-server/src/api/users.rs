//! `GET /api/v1/presence`, `POST /api/v1/users/{id}/disconnect` and
//! `POST /api/v1/announcements`.

use std::{collections::BTreeMap, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::{
        Path, Query, State,
        rejection::{BytesRejection, JsonRejection},
    },
    http::StatusCode,
};
use chat_core::{
    api::Announcement,
    protocol::{PresenceState, UserId},
};
use chat_env::api::{ApiError, ErrorBody, json_rejection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Api, Authorized, MAX_BODY, bad_id, schema::PresenceSchema};

/// `GET /api/v1/presence` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PresenceQuery {
    /// Comma-separated user ids, 1 to 100.
    #[param(example = "alice,bob")]
    users: String,
}

/// Presence by user id.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PresenceBody {
    #[schema(value_type = BTreeMap<String, PresenceSchema>)]
    presence: BTreeMap<String, PresenceState>,
}

/// Whether each user has a connected device, on any node, and when they were last seen.
#[utoipa::path(
    get,
    path = "/api/v1/presence",
    tag = "users",
    params(PresenceQuery),
    responses(
        (status = 200, body = PresenceBody),
        (status = 400, description = "No users, more than 100, or a bad id (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn presence(
    _: Authorized,
    State(api): State<Api>,
    query: Result<Query<PresenceQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PresenceBody>, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let mut users = query
        .users
        .split(',')
        .map(|u| UserId::parse(u.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_id("users", e))?;
    users.sort();
    users.dedup();
    let states = api.chat.presence(&users).await?;
    let presence = users
        .into_iter()
        .map(|u| u.to_string())
        .zip(states)
        .collect();
    Ok(Json(PresenceBody { presence }))
}

/// `POST /api/v1/users/{id}/disconnect` body (may be empty).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct DisconnectBody {
    /// Also refuse the user's connections for this long (1 to 31,536,000 seconds): their
    /// `connect_error` says `banned: until <ms>`.
    #[schema(example = 3600)]
    ban_seconds: Option<u64>,
}

/// How many sockets were disconnected.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Disconnected {
    /// Sockets of the user, on every node, that were disconnected.
    disconnected: usize,
}

/// Disconnects every device of a user on every node, and optionally bans them.
#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/disconnect",
    tag = "users",
    params(("id" = String, Path, description = "The user id")),
    request_body(content = Option<DisconnectBody>, description = "Optional; an empty body disconnects without a ban"),
    responses(
        (status = 200, body = Disconnected),
        (status = 400, description = "Bad id, malformed body or `banSeconds` out of range (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage or a node unavailable (`unavailable`); the ban, if asked, may be stored: retry", body = ErrorBody),
    )
)]
pub(crate) async fn disconnect(
    _: Authorized,
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Disconnected>, ApiError> {
    let user = UserId::parse(id).map_err(|e| bad_id("user", e))?;
    let body = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(MAX_BODY),
        _ => ApiError::bad_request(r.body_text()),
    })?;
    let body: DisconnectBody = match body.is_empty() {
        true => DisconnectBody::default(),
        false => serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let ban = body.ban_seconds.map(Duration::from_secs);
    let disconnected = api.chat.disconnect_user(&user, ban).await?;
    Ok(Json(Disconnected { disconnected }))
}

/// `POST /api/v1/announcements` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnnounceBody {
    /// The text, 1 to `CHAT_MAX_BODY` characters.
    #[schema(example = "Maintenance at 22:00 UTC")]
    body: String,
}

/// What every connected client got as `announcement`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Announced {
    /// The text.
    body: String,
    /// Server time, ms since the epoch.
    ts: u64,
}

/// Sends `announcement {body, ts}` once to every connected client of every node.
#[utoipa::path(
    post,
    path = "/api/v1/announcements",
    tag = "users",
    request_body = AnnounceBody,
    responses(
        (status = 202, description = "Sent to every node's clients", body = Announced),
        (status = 400, description = "Malformed body, unknown field, empty or too long body (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "A node could not be reached (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn announce(
    _: Authorized,
    State(api): State<Api>,
    body: Result<Json<AnnounceBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Announced>), ApiError> {
    let Json(body) = body.map_err(|r| json_rejection(r, MAX_BODY))?;
    let Announcement { body, ts } = api.chat.announce(&body.body).await?;
    Ok((StatusCode::ACCEPTED, Json(Announced { body, ts })))
}
