//! # chat-archive
//!
//! The chat's database of record on PostgreSQL ([`chat_core::archive::Archive`]): every
//! message kept for good, history past what Redis keeps, and full-text search with a GIN
//! index over PostgreSQL's text search (`docs/archive.md`).
//!
//! [`PgArchive::connect`] opens a pool and applies the migrations in `migrations/` (embedded
//! at build time, applied at start, each once: sqlx records them in `_sqlx_migrations`).
//! Writes are batched `INSERT ... ON CONFLICT DO NOTHING`: idempotent by message id.

use async_trait::async_trait;
use chat_core::{
    archive::{Archive, ArchiveError, ArchivePage, SearchScope},
    protocol::{ConversationId, Message, MessageId, UserId},
};
use sqlx::{PgPool, postgres::PgPoolOptions};

/// The text search configuration used when none is given: no stemming, no stop words,
/// right for any language.
pub const DEFAULT_LANGUAGE: &str = "simple";

/// Connections the archive keeps open at most.
const POOL_SIZE: u32 = 8;

/// How long a request waits for a connection.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the archive cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// PostgreSQL cannot be reached, or refused the credentials.
    #[error("cannot connect to the database")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("cannot migrate the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The text search configuration does not exist in the database.
    #[error("no text search configuration {0:?} in the database (see \\dF in psql)")]
    Language(String),
}

/// The archive on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgArchive {
    pool: PgPool,
    language: String,
}

impl PgArchive {
    /// Connects to `url` (`postgres://...`), applies the migrations, and searches with the
    /// text search configuration `language` (`simple`, `english`, `french`...).
    pub async fn connect(url: &str, language: &str) -> Result<Self, ConnectError> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            // A request waits this long for a connection (the database down, the pool busy)
            // before it fails, and so does the start.
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(ConnectError::Connect)?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let known: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = $1)")
                .bind(language)
                .fetch_one(&pool)
                .await
                .map_err(ConnectError::Connect)?;
        if !known {
            return Err(ConnectError::Language(language.to_owned()));
        }
        Ok(Self {
            pool,
            language: language.to_owned(),
        })
    }
}

fn failure(e: sqlx::Error) -> ArchiveError {
    ArchiveError(e.to_string())
}

/// A row of `messages`, as the queries read it (`query_as`: the columns are checked by
/// name and type when read).
#[derive(Debug, sqlx::FromRow)]
struct Stored {
    conversation: String,
    sender: String,
    ms: i64,
    seq: i64,
    ts: i64,
    body: String,
    client_id: Option<String>,
}

/// A row as the chat's message; a row the chat could not have written is an error.
impl TryFrom<Stored> for Message {
    type Error = ArchiveError;

    fn try_from(row: Stored) -> Result<Self, ArchiveError> {
        let bad = |what: &str| ArchiveError(format!("unexpected {what} in the archive"));
        Ok(Message {
            id: MessageId {
                ms: u64::try_from(row.ms).map_err(|_| bad("id"))?,
                seq: u64::try_from(row.seq).map_err(|_| bad("id"))?,
            },
            conversation: row.conversation.parse().map_err(|_| bad("conversation"))?,
            from: UserId::parse_sender(row.sender).map_err(|_| bad("sender"))?,
            body: row.body,
            ts: u64::try_from(row.ts).map_err(|_| bad("timestamp"))?,
            client_id: row.client_id,
        })
    }
}

/// An id as PostgreSQL's `bigint`s (ids are milliseconds and counters: far below 2^63).
fn id(id: MessageId) -> (i64, i64) {
    (
        i64::try_from(id.ms).unwrap_or(i64::MAX),
        i64::try_from(id.seq).unwrap_or(i64::MAX),
    )
}

