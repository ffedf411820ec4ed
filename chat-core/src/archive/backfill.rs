//! Backfill: archives what Redis already holds (messages stored before the archive was
//! turned on), conversation by conversation, and records each one done in the archive, so a
//! run that stops is resumed by running it again (`chat-server backfill`, docs/archive.md).

use redis::RedisError;
use socketioxide_core::Uid;

use super::{Archive, ArchiveError};
use crate::{
    config::{Limits, RedisSettings},
    error::StoreError,
    keys::Keys,
    protocol::{ConversationId, MessageId},
    redis::Redis,
    store::{MessageLog, redis::RedisStore},
};

/// Messages read from Redis and written at once.
const PAGE: usize = 500;
/// Keys asked for per `SCAN` step.
const SCAN_COUNT: usize = 1000;

/// What a backfill did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackfillReport {
    /// Conversations archived by this run.
    pub conversations: u64,
    /// Conversations a previous run had done, skipped.
    pub skipped: u64,
    /// Messages written (the archive keeps each once, whatever it held already).
    pub messages: u64,
}

/// Why a backfill stopped; running it again goes on where it stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Redis failed.
    #[error("redis failed")]
    Redis(#[from] RedisError),
    /// Reading a conversation failed.
    #[error("cannot read a conversation")]
    Store(#[from] StoreError),
    /// The archive failed.
    #[error("the archive failed")]
    Archive(#[from] ArchiveError),
}

/// Archives every conversation Redis holds under `settings`' prefix that no earlier run
/// finished; `progress` is told each one done.
pub async fn backfill(
    settings: &RedisSettings,
    archive: &dyn Archive,
    mut progress: impl FnMut(&ConversationId, u64),
) -> Result<BackfillReport, BackfillError> {
    let redis = Redis::new(settings.target.clone())?;
    let keys = Keys::new(settings.prefix.clone());
    let store = RedisStore::new(redis.clone(), settings, &Limits::default(), Uid::new());
    let prefix = keys.conv_prefix();
    let pattern = format!("{}*", glob_escape(&prefix));
    let mut report = BackfillReport::default();
    let mut cursor = 0u64;
    loop {
        let (next, found): (u64, Vec<String>) = redis
            .query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .arg("TYPE")
                    .arg("stream"),
            )
            .await?;
        for key in found {
            let Some(Ok(conversation)) =
                key.strip_prefix(&prefix).map(str::parse::<ConversationId>)
            else {
                continue;
            };
            if archive.backfilled(&conversation).await? {
                report.skipped += 1;
                continue;
            }
            let n = copy(&store, archive, &conversation).await?;
            archive.mark_backfilled(&conversation).await?;
            report.conversations += 1;
            report.messages += n;
            progress(&conversation, n);
        }
        if next == 0 {
            return Ok(report);
        }
        cursor = next;
    }
}

/// Writes a conversation's messages, newest pages first; returns how many.
async fn copy(
    store: &RedisStore,
    archive: &dyn Archive,
    conversation: &ConversationId,
) -> Result<u64, BackfillError> {
    let mut before: Option<MessageId> = None;
    let mut n = 0u64;
    loop {
        let (messages, more) = store.history(conversation, before, PAGE).await?;
        archive.write(&messages).await?;
        n += messages.len() as u64;
        match (more, messages.first()) {
            (true, Some(oldest)) => before = Some(oldest.id),
            _ => return Ok(n),
        }
    }
}

/// `s` with the glob characters of `SCAN MATCH` escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(super::glob_escape("chat:conv:"), "chat:conv:");
        assert_eq!(super::glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
