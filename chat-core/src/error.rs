//! Errors, and the stable codes they become at the edge.

use serde::Serialize;

/// The stable error codes of the protocol (docs/protocol.md, "Acknowledgements and errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The payload is malformed.
    BadRequest,
    /// The credentials are missing, invalid or expired.
    Unauthorized,
    /// The user may not do this.
    Forbidden,
    /// The target does not exist.
    NotFound,
    /// The request clashes with the current state.
    Conflict,
    /// A field is over its limit.
    TooLarge,
    /// Too many requests; retry later.
    RateLimited,
    /// The server cannot take this now; nothing was stored.
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status that goes with the code, for HTTP APIs over the chat (chat-server's
    /// server API answers with it).
    pub fn http_status(self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A refusal to answer a client request, with a message fit for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ChatError {
    /// The stable code.
    pub code: ErrorCode,
    /// A human-readable explanation; never contains internal details.
    pub message: String,
}

impl ChatError {
    /// An error with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// `too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, message)
    }
}

impl From<crate::protocol::InvalidId> for ChatError {
    fn from(e: crate::protocol::InvalidId) -> Self {
        Self::bad_request(e.0)
    }
}

/// Errors of a storage backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store refuses writes because the node is shutting down and would lose them.
    #[error("store is closed")]
    Closed,
    /// The backend cannot be reached or failed; the text is for logs only.
    #[error("backend failure: {0}")]
    Backend(String),
    /// The store keeps no more of this (embedded mode's in-memory caps); the text is for
    /// the client.
    #[error("store is full: {0}")]
    Full(String),
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => Self::new(
                ErrorCode::Unavailable,
                "server is shutting down; reconnect and retry",
            ),
            StoreError::Full(what) => Self::new(ErrorCode::Conflict, what),
            StoreError::Backend(cause) => {
                tracing::warn!(%cause, "store request failed");
                Self::new(
                    ErrorCode::Unavailable,
                    "storage is unavailable; retry later",
                )
            }
        }
    }
}
