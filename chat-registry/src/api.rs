//! The registry's HTTP surface: routes, handlers and the OpenAPI document.

use axum::{
    Json, Router,
    extract::{Path, State, rejection::JsonRejection},
    http::{HeaderValue, Method, StatusCode, header},
    response::IntoResponse,
    routing::{delete, get},
};
use serde::{Deserialize, Serialize};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    trace::{DefaultOnFailure, TraceLayer},
};
use tracing::Level;
use utoipa::{OpenApi, ToSchema};

use super::{
    Registry,
    admin::{Admin, MAX_BODY},
    table::{Pick, Picked, Registered, Registration, Server, Source},
};
use chat_core::ErrorCode;
use chat_env::api::{ApiError, BearerScheme, ErrorBody, json_rejection};

/// `GET /api/v1/servers` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerList {
    /// Every node with a record, sorted by id.
    servers: Vec<Server>,
}

/// `POST /api/v1/servers` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// Node name: 1–64 characters of `[A-Za-z0-9_.-]`.
    #[schema(example = "chat-static-1")]
    id: String,
    /// Absolute `http://` or `https://` URL clients connect to.
    #[schema(example = "http://10.0.0.5:3000")]
    url: String,
    /// Connections it is meant to hold (1 to 10,000,000).
    #[schema(example = 10000)]
    capacity: u64,
}

/// `DELETE /api/v1/servers/{id}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Drained {
    /// Uids of the records now draining.
    drained: Vec<String>,
}

/// `GET /healthz` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The least-loaded live node; counts the pick against it.
#[utoipa::path(
    get,
    path = "/api/v1/servers/pick",
    tag = "servers",
    responses(
        (status = 200, description = "Connect to this node", body = Picked),
        (status = 503, description = "No node can take clients (`unavailable`): none is live \
            and pickable, every pickable node holds its capacity (message `every chat server \
            is at capacity; retry shortly`), or Redis is unreachable. `Retry-After: 1`", body = ErrorBody),
    )
)]
async fn pick(State(r): State<Registry>) -> Result<impl IntoResponse, ApiError> {
    let m = &r.metrics;
    let picked = r
        .table
        .pick()
        .await
        .inspect_err(|_| m.failures[2].increment(1))
        .map_err(unreachable)?;
    match picked {
        // Each pick is for one client, now: never cached.
        Pick::Picked(p) => {
            m.picks.increment(1);
            Ok(([(header::CACHE_CONTROL, "no-store")], Json(p)))
        }
        Pick::AtCapacity => {
            m.failures[1].increment(1);
            Err(ApiError::unavailable(AT_CAPACITY))
        }
        Pick::NoNode => {
            m.failures[0].increment(1);
            Err(ApiError::unavailable(
                "no chat server can take clients now; retry shortly",
            ))
        }
    }
}

/// The message of a pick refused because every pickable node holds its capacity.
pub const AT_CAPACITY: &str = "every chat server is at capacity; retry shortly";

/// Every registered node, with its load and state.
#[utoipa::path(
    get,
    path = "/api/v1/servers",
    tag = "servers",
    responses(
        (status = 200, body = ServerList),
        (status = 503, description = "Redis is unreachable (`unavailable`)", body = ErrorBody),
    )
)]
async fn list(State(r): State<Registry>) -> Result<Json<ServerList>, ApiError> {
    Ok(Json(ServerList {
        servers: r.table.list().await.map_err(unreachable)?,
    }))
}

/// Registers a node by hand (or replaces the admin registration with this id, which also
/// ends its drain). It has no heartbeat: it is live until the health checker removes it.
#[utoipa::path(
    post,
    path = "/api/v1/servers",
    tag = "admin",
    request_body = RegisterBody,
    security(("admin" = [])),
    responses(
        (status = 201, description = "Registered", body = Server),
        (status = 200, description = "Registration replaced", body = Server),
        (status = 400, description = "Malformed body (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token (`forbidden`)", body = ErrorBody),
        (status = 409, description = "A self-registered node has this id (`conflict`)", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB (`too_large`)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
async fn register(
    _: Admin,
    State(r): State<Registry>,
    body: Result<Json<RegisterBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Server>), ApiError> {
    let Json(body) = body.map_err(|r| json_rejection(r, MAX_BODY))?;
    let reg = validate(body)?;
    let (status, uid) = match r.table.register(&reg).await.map_err(unreachable)? {
        Registered::Created(uid) => (StatusCode::CREATED, uid),
        Registered::Updated(uid) => (StatusCode::OK, uid),
        Registered::Conflict => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                format!("a self-registered node is named {:?}", reg.id),
            ));
        }
    };
    tracing::info!(id = %reg.id, url = %reg.url, capacity = reg.capacity, "node registered by an admin");
    let server = r
        .table
        .list()
        .await
        .map_err(unreachable)?
        .into_iter()
        .find(|s| s.uid == uid)
        // Another admin changed it in between: answer with what this request wrote.
        .unwrap_or(Server {
            id: reg.id,
            uid,
            url: Some(reg.url),
            load: 0.0,
            connections: 0,
            provisional: 0.0,
            capacity: reg.capacity,
            draining: false,
            live: true,
            removed: false,
            source: Source::Admin,
            version: None,
        });
    Ok((status, Json(server)))
}