#[async_trait]
impl Archive for PgArchive {
    async fn write(&self, messages: &[Message]) -> Result<(), ArchiveError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut cols: (Vec<String>, Vec<i64>, Vec<i64>, Vec<String>, Vec<String>) =
            Default::default();
        let (mut ts, mut client_ids) = (Vec::new(), Vec::new());
        for m in messages {
            let (ms, seq) = id(m.id);
            cols.0.push(m.conversation.to_string());
            cols.1.push(ms);
            cols.2.push(seq);
            cols.3.push(m.from.as_str().to_owned());
            cols.4.push(m.body.clone());
            ts.push(i64::try_from(m.ts).unwrap_or(i64::MAX));
            client_ids.push(m.client_id.clone());
        }
        sqlx::query(
            "INSERT INTO messages (conversation, ms, seq, sender, body, ts, client_id, language)
             SELECT c, ms, seq, s, b, ts, k, $8::regconfig
             FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                         $6::bigint[], $7::text[]) AS t(c, ms, seq, s, b, ts, k)
             ON CONFLICT DO NOTHING",
        )
        .bind(&cols.0)
        .bind(&cols.1)
        .bind(&cols.2)
        .bind(&cols.3)
        .bind(&cols.4)
        .bind(&ts)
        .bind(&client_ids)
        .bind(&self.language)
        .execute(&self.pool)
        .await
        .map_err(failure)?;
        Ok(())
    }

    async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<ArchivePage, ArchiveError> {
        let (ms, seq) = before.map_or((i64::MAX, i64::MAX), id);
        let rows = sqlx::query_as::<_, Stored>(
            "SELECT conversation, sender, ms, seq, ts, body, client_id FROM messages
             WHERE conversation = $1 AND (ms, seq) < ($2, $3)
             ORDER BY ms DESC, seq DESC LIMIT $4",
        )
        .bind(conversation.to_string())
        .bind(ms)
        .bind(seq)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1))
        .fetch_all(&self.pool)
        .await
        .map_err(failure)?;
        let has_more = rows.len() > limit;
        let mut messages = rows
            .into_iter()
            .take(limit)
            .map(Message::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(ArchivePage { messages, has_more })
    }

    async fn search(
        &self,
        scope: &SearchScope,
        query: &str,
        after: Option<(MessageId, ConversationId)>,
        limit: usize,
    ) -> Result<ArchivePage, ArchiveError> {
        if scope.conversations.is_empty() && scope.dms_of.is_none() {
            return Ok(ArchivePage::default());
        }
        let ids: Vec<String> = scope
            .conversations
            .iter()
            .map(ToString::to_string)
            .collect();
        let dms_of = scope.dms_of.as_ref().map(|u| u.as_str().to_owned());
        let (ms, seq, conv) = match after {
            Some((at, c)) => {
                let (ms, seq) = id(at);
                (Some(ms), Some(seq), Some(c.to_string()))
            }
            None => (None, None, None),
        };
        // A user's DMs are `dm:<a>:<b>`, and user ids have no `:`.
        // Conversation ids compare bytewise whatever the database's collation.
        let rows = sqlx::query_as::<_, Stored>(
            r#"SELECT conversation, sender, ms, seq, ts, body, client_id FROM messages
               WHERE (conversation = ANY($1)
                      OR (conversation LIKE 'dm:%'
                          AND $8::text IN (split_part(conversation, ':', 2),
                                           split_part(conversation, ':', 3))))
                 AND tsv @@ websearch_to_tsquery($2::regconfig, $3)
                 AND ($4::bigint IS NULL
                      OR (ms, seq, conversation COLLATE "C") < ($4, $5, $6::text COLLATE "C"))
               ORDER BY ms DESC, seq DESC, conversation COLLATE "C" DESC LIMIT $7"#,
        )
        .bind(&ids)
        .bind(&self.language)
        .bind(query)
        .bind(ms)
        .bind(seq)
        .bind(conv)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1))
        .bind(dms_of)
        .fetch_all(&self.pool)
        .await
        .map_err(failure)?;
        let has_more = rows.len() > limit;
        let messages = rows
            .into_iter()
            .take(limit)
            .map(Message::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ArchivePage { messages, has_more })
    }

    async fn backfilled(&self, conversation: &ConversationId) -> Result<bool, ArchiveError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM backfilled WHERE conversation = $1)")
            .bind(conversation.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(failure)
    }

    async fn mark_backfilled(&self, conversation: &ConversationId) -> Result<(), ArchiveError> {
        sqlx::query("INSERT INTO backfilled (conversation) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(conversation.to_string())
            .execute(&self.pool)
            .await
            .map_err(failure)?;
        Ok(())
    }
}
