//! `GET /api/v1/search`: full-text search in the archive, as a user, in one conversation, or
//! both.

use axum::{
    Json,
    extract::{Query, State},
};
use chat_core::{
    api::SearchResults,
    protocol::{ConversationId, UserId},
};
use chat_env::api::{ApiError, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Api, Authorized, bad_id, schema::MessageSchema};

/// `GET /api/v1/search` query: `q`, and `user`, `conversation` or both.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchQuery {
    /// Web search syntax: words, `"quoted phrases"`, `-excluded`, `or`; 1 to 200 characters.
    q: String,
    /// Search as this user: their DMs and the groups they are a member of now.
    user: Option<String>,
    /// Search this conversation only (with `user`, the user must be in it).
    conversation: Option<String>,
    /// The `cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1–50 (default 20).
    limit: Option<usize>,
}

/// One result: the message and its conversation.
#[derive(Serialize, ToSchema)]
#[schema(as = SearchResult)]
pub(crate) struct ResultSchema {
    conversation: ConversationSchema,
    message: MessageSchema,
}

/// A result's conversation.
#[derive(Serialize, ToSchema)]
#[schema(as = FoundConversation)]
pub(crate) struct ConversationSchema {
    /// `dm:<a>:<b>` or `group:<id>`.
    #[schema(example = "group:ops")]
    id: String,
    /// The group's name, for groups.
    name: Option<String>,
}

/// A page of results, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = SearchResults)]
pub(crate) struct ResultsSchema {
    results: Vec<ResultSchema>,
    /// Present when older messages match: pass it as `cursor` for the next page.
    cursor: Option<String>,
}

/// Full-text search in the archive, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/search",
    tag = "messages",
    params(SearchQuery),
    responses(
        (status = 200, body = ResultsSchema),
        (status = 400, description = "No user nor conversation, a bad id, cursor or limit, an empty query (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token or API off; the user is not in the conversation (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such group (`not_found`)", body = ErrorBody),
        (status = 413, description = "Query over 200 characters (`too_large`)", body = ErrorBody),
        (status = 429, description = "Over the API rate (`rate_limited`)", body = ErrorBody),
        (status = 503, description = "No archive (CHAT_DATABASE_URL unset), or it is unavailable (`unavailable`)", body = ErrorBody),
    )
)]
pub(crate) async fn search(
    _: Authorized,
    State(api): State<Api>,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SearchResults>, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let user = query
        .user
        .map(UserId::parse)
        .transpose()
        .map_err(|e| bad_id("user", e))?;
    let conversation = query
        .conversation
        .map(|c| c.parse::<ConversationId>())
        .transpose()
        .map_err(|e| bad_id("conversation", e))?;
    let results = api
        .chat
        .search(
            user.as_ref(),
            conversation.as_ref(),
            &query.q,
            query.cursor.as_deref(),
            query.limit.unwrap_or(20),
        )
        .await?;
    Ok(Json(results))
}
