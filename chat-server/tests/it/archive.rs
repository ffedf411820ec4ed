//! The archive with real processes, Redis and PostgreSQL: what a node acknowledged is
//! archived even when the node is killed right after, history reads past Redis into
//! PostgreSQL and search answers over HTTP from another node.

use std::time::Duration;

use chat_testing::{Client, postgres::PostgresServer, redis::RedisServer, uid};
use serde_json::{Value, json};

use crate::helpers::Node;

const TOKEN: &str = "archive-it-token-0123456";

/// Every page of a conversation's history through the API, 100 at a time: the bodies,
/// oldest first.
async fn history(node: &Node, conversation: &str) -> Vec<String> {
    let mut bodies: Vec<String> = Vec::new();
    let mut before = String::new();
    for _ in 0..50 {
        let path = format!("/api/v1/conversations/{conversation}/messages?limit=100{before}");
        let (status, page) = node.call("GET", &path, TOKEN, None).await;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().unwrap();
        let mut older: Vec<String> = messages
            .iter()
            .map(|m| m["body"].as_str().unwrap().to_owned())
            .collect();
        older.append(&mut bodies);
        bodies = older;
        if page["hasMore"] != true {
            return bodies;
        }
        before = format!("&before={}", messages[0]["id"].as_str().unwrap());
    }
    panic!("history did not end");
}

