//! `POST /api/v1/messages` and `GET /api/v1/conversations/{id}/messages`.

use axum::{
    Json,
    extract::{Path, Query, State, rejection::JsonRejection},
    http::StatusCode,
};
use chat_core::{
    api::{Post, Sent, Target},
    protocol::{ConversationId, GroupId, Message, MessageId, UserId},
};
use chat_env::api::{ApiError, ErrorBody, json_rejection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Api, Authorized, MAX_BODY, bad_id, schema::MessageSchema};

/// `POST /api/v1/messages` body: exactly one of `to` and `group`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PostBody {
    /// The sender (a user id); omitted, a system message (sender `@system`).
    #[schema(example = "alice")]
    from: Option<String>,
    /// A user: a DM (from the system: the user's DM with `@system`).
    #[schema(example = "bob")]
    to: Option<String>,
    /// A group id.
    group: Option<String>,
    /// The text, 1 to `CHAT_MAX_BODY` characters (4000 by default).
    body: String,
    /// Idempotency key (1–64 characters): the same `(from, clientId)` answers the first
    /// message again, with `duplicate: true`, for 24 hours.
    client_id: Option<String>,
}

/// A posted message.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Posted {
    #[schema(value_type = MessageSchema)]
    message: Message,
    /// The message had been posted before with this `clientId`: this is the first one,
    /// nothing new was stored or delivered.
    duplicate: bool,
}

/// Posts a message as a user or as the system; stored, then delivered live to every
/// connected device of its recipients on every node.
#[utoipa::path(
    post,
    path = "/api/v1/messages",
    tag = "messages",
    request_body = PostBody,
    responses(
        (status = 201, description = "Stored and delivered (or, with `duplicate`, stored before)", body = Posted),
        (status = 400, description = "Malformed body, unknown field, bad id, empty body, both or neither of `to` and `group` (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token, API off, the sender is blocked or not a member (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such group (`not_found`)", body = ErrorBody),
        (status = 409, description = "The `clientId` was used for a different message (`conflict`)", body = ErrorBody),
        (status = 413, description = "Body over `CHAT_MAX_BODY` characters or request over 64 KiB (`too_large`)", body = ErrorBody),
        (status = 429, description = "Over the API rate or the sender's message rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`); nothing was stored", body = ErrorBody),
    )
)]
pub(crate) async fn post_message(
    _: Authorized,
    State(api): State<Api>,
    body: Result<Json<PostBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Posted>), ApiError> {
    let Json(body) = body.map_err(|r| json_rejection(r, MAX_BODY))?;
    let from = body
        .from
        .map(UserId::parse)
        .transpose()
        .map_err(|e| bad_id("from", e))?;
    let to = match (body.to, body.group) {
        (Some(to), None) => Target::User(UserId::parse(to).map_err(|e| bad_id("to", e))?),
        (None, Some(g)) => Target::Group(GroupId::parse(g).map_err(|e| bad_id("group", e))?),
        _ => return Err(ApiError::bad_request("give exactly one of `to` or `group`")),
    };
    let Sent { message, duplicate } = api
        .chat
        .send_message(Post {
            from,
            to,
            body: body.body,
            client_id: body.client_id,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Posted { message, duplicate })))
}

/// `GET /api/v1/conversations/{id}/messages` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Only messages older than this id (`<ms>-<seq>`); omitted, the newest.
    before: Option<String>,
    /// Page size, 1–100 (default 50).
    limit: Option<usize>,
}

/// A page of history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page {
    /// Oldest first.
    #[schema(value_type = Vec<MessageSchema>)]
    messages: Vec<Message>,
    /// Older messages exist: ask again with `before` = the first id.
    has_more: bool,
}

/// A page of a conversation's history, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}/messages",
    tag = "messages",
    params(
        ("id" = String, Path, description = "`dm:<a>:<b>` (user ids sorted) or `group:<id>`", example = "dm:alice:bob"),
        HistoryQuery,
    ),
    responses(
        (status = 200, body = Page),
        (status = 400, description = "Bad conversation id, cursor or limit (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such group (`not_found`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "Storage unavailable (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn history(
    _: Authorized,
    State(api): State<Api>,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let conversation: ConversationId = id.parse().map_err(|e| bad_id("conversation", e))?;
    let before = query
        .before
        .map(|b| b.parse::<MessageId>())
        .transpose()
        .map_err(|e| bad_id("before", e))?;
    let (messages, has_more) = api
        .chat
        .history(&conversation, before, query.limit.unwrap_or(50))
        .await?;
    Ok(Json(Page { messages, has_more }))
}
