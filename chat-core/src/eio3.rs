//! Engine.IO 3 clients: socket.io-client 2.x and the clients of its generation, which speak
//! Socket.IO protocol v4. socketioxide speaks their protocol when built with its `v4` feature
//! (engineioxide's `v3`), for every chat, with no switch at run time; the gate here refuses
//! them unless the chat allows them ([`Config::allow_eio3`](crate::Config::allow_eio3)), with
//! the answer they got before the feature was on. How they authenticate:
//! [`Handshake::auth`](crate::auth::Handshake::auth).

use axum::{
    extract::Request,
    http::{StatusCode, Uri, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// What engineioxide (and Node's server, `code` aside) answers a protocol it does not speak.
const UNSUPPORTED: &str = r#"{"code":"5","message":"Unsupported protocol version"}"#;

/// Middleware on the Socket.IO route of a chat that does not allow Engine.IO 3: refuses every
/// request of that protocol with `400` before it reaches socketioxide.
pub(crate) async fn refuse(req: Request, next: Next) -> Response {
    if is_eio3(req.uri()) {
        tracing::debug!("engine.io 3 request refused (allow_eio3 is off)");
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            UNSUPPORTED,
        )
            .into_response();
    }
    next.run(req).await
}

/// Whether a request is Engine.IO 3's: its first `EIO` query parameter is `3`, read the way
/// engineioxide reads it.
fn is_eio3(uri: &Uri) -> bool {
    uri.query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("EIO=")))
        .is_some_and(|v| v == "3")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a request whose (first) `EIO` parameter is exactly `3` is Engine.IO 3's.
    #[test]
    fn recognises_engine_io_3_requests() {
        let eio3 = |uri: &str| is_eio3(&uri.parse().unwrap());
        assert!(eio3("/socket.io/?EIO=3&transport=polling&t=N1"));
        assert!(eio3("/socket.io/?transport=websocket&EIO=3&user=a"));
        assert!(!eio3("/socket.io/?EIO=4&transport=polling"));
        assert!(!eio3("/socket.io/?EIO=4&transport=polling&EIO=3"));
        assert!(!eio3("/socket.io/?EIO=33&transport=polling"));
        assert!(!eio3("/socket.io/?xEIO=3&transport=polling"));
        assert!(!eio3("/socket.io/"));
    }
}
