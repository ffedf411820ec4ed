//! The app's own routes: sign-in, sign-out, a system message, the page at `/`.

use axum::{
    Form, Json,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use chat_core::{
    ChatError, ChatHandle, ErrorCode,
    api::{Post, Target},
    protocol::{GroupId, UserId},
};
use serde::Deserialize;
use serde_json::json;

use crate::sessions::{Sessions, clear_cookie, set_cookie};

/// What the routes share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub sessions: Sessions,
    pub chat: ChatHandle,
}

/// `POST /login` body: JSON or a form.
#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    user: String,
}

/// `POST /announce-system` body: exactly one of `to` (a user) or `group`, as `message:send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Announce {
    to: Option<String>,
    group: Option<String>,
    body: String,
}

/// Signs in as any valid user id, no password: a stand-in for the app's real sign-in.
pub(crate) async fn login(State(app): State<AppState>, req: Request) -> Response {
    let login = match read_login(req).await {
        Ok(login) => login,
        Err(e) => return e,
    };
    let user = match UserId::parse(login.user) {
        Ok(user) => user,
        Err(e) => return error(ChatError::from(e)),
    };
    let id = app.sessions.create(user.clone());
    tracing::info!(user = %user, "signed in");
    let cookie = [(header::SET_COOKIE, set_cookie(&id))];
    (cookie, Json(json!({ "user": user }))).into_response()
}

/// Signs the session out. Sockets it opened stay connected until they close; a real app
/// would disconnect them (`ChatHandle::disconnect_user` does, for all of a user's devices).
pub(crate) async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let user = crate::sessions::session_id(&headers).and_then(|id| app.sessions.remove(id));
    if let Some(user) = &user {
        tracing::info!(user = %user, "signed out");
    }
    let cookie = [(header::SET_COOKIE, clear_cookie())];
    (cookie, StatusCode::NO_CONTENT).into_response()
}

/// Posts a system message (sender `@system`) for any signed-in session. A real app would
/// check that the session's user may (an admin role); the example does not.
pub(crate) async fn announce_system(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Announce>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(user) = app.sessions.from_headers(&headers) else {
        return error(ChatError::new(ErrorCode::Unauthorized, "log in first"));
    };
    let Json(req) = match body {
        Ok(body) => body,
        Err(e) => return error(ChatError::bad_request(e.body_text())),
    };
    let to = match (req.to, req.group) {
        (Some(to), None) => UserId::parse(to).map(Target::User),
        (None, Some(group)) => GroupId::parse(group).map(Target::Group),
        _ => {
            return error(ChatError::bad_request(
                "give exactly one of `to` or `group`",
            ));
        }
    };
    let to = match to {
        Ok(to) => to,
        Err(e) => return error(e.into()),
    };
    let post = Post {
        from: None,
        to,
        body: req.body,
        client_id: None,
    };
    match app.chat.send_message(post).await {
        Ok(sent) => {
            tracing::info!(by = %user, id = %sent.message.id, "system message posted");
            let body = json!({ "message": sent.message, "duplicate": sent.duplicate });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e) => error(e),
    }
}

/// The page at `/`: what the routes are, and how to try them from the browser console.
pub(crate) async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

/// `POST /login`'s body as JSON (`content-type: application/json`) or as a form.
async fn read_login(req: Request) -> Result<Login, Response> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let bad = |text: String| error(ChatError::bad_request(text));
    if json {
        let Json(login) = Json::<Login>::from_request(req, &())
            .await
            .map_err(|e| bad(e.body_text()))?;
        Ok(login)
    } else {
        let Form(login) = Form::<Login>::from_request(req, &())
            .await
            .map_err(|e| bad(e.body_text()))?;
        Ok(login)
    }
}

/// An error as the chat's own HTTP API answers them: `{error: {code, message}}`, with the
/// status that goes with the code.
fn error(e: ChatError) -> Response {
    let body = json!({ "error": { "code": e.code, "message": e.message } });
    (e.code.http_status(), Json(body)).into_response()
}