/// Drains the node(s) with this name or uid: no new clients are sent there. The nodes
/// themselves keep their sockets.
#[utoipa::path(
    delete,
    path = "/api/v1/servers/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "Node name or uid")),
    security(("admin" = [])),
    responses(
        (status = 200, description = "Draining", body = Drained),
        (status = 400, description = "Malformed id (`bad_request`)", body = ErrorBody),
        (status = 401, description = "No bearer token (`unauthorized`)", body = ErrorBody),
        (status = 403, description = "Wrong token (`forbidden`)", body = ErrorBody),
        (status = 404, description = "No such node (`not_found`)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
async fn drain(
    _: Admin,
    State(r): State<Registry>,
    Path(id): Path<String>,
) -> Result<Json<Drained>, ApiError> {
    if !is_name(&id) {
        return Err(ApiError::bad_request(
            "a node id is 1-64 characters of [A-Za-z0-9_.-]",
        ));
    }
    let drained = r.table.drain(&id).await.map_err(unreachable)?;
    if drained.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no node is named {id:?}"),
        ));
    }
    tracing::info!(%id, uids = ?drained, "node drained by an admin");
    Ok(Json(Drained { drained }))
}

/// Answers while Redis does.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody))
)]
async fn healthz(State(r): State<Registry>) -> Result<Json<Health>, ApiError> {
    r.table.redis().ping().await.map_err(unreachable)?;
    Ok(Json(Health { status: "ok" }))
}

/// The OpenAPI document of this API.
/// The bearer scheme the documented routes need.
const ADMIN_AUTH: BearerScheme = BearerScheme("admin");

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "chat-registry",
        description = "Which chat server a client should connect to. Errors are \
                       `{\"error\": {\"code\", \"message\"}}` with a stable code."
    ),
    paths(pick, list, register, drain, healthz),
    modifiers(&ADMIN_AUTH),
    tags(
        (name = "servers", description = "Picking and listing nodes"),
        (name = "admin", description = "Needs `Authorization: Bearer $CHAT_ADMIN_TOKEN`"),
    )
)]
pub struct ApiDoc;

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}

/// The registry's routes with CORS and request tracing, for `registry` (see [`super::run`]).
pub fn app(registry: Registry) -> Router {
    let cors = cors(registry.cors_origins.as_deref());
    Router::new()
        .route("/api/v1/servers/pick", get(pick))
        .route("/api/v1/servers", get(list).post(register))
        .route("/api/v1/servers/{id}", delete(drain))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(async || {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::BadRequest,
                "method not allowed on this route",
            )
        })
        .with_state(registry)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(cors)
        // A 503 is an ordinary answer here (no node free, Redis away: logged once where it
        // happens), not an error line per request.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
}

/// Browsers may call the API from the listed origins (any when unset or `*`). No
/// credentials: the admin token travels in a header, never in a cookie.
fn cors(origins: Option<&[String]>) -> CorsLayer {
    let allow = match origins {
        Some(list) if !list.iter().any(|o| o == "*") => AllowOrigin::list(
            list.iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        ),
        _ => AllowOrigin::any(),
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// The node table could not be read or written.
fn unreachable(e: ::redis::RedisError) -> ApiError {
    tracing::warn!(cause = %e, "registry: redis request failed");
    ApiError::unavailable("the node table is unreachable; retry later")
}

/// 1–64 characters of `[A-Za-z0-9_.-]`: node names and uids.
fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks a registration field by field; the message names the field.
fn validate(body: RegisterBody) -> Result<Registration, ApiError> {
    if !is_name(&body.id) {
        return Err(ApiError::bad_request(
            "id: 1-64 characters of [A-Za-z0-9_.-]",
        ));
    }
    let url = body.url.trim();
    let uri_ok = url.len() <= 2048
        && url.parse::<http::Uri>().is_ok_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https"))
                && u.authority().is_some_and(|a| !a.host().is_empty())
        });
    if !uri_ok {
        return Err(ApiError::bad_request(
            "url: an absolute http:// or https:// URL with a host",
        ));
    }
    if !(1..=10_000_000).contains(&body.capacity) {
        return Err(ApiError::bad_request("capacity: 1 to 10000000"));
    }
    Ok(Registration {
        id: body.id,
        url: url.trim_end_matches('/').to_owned(),
        capacity: body.capacity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(id: &str, url: &str, capacity: u64) -> RegisterBody {
        RegisterBody {
            id: id.into(),
            url: url.into(),
            capacity,
        }
    }

    #[test]
    fn registrations_are_checked_field_by_field() {
        let ok = validate(body("n-1.a_b", " https://h.example:3000/ ", 5)).unwrap();
        assert_eq!(ok.url, "https://h.example:3000");
        for (b, field) in [
            (body("", "http://h", 1), "id"),
            (body("a b", "http://h", 1), "id"),
            (body(&"x".repeat(65), "http://h", 1), "id"),
            (body("a", "ftp://h", 1), "url"),
            (body("a", "/relative", 1), "url"),
            (body("a", "http://", 1), "url"),
            (body("a", "http://h", 0), "capacity"),
            (body("a", "http://h", 10_000_001), "capacity"),
        ] {
            let err = validate(b).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert!(err.message().starts_with(field), "{}", err.message());
        }
    }

    #[test]
    fn the_openapi_document_covers_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for path in [
            "/api/v1/servers/pick",
            "/api/v1/servers",
            "/api/v1/servers/{id}",
            "/healthz",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["admin"]["scheme"],
            "bearer"
        );
    }
}
