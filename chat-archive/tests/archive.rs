//! The archive on a real PostgreSQL (a container from scripts/postgres-test-image.sh).

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use chat_archive::{ConnectError, PgArchive};
use chat_core::{
    archive::{Archive, SearchScope},
    protocol::{ConversationId, GroupId, Message, MessageId, UserId},
};
use chat_testing::postgres::PostgresServer;

fn dm(a: &str, b: &str) -> ConversationId {
    let id = |s: &str| UserId::parse_sender(s).unwrap();
    ConversationId::dm(&id(a), &id(b))
}

fn msg(conversation: &ConversationId, from: &str, ms: u64, body: &str) -> Message {
    Message {
        id: MessageId { ms, seq: 0 },
        conversation: conversation.clone(),
        from: UserId::parse_sender(from).unwrap(),
        body: body.into(),
        ts: ms,
        client_id: ms.is_multiple_of(2).then(|| format!("k{ms}")),
    }
}

fn bodies(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

#[tokio::test]
async fn writes_are_idempotent_and_history_pages_back() {
    let pg = PostgresServer::start().await;
    let archive = PgArchive::connect(&pg.url(), "simple").await.unwrap();
    // A second start applies no migration twice.
    let archive2 = PgArchive::connect(&pg.url(), "simple").await.unwrap();
    let ab = dm("alice", "bob");
    let all: Vec<Message> = (1..=25)
        .map(|i| msg(&ab, "alice", i, &format!("m{i}")))
        .collect();
    archive.write(&all[..10]).await.unwrap();
    // Overlapping batches, and one written through another pool: each message once.
    archive2.write(&all[5..]).await.unwrap();
    archive.write(&all).await.unwrap();
    let page = archive.history(&ab, None, 10).await.unwrap();
    assert_eq!(
        page.messages,
        all[15..].to_vec(),
        "the newest ten, oldest first, unchanged"
    );
    assert!(page.has_more);
    let older = archive
        .history(&ab, Some(page.messages[0].id), 10)
        .await
        .unwrap();
    assert_eq!(bodies(&older.messages), bodies(&all[5..15]));
    let oldest = archive
        .history(&ab, Some(older.messages[0].id), 10)
        .await
        .unwrap();
    assert_eq!(bodies(&oldest.messages), bodies(&all[..5]));
    assert!(!oldest.has_more);
    assert!(
        archive
            .history(&dm("x", "y"), None, 10)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    // The system sender comes back as itself.
    let sys = dm("@system", "alice");
    archive
        .write(&[msg(&sys, "@system", 100, "welcome")])
        .await
        .unwrap();
    let page = archive.history(&sys, None, 5).await.unwrap();
    assert!(page.messages[0].from.is_system());
}

#[tokio::test]
async fn search_finds_words_in_the_given_conversations_newest_first() {
    let pg = PostgresServer::start().await;
    let archive = PgArchive::connect(&pg.url(), "english").await.unwrap();
    let ab = dm("alice", "bob");
    let cd = dm("carol", "dave");
    let team = ConversationId::Group(GroupId::parse("team").unwrap());
    archive
        .write(&[
            msg(&ab, "alice", 1, "The deploy failed again"),
            msg(&ab, "bob", 2, "who is deploying today?"),
            msg(&team, "carol", 2, "deployment scheduled for Friday"),
            msg(&cd, "carol", 3, "secret deploy plans"),
            msg(&team, "dave", 4, "lunch?"),
            msg(&ab, "alice", 5, "\"quoted\" deploy words, no failure here"),
        ])
        .await
        .unwrap();
    let mine = SearchScope {
        dms_of: None,
        conversations: vec![ab.clone(), team.clone()],
    };
    // Stemmed: deploy, deploying, deployment; never the conversation alice is not in.
    let found = archive.search(&mine, "deploy", None, 10).await.unwrap();
    assert_eq!(
        bodies(&found.messages),
        [
            "\"quoted\" deploy words, no failure here",
            "deployment scheduled for Friday",
            "who is deploying today?",
            "The deploy failed again"
        ],
        "newest first; the same id in two conversations ordered by conversation, descending"
    );
    // Web search syntax: phrases and exclusions.
    let found = archive
        .search(&mine, "deploy -failed", None, 10)
        .await
        .unwrap();
    assert_eq!(found.messages.len(), 3, "{:?}", bodies(&found.messages));
    let found = archive
        .search(&mine, "\"deploy failed\"", None, 10)
        .await
        .unwrap();
    assert_eq!(bodies(&found.messages), ["The deploy failed again"]);
    // Pages of two, by position, with ties across conversations kept apart.
    let first = archive.search(&mine, "deploy", None, 2).await.unwrap();
    assert!(first.has_more);
    let last = first.messages.last().unwrap();
    let second = archive
        .search(
            &mine,
            "deploy",
            Some((last.id, last.conversation.clone())),
            2,
        )
        .await
        .unwrap();
    assert_eq!(
        bodies(&second.messages),
        ["who is deploying today?", "The deploy failed again"]
    );
    assert!(!second.has_more);
    assert!(
        archive
            .search(&SearchScope::default(), "deploy", None, 10)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert!(
        archive
            .search(&mine, "", None, 10)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert!(
        archive
            .search(&mine, "&|!(", None, 10)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
}

/// A user's scope: every DM they are in (by either side of the id), and the groups given.
#[tokio::test]
async fn a_users_scope_is_their_dms_and_their_groups() {
    let pg = PostgresServer::start().await;
    let archive = PgArchive::connect(&pg.url(), "simple").await.unwrap();
    let team = ConversationId::Group(GroupId::parse("team").unwrap());
    archive
        .write(&[
            msg(&dm("alice", "bob"), "alice", 1, "news one"),
            msg(&dm("ali", "bob"), "ali", 2, "news two"),
            msg(&dm("carol", "zed"), "carol", 3, "news three"),
            msg(&team, "carol", 4, "news four"),
            msg(&dm("bob", "zed"), "zed", 5, "news five"),
        ])
        .await
        .unwrap();
    let find = |user: &str, groups: &[ConversationId]| {
        let scope = SearchScope {
            dms_of: Some(UserId::parse(user).unwrap()),
            conversations: groups.to_vec(),
        };
        let archive = archive.clone();
        async move {
            let page = archive.search(&scope, "news", None, 10).await.unwrap();
            bodies(&page.messages)
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        find("bob", &[]).await,
        ["news five", "news two", "news one"]
    );
    assert_eq!(find("ali", &[]).await, ["news two"], "not alice's");
    assert_eq!(find("zed", &[]).await, ["news five", "news three"]);
    assert_eq!(
        find("carol", std::slice::from_ref(&team)).await,
        ["news four", "news three"]
    );
    assert!(find("dave", &[]).await.is_empty());
}

#[tokio::test]
async fn an_unknown_language_or_database_is_refused_at_start() {
    let pg = PostgresServer::start().await;
    let err = PgArchive::connect(&pg.url(), "klingon").await.unwrap_err();
    assert!(matches!(err, ConnectError::Language(_)), "{err:?}");
    let err = PgArchive::connect("postgres://postgres@127.0.0.1:1/none", "simple")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Connect(_)), "{err:?}");
}
