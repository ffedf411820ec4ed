//! What the binaries' HTTP APIs share: errors at the edge (`{error: {code, message}}` with a
//! stable code and the matching status) and bearer-token checks in constant time.

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::{
    Modify, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use chat_core::{ChatError, ErrorCode};

/// A refused request: its status and `{error: {code, message}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `too_large`, `rate_limited` or `unavailable`.
    #[schema(value_type = String, example = "unavailable")]
    code: ErrorCode,
    /// For people; never holds internal details.
    message: String,
}

impl ApiError {
    /// A refusal with this status and code.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// `400 bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }

    /// `413 too_large`: a request body over `max_body` bytes.
    pub fn too_large(max_body: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!("the body is over {max_body} bytes"),
        )
    }

    /// `503 unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            message,
        )
    }
}

/// A JSON body that did not parse (`400`, naming the problem) or was over the body limit
/// (`413`, `too_large`).
pub fn json_rejection(r: JsonRejection, max_body: usize) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::too_large(max_body);
    }
    ApiError::bad_request(r.body_text())
}

/// The chat's refusals keep their code, with the status that goes with it.
impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        Self::new(e.code.http_status(), e.code, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

/// Checks `Authorization: Bearer <token>` against `expected` in constant time (the
/// comparison does not tell how much of the token matched): `401` without the header (or
/// with another scheme), `403` with a wrong token, and `403` for every token when
/// `expected` is unset (`var` names the variable that turns the routes on). The scheme is
/// matched without regard to case, as HTTP defines it (RFC 9110, 11.1): `bearer` works too.
pub fn bearer(parts: &Parts, expected: Option<&str>, var: &str) -> Result<(), ApiError> {
    // Off is off, whatever the request carries.
    let Some(token) = expected else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("these routes are off: {var} is not set"),
        ));
    };
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            format!("send Authorization: Bearer <token> (the token is {var})"),
        ));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(given) = given else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "the Authorization header must be Bearer <token>",
        ));
    };
    match bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        true => Ok(()),
        false => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "wrong token",
        )),
    }
}

/// An OpenAPI modifier declaring the bearer security scheme named by its field (`api`,
/// `admin`...), which the documented routes refer to.
#[derive(Debug)]
pub struct BearerScheme(pub &'static str);

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            self.0,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn check(authorization: Option<&str>, expected: Option<&str>) -> Result<(), StatusCode> {
        let mut req = Request::builder();
        if let Some(value) = authorization {
            req = req.header(header::AUTHORIZATION, value);
        }
        let (parts, ()) = req.body(()).unwrap_or_default().into_parts();
        bearer(&parts, expected, "CHAT_TEST_TOKEN").map_err(|e| e.status())
    }

    /// The scheme is case-insensitive (RFC 9110); the token is not.
    #[test]
    fn bearer_scheme_in_any_case_token_exactly() {
        let token = Some("0123456789abcdef");
        for ok in [
            "Bearer 0123456789abcdef",
            "bearer 0123456789abcdef",
            "BEARER  0123456789abcdef",
        ] {
            assert_eq!(check(Some(ok), token), Ok(()), "{ok}");
        }
        assert_eq!(check(None, token), Err(StatusCode::UNAUTHORIZED));
        for unauthorized in ["Basic 0123456789abcdef", "0123456789abcdef", "Bearer"] {
            assert_eq!(
                check(Some(unauthorized), token),
                Err(StatusCode::UNAUTHORIZED),
                "{unauthorized}"
            );
        }
        for forbidden in ["Bearer 0123456789ABCDEF", "Bearer wrong", "Bearer "] {
            assert_eq!(
                check(Some(forbidden), token),
                Err(StatusCode::FORBIDDEN),
                "{forbidden}"
            );
        }
        // Off: 403 to any request, with a header or without.
        for header in [Some("Bearer 0123456789abcdef"), None] {
            assert_eq!(check(header, None), Err(StatusCode::FORBIDDEN));
        }
    }
}