#[tokio::test]
async fn acked_messages_survive_their_node_and_are_found_from_another() {
    let (redis, pg) = tokio::join!(RedisServer::start(), PostgresServer::start());
    let (url, prefix, db) = (redis.url(), chat_testing::prefix(), pg.url());
    let vars = [
        ("CHAT_REDIS_URL", url.as_str()),
        ("CHAT_REDIS_PREFIX", prefix.as_str()),
        ("CHAT_DATABASE_URL", db.as_str()),
        ("CHAT_SEARCH_LANGUAGE", "english"),
        ("CHAT_ARCHIVE_CLAIM_AFTER", "1s"),
        ("CHAT_HISTORY_MAX", "5"),
        ("CHAT_API_TOKEN", TOKEN),
        ("CHAT_RATE_MESSAGES", "1000"),
        ("CHAT_RATE_MESSAGES_BURST", "1000"),
        ("CHAT_RATE_EVENTS", "1000"),
        ("CHAT_RATE_EVENTS_BURST", "1000"),
    ];
    let mut a = Node::start(&vars).await;
    let b = Node::start(&vars).await;
    let (alice, bob) = (uid("alice"), uid("bob"));
    let mut alice_a = Client::dev(a.addr, &alice).await;
    // 40 sends in flight at once, then SIGKILL as soon as the last ack is in.
    let sent: Vec<String> = (0..40).map(|i| format!("deploying build {i}")).collect();
    let acks = alice_a
        .ack_all(
            sent.iter()
                .map(|body| ("message:send", json!({"to": bob, "body": body})))
                .collect(),
        )
        .await;
    assert!(acks.iter().all(|a| a["ok"] == true), "{acks:?}");
    a.kill().await;
    let conversation = acks[0]["message"]["conversation"]
        .as_str()
        .unwrap()
        .to_owned();

    // From B: the whole history, past Redis's five, each message once and in order.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = history(&b, &conversation).await;
        if got == sent {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history from B after A's death: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Search over HTTP, stemmed (english): "deploy" finds "deploying", as bob, newest first.
    // History can be whole before the archive is: its newest five come from Redis, while the
    // dead node's last writes wait to be reclaimed (CHAT_ARCHIVE_CLAIM_AFTER), so poll.
    let mut newest_first: Vec<&str> = sent.iter().map(String::as_str).collect();
    newest_first.reverse();
    let found = loop {
        let (status, found) = b
            .call(
                "GET",
                &format!("/api/v1/search?user={bob}&q=deploy&limit=50"),
                TOKEN,
                None,
            )
            .await;
        assert_eq!(status, 200, "{found}");
        let bodies: Vec<&str> = found["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["message"]["body"].as_str().unwrap())
            .collect();
        if bodies == newest_first {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "search from B after A's death: {bodies:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        found["results"][0]["conversation"]["id"],
        conversation.as_str()
    );
    // Someone else finds nothing of theirs; bad input is refused with the contract's codes.
    let (_, other) = b
        .call("GET", "/api/v1/search?user=carol&q=deploy", TOKEN, None)
        .await;
    assert_eq!(other["results"], json!([]), "{other}");
    for (path, status, code) in [
        ("/api/v1/search?q=deploy", 400, "bad_request"),
        ("/api/v1/search?user=bob", 400, "bad_request"),
        (
            "/api/v1/search?user=bob&q=deploy&limit=0",
            400,
            "bad_request",
        ),
        ("/api/v1/search?user=b%20b&q=deploy", 400, "bad_request"),
        (
            "/api/v1/search?conversation=group:nope&q=deploy",
            404,
            "not_found",
        ),
    ] {
        let (got, body): (u16, Value) = b.call("GET", path, TOKEN, None).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    let long = "x".repeat(201);
    let (got, body) = b
        .call(
            "GET",
            &format!("/api/v1/search?user=bob&q={long}"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    let metrics = b.get("/metrics").await;
    assert!(metrics.contains("chat_archive_written_total"), "{metrics}");
}

#[tokio::test]
async fn without_a_database_search_is_unavailable_and_a_bad_one_stops_the_start() {
    let node = Node::start(&[("CHAT_API_TOKEN", TOKEN)]).await;
    let (status, body) = node
        .call("GET", "/api/v1/search?user=bob&q=hi", TOKEN, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    assert!(!node.get("/metrics").await.contains("chat_archive_"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .env("CHAT_LISTEN", "127.0.0.1:0")
        .env("CHAT_DATABASE_URL", "postgres://chat@127.0.0.1:1/chat")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("cannot start the archive"), "{said}");
}

/// `chat-server backfill` with `vars`: its report line.
async fn backfill(vars: &[(&str, &str)]) -> String {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CHAT_")) {
        cmd.env_remove(k);
    }
    let out = cmd
        .arg("backfill")
        .envs(vars.iter().copied())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_owned()
}

/// Messages stored before the archive was on are archived by `chat-server backfill`; a second
/// run does only what is new.
#[tokio::test]
async fn backfill_archives_what_redis_holds_and_resumes() {
    let (redis, pg) = tokio::join!(RedisServer::start(), PostgresServer::start());
    let (url, prefix, db) = (redis.url(), chat_testing::prefix(), pg.url());
    let redis_vars = [
        ("CHAT_REDIS_URL", url.as_str()),
        ("CHAT_REDIS_PREFIX", prefix.as_str()),
        ("CHAT_API_TOKEN", TOKEN),
    ];
    let before = Node::start(&redis_vars).await;
    let (alice, bob, carol, dave) = (uid("alice"), uid("bob"), uid("carol"), uid("dave"));
    let mut alice_c = Client::dev(before.addr, &alice).await;
    let send = |to: &str, i: usize| {
        (
            "message:send",
            json!({"to": to, "body": format!("old note {i}")}),
        )
    };
    let mut requests: Vec<_> = (0..12).map(|i| send(&bob, i)).collect();
    requests.extend((12..15).map(|i| send(&carol, i)));
    let acks = alice_c.ack_all(requests).await;
    assert!(acks.iter().all(|a| a["ok"] == true), "{acks:?}");
    let mut vars = redis_vars.to_vec();
    vars.push(("CHAT_DATABASE_URL", db.as_str()));
    assert_eq!(
        backfill(&vars).await,
        "backfill: 2 conversations archived (15 messages), 0 done before"
    );
    let acks = alice_c
        .ack_all((15..17).map(|i| send(&dave, i)).collect())
        .await;
    assert!(acks.iter().all(|a| a["ok"] == true), "{acks:?}");
    assert_eq!(
        backfill(&vars).await,
        "backfill: 1 conversations archived (2 messages), 2 done before"
    );
    // Search reads the archive only: everything is there.
    let after = Node::start(&vars).await;
    let (status, found) = after
        .call(
            "GET",
            &format!("/api/v1/search?user={alice}&q=note&limit=50"),
            TOKEN,
            None,
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["results"].as_array().unwrap().len(), 17, "{found}");
    // Without a database it says what it needs.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-server"));
    let out = cmd
        .arg("backfill")
        .env_remove("CHAT_DATABASE_URL")
        .envs(redis_vars.iter().copied())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CHAT_DATABASE_URL"));
}
