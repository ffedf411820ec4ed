//! The app on a random loopback port, and an HTTP client that signs in.

use std::net::SocketAddr;

use axum::{
    body::Bytes,
    http::{Method, Request, StatusCode, header},
};
use chat_example_embed::{Sessions, WordList};
use chat_testing::Client;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client as HttpClient, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The words the test app refuses.
pub const WORDS: [&str; 2] = ["spam", "scam"];

/// The example app, served in process.
pub struct TestApp {
    pub addr: SocketAddr,
    http: HttpClient<HttpConnector, Full<Bytes>>,
}

impl TestApp {
    /// The app with [`WORDS`] listed, on `127.0.0.1:0`.
    pub async fn start() -> TestApp {
        // RUST_LOG=debug shows the app's logs under the failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let sessions = Sessions::default();
        let chat = chat_example_embed::chat(
            chat_core::Config::default(),
            sessions.clone(),
            WordList::new(WORDS),
        )
        .await
        .expect("build chat");
        let app = chat_example_embed::app(&chat, sessions);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = HttpClient::builder(TokioExecutor::new()).build_http();
        TestApp { addr, http }
    }

    /// Sends a request; the status, the `Set-Cookie` headers and the body as JSON (`Null`
    /// when empty).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        content_type: &str,
        body: String,
    ) -> (StatusCode, Vec<String>, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header(header::CONTENT_TYPE, content_type);
        if let Some(cookie) = cookie {
            req = req.header(header::COOKIE, cookie);
        }
        let res = self
            .http
            .request(req.body(Full::from(body)).unwrap())
            .await
            .expect("http request");
        let status = res.status();
        let cookies = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = match bytes.is_empty() {
            true => Value::Null,
            false => serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        };
        (status, cookies, body)
    }

    /// POSTs `body` as JSON, with `cookie` if given.
    pub async fn post(&self, path: &str, cookie: Option<&str>, body: Value) -> (StatusCode, Value) {
        let (status, _, body) = self
            .request(
                Method::POST,
                path,
                cookie,
                "application/json",
                body.to_string(),
            )
            .await;
        (status, body)
    }

    /// Signs in as `user`; the `Cookie` header value a browser would send back.
    pub async fn login(&self, user: &str) -> String {
        let body = json!({ "user": user }).to_string();
        let (status, cookies, res) = self
            .request(Method::POST, "/login", None, "application/json", body)
            .await;
        assert_eq!(status, StatusCode::OK, "{res}");
        cookie_of(&cookies)
    }

    /// Connects a Socket.IO client sending `cookie` on its handshake, as a browser does.
    pub async fn connect(&self, cookie: Option<&str>) -> Result<Client, String> {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        Client::connect_with_headers(self.addr, json!({}), &headers).await
    }

    /// Signs in as `user` and connects, panicking on refusal.
    pub async fn user(&self, user: &str) -> (String, Client) {
        let cookie = self.login(user).await;
        let client = self.connect(Some(&cookie)).await.expect("connect");
        (cookie, client)
    }
}

/// The `session=<id>` pair of a `Set-Cookie` response header.
#[track_caller]
pub fn cookie_of(set_cookie: &[String]) -> String {
    let value = set_cookie
        .iter()
        .find(|c| c.starts_with("session="))
        .unwrap_or_else(|| panic!("no session cookie in {set_cookie:?}"));
    value.split(';').next().unwrap().to_owned()
}
