//! The registry's admin authentication.

use axum::{extract::FromRequestParts, http::request::Parts};
use chat_env::api::{ApiError, bearer};

use super::Registry;

/// Largest accepted request body (a registration is a few hundred bytes).
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// Proof that the request carries the admin token (`CHAT_ADMIN_TOKEN`). Extracted before
/// the body, so a request without it learns nothing about its payload.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<Registry> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Registry) -> Result<Self, ApiError> {
        bearer(parts, state.admin_token.as_deref(), "CHAT_ADMIN_TOKEN").map(|()| Admin)
    }
}
