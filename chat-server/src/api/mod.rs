//! The server API over HTTP (`docs/api.md`): what the product's backend does to the chat,
//! under `/api/v1` behind `Authorization: Bearer $CHAT_API_TOKEN`, calling the Rust server
//! API on [`ChatHandle`] (chat-core's `api` module), which runs the socket path's checks.
//!
//! Every route but the OpenAPI document needs the token (unset: every route answers `403`),
//! spends one token of the node's API rate (`CHAT_API_RATE`; past it `429`), takes bodies
//! up to [`MAX_BODY`] and refuses unknown fields. Errors are `{"error": {"code", "message"}}`
//! with the protocol's codes.

mod group_admin;
mod groups;
mod messages;
mod schema;
mod search;
mod users;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
    response::IntoResponse,
    routing::{delete, get, patch, post, put},
};
use chat_core::{
    ChatHandle, ErrorCode, config::Rate, error::ChatError, store::memory::TokenBuckets,
};
use chat_env::api::{ApiError, BearerScheme, bearer};
use utoipa::OpenApi;

/// Largest request body: a message of the longest body, with room for escapes.
pub const MAX_BODY: usize = 64 * 1024;

/// The API's settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The bearer token (`CHAT_API_TOKEN`); `None` turns every route off (`403`).
    pub token: Option<String>,
    /// Requests per second this node takes, all callers together (`CHAT_API_RATE`, default
    /// 1000, bursts of twice that).
    pub rate: Rate,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            token: None,
            rate: Rate::new(1000.0, 2000),
        }
    }
}

/// What the API's handlers share.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    chat: ChatHandle,
    token: Option<Arc<str>>,
    rate: Rate,
    buckets: Arc<TokenBuckets>,
}

/// Proof that a request carries the API token and fits in the rate. Extracted before the
/// body, so a request without the token learns nothing about its payload.
#[derive(Debug)]
pub(crate) struct Authorized;

impl FromRequestParts<Api> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        bearer(parts, api.token.as_deref(), "CHAT_API_TOKEN")?;
        if !api.buckets.try_acquire("api", api.rate) {
            return Err(
                ChatError::new(ErrorCode::RateLimited, "too many requests; slow down").into(),
            );
        }
        Ok(Authorized)
    }
}

/// The OpenAPI document of the server API.
/// The bearer scheme the documented routes need.
const API_AUTH: BearerScheme = BearerScheme("api");

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "chat-server API",
        description = "What the product's backend does to the chat: post messages (as a user \
                       or as the system), manage groups, read history, search and presence, disconnect \
                       and ban users, announce. Every route needs `Authorization: Bearer \
                       $CHAT_API_TOKEN`. Errors are `{\"error\": {\"code\", \"message\"}}` with \
                       the socket protocol's codes."
    ),
    paths(
        messages::post_message,
        messages::history,
        search::search,
        groups::create,
        groups::add_member,
        groups::remove_member,
        group_admin::update,
        group_admin::delete,
        group_admin::promote,
        group_admin::demote,
        users::presence,
        users::disconnect,
        users::announce,
    ),
    modifiers(&API_AUTH),
    security(("api" = [])),
    tags(
        (name = "messages", description = "Posting and reading messages"),
        (name = "groups", description = "Groups, their members and admins"),
        (name = "users", description = "Presence, disconnecting and banning, announcements"),
    )
)]
pub struct ApiDoc;

/// The routes under `/api/v1`, for `chat`.
pub fn router(chat: ChatHandle, config: &ApiConfig) -> Router {
    let api = Api {
        chat,
        token: config.token.as_deref().map(Arc::from),
        rate: config.rate,
        buckets: Arc::new(TokenBuckets::default()),
    };
    let routes = Router::new()
        .route("/messages", post(messages::post_message))
        .route("/conversations/{id}/messages", get(messages::history))
        .route("/search", get(search::search))
        .route("/groups", post(groups::create))
        .route("/groups/{id}/members", post(groups::add_member))
        .route("/groups/{id}/members/{user}", delete(groups::remove_member))
        .route(
            "/groups/{id}",
            patch(group_admin::update).delete(group_admin::delete),
        )
        .route(
            "/groups/{id}/admins/{user}",
            put(group_admin::promote).delete(group_admin::demote),
        )
        .route("/presence", get(users::presence))
        .route("/users/{id}/disconnect", post(users::disconnect))
        .route("/announcements", post(users::announce))
        .route("/openapi.json", get(openapi))
        // Scoped to /api/v1 by `nest`: the web page keeps the app's own fallback.
        .fallback(not_found)
        .method_not_allowed_fallback(async || {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::BadRequest,
                "method not allowed on this route",
            )
        })
        .with_state(api)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY));
    Router::new().nest("/api/v1", routes)
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}

/// A path or query id that does not parse.
fn bad_id(what: &str, e: chat_core::protocol::InvalidId) -> ApiError {
    ApiError::bad_request(format!("{what}: {}", e.0))
}

#[cfg(test)]
mod tests;
