//! Test servers on port 0 and small assertion helpers.

use std::net::SocketAddr;

use chat_core::{Chat, ChatHandle, Config, Limits};
use serde_json::Value;
use tokio::net::TcpListener;

pub use crate::client::Client;

/// A chat server on a random loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ChatHandle,
}

impl TestServer {
    /// A server with default settings.
    pub async fn start() -> TestServer {
        Self::with(|_| {}).await
    }

    /// A server with settings changed by `f`.
    pub async fn with(f: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config {
            limits: Limits::default(),
            ..Config::default()
        };
        f(&mut config);
        let chat = Chat::builder(config).build().await.expect("build chat");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = chat.router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestServer {
            addr,
            handle: chat.handle(),
        }
    }

    /// Connects a development-mode client as `user`.
    pub async fn client(&self, user: &str) -> Client {
        Client::dev(self.addr, user).await
    }
}

/// A user id unique to this test run, so tests never see each other's data.
pub fn uid(prefix: &str) -> String {
    format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// Asserts an ack is `{ok: false}` with `code`.
#[track_caller]
pub fn assert_code(ack: &Value, code: &str) {
    assert_eq!(ack["ok"], false, "expected {code}, got {ack}");
    assert_eq!(ack["error"]["code"], code, "{ack}");
    assert!(
        ack["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{ack}"
    );
}

/// Asserts an ack is `{ok: true}` and returns it.
#[track_caller]
pub fn ok(ack: Value) -> Value {
    assert_eq!(ack["ok"], true, "expected ok, got {ack}");
    ack
}
