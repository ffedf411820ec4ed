//! Starting `chat-server` binaries on port 0 and reading their JSON logs.

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// How long a node may take to log `listening`.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running `chat-server` process.
pub struct Node {
    pub addr: SocketAddr,
    child: Child,
    /// Its log lines so far, printed if the test fails.
    logs: Arc<Mutex<Vec<String>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs.lock().unwrap();
            eprintln!("--- chat-server {} ---\n{}", self.addr, logs.join("\n"));
        }
    }
}

impl Node {
    /// Starts the binary with `vars` (and loopback, JSON-log defaults); waits for `listening`.
    pub async fn start(vars: &[(&str, &str)]) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-server"));
        // Never stray CHAT_* settings of the calling shell.
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHAT_")) {
            cmd.env_remove(k);
        }
        cmd.env("CHAT_LISTEN", "127.0.0.1:0")
            .env("CHAT_LOG_FORMAT", "json")
            .env("CHAT_DRAIN_TIMEOUT", "1s")
            .env("RUST_LOG", "info")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn chat-server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let addr = tokio::time::timeout(START_DEADLINE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                logs.lock().unwrap().push(line.clone());
                let Ok(rec) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if rec["fields"]["message"] == "listening" {
                    return rec["fields"]["addr"].as_str().unwrap().parse().unwrap();
                }
            }
            panic!(
                "chat-server exited before listening: {:#?}",
                logs.lock().unwrap()
            );
        })
        .await
        .expect("chat-server never logged listening");
        let keep = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep.lock().unwrap().push(line);
            }
        });
        Node { addr, child, logs }
    }

    /// SIGKILL: no drain, no cleanup, as a crash.
    pub async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// SIGTERM, and waits for the exit: a graceful stop.
    pub async fn stop(&mut self) {
        let pid = self.child.id().unwrap().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("chat-server did not stop within 20 s")
            .unwrap();
        assert!(status.success(), "chat-server stopped with {status}");
    }

    /// A request to the node with `Authorization: Bearer token` and a JSON body: the
    /// status and the JSON answer (`Null` when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(format!("{head}{body}").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let json = match body.is_empty() {
            true => Value::Null,
            false => serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {out}")),
        };
        (status, json)
    }

    /// `GET path` on the node's listener (HTTP/1.0, for `/metrics`): the body.
    pub async fn get(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }
}
