//! [`MessageLog`] on Redis: conversation streams, read per user (see the module docs).

use ::redis::{
    Value as RValue,
    streams::{StreamId as REntry, StreamRangeReply},
};
use async_trait::async_trait;
use serde::Deserialize;

use super::{RedisStore, WAIT_PAUSE, backend, corrupt};
use crate::{
    config::Rate,
    error::StoreError,
    protocol::{ConversationId, ConversationSummary, Group, Message, MessageId, StreamId, UserId},
    store::{
        Appended, MARK_SCAN, Mark, MessageLog, NewMessage, RateLimiter, Refusal, SyncPage,
        sort_recent_first,
    },
};

#[derive(Deserialize)]
struct IdemRecord {
    id: String,
    c: String,
    b: String,
    t: String,
}

fn field(e: &REntry, name: &str) -> Option<String> {
    match e.map.get(name)? {
        RValue::BulkString(b) => String::from_utf8(b.clone()).ok(),
        RValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn parse_message(conversation: &ConversationId, e: &REntry) -> Result<Message, StoreError> {
    let get = |k| field(e, k).ok_or_else(|| corrupt("message"));
    let client_id = get("c")?;
    Ok(Message {
        id: e.id.parse().map_err(|_| corrupt("message id"))?,
        conversation: conversation.clone(),
        from: UserId::parse_sender(get("f")?).map_err(|_| corrupt("sender"))?,
        body: get("b")?,
        ts: get("t")?.parse().map_err(|_| corrupt("ts"))?,
        client_id: (!client_id.is_empty()).then_some(client_id),
    })
}

/// The advance scripts' answer: sender, newest covered id, sender, id...
fn covered_senders(flat: &[String]) -> Result<Vec<(UserId, MessageId)>, StoreError> {
    flat.chunks_exact(2)
        .map(|p| {
            Ok((
                UserId::parse_sender(p[0].as_str()).map_err(|_| corrupt("sender"))?,
                p[1].parse().map_err(|_| corrupt("message id"))?,
            ))
        })
        .collect()
}

/// The unread count from a read mark's record (`unread,count,sent` when it was set) and the
/// conversation's `count` and the user's `sent` now; without a record, every message from
/// others is unread.
fn unread(record: Option<&str>, count: u64, sent: u64) -> u64 {
    let then = record.and_then(|r| {
        let mut parts = r.split(',').map(|p| p.parse::<u64>().ok());
        Some((parts.next()??, parts.next()??, parts.next()??))
    });
    let (unread, count_then, sent_then) = then.unwrap_or((0, 0, 0));
    // Messages since the mark, less the user's own; saturating, should counters ever be
    // older than the record (a restored backup).
    (unread + count.saturating_sub(count_then)).saturating_sub(sent.saturating_sub(sent_then))
}

#[async_trait]
impl MessageLog for RedisStore {
    async fn append(
        &self,
        msg: NewMessage,
        budget: &[(&str, Rate)],
    ) -> Result<Appended, StoreError> {
        let conv = msg.conversation.to_string();
        let cid = msg.client_id.clone().unwrap_or_default();
        let idem_key = self.keys.idem(&msg.from, &cid);
        let (guard, group, peer) = match &msg.conversation {
            ConversationId::Dm(..) => {
                let Some(peer) = msg.conversation.dm_peer(&msg.from) else {
                    // Refused without the script, but after the budget like every refusal.
                    let why = if self.try_acquire_all(budget).await? {
                        Refusal::NotMember
                    } else {
                        Refusal::RateLimited
                    };
                    return Ok(Appended::Refused(why));
                };
                let guard = self.keys.blocks(peer);
                (guard.clone(), guard, peer.as_str())
            }
            ConversationId::Group(id) => (self.keys.gmembers(id), self.keys.group(id), ""),
        };
        // EVALSHA; EVAL with the body only when Redis does not have the script yet (first use,
        // or a new master after a failover), which saves Redis hashing the body every time.
        let mut eval = ::redis::cmd("EVALSHA");
        eval.arg(self.scripts.append.get_hash())
            .arg(8 + budget.len())
            .arg(self.keys.conv(&conv))
            .arg(&idem_key)
            .arg(&guard)
            .arg(&group)
            .arg(self.keys.clock())
            .arg(self.keys.last())
            .arg(self.keys.count())
            .arg(self.keys.sent(&msg.from));
        for (key, _) in budget {
            eval.arg(self.keys.bucket(key));
        }
        eval.arg(msg.from.as_str())
            .arg(&msg.body)
            .arg(msg.ts)
            .arg(&cid)
            .arg(self.history_max)
            .arg(self.idempotency_ttl_secs)
            .arg(&conv)
            .arg(if matches!(msg.conversation, ConversationId::Dm(..)) {
                "1"
            } else {
                "0"
            })
            .arg(self.keys.dms_prefix())
            .arg(peer)
            .arg(budget.len());
        for (_, rate) in budget {
            eval.arg(rate.per_second).arg(rate.burst);
        }
        let mut pipe = ::redis::pipe();
        pipe.add_command(eval);
        let wait = self.wait_replicas > 0 && {
            let paused = self
                .wait_paused_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            paused.is_none_or(|until| tokio::time::Instant::now() >= until)
        };
        if wait {
            // Same connection as the append: WAIT counts the replicas that have it.
            pipe.cmd("WAIT")
                .arg(self.wait_replicas)
                .arg(self.wait_timeout_ms);
        }
        let mut reply: Vec<RValue> = self.query_scripted(&self.scripts.append, &pipe).await?;
        if wait {
            let acked: i64 = reply
                .pop()
                .and_then(|v| ::redis::from_redis_value(v).ok())
                .unwrap_or(0);
            if acked < i64::from(self.wait_replicas) {
                tracing::warn!(
                    acked,
                    wanted = self.wait_replicas,
                    pause = ?WAIT_PAUSE,
                    "replicas out of reach: acknowledging without them for a while"
                );
                *self
                    .wait_paused_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) =
                    Some(tokio::time::Instant::now() + WAIT_PAUSE);
            }
        }
        // [kind], [kind, id or idempotency record], or [kind, id, audience, previous id or ''].
        let mut parts: std::vec::IntoIter<RValue> = reply
            .pop()
            .and_then(|v| ::redis::from_redis_value::<Vec<RValue>>(v).ok())
            .ok_or_else(|| corrupt("append reply"))?
            .into_iter();
        let mut next = |what| {
            parts
                .next()
                .map(::redis::from_redis_value::<String>)
                .transpose()
                .map_err(|_| corrupt(what))
        };
        let kind = next("append reply")?.unwrap_or_default();
        let value = next("append reply")?;
        let audience = next("audience")?.and_then(|n| n.parse::<usize>().ok());
        let prev = match next("previous id")?.filter(|p| !p.is_empty()) {
            Some(p) => Some(p.parse().map_err(|_| corrupt("previous id"))?),
            None => None,
        };
        let refused = |why| Ok(Appended::Refused(why));
        let value = match (kind.as_str(), value) {
            ("limited", _) => return refused(Refusal::RateLimited),
            ("blocked", _) => return refused(Refusal::Blocked),
            ("nogroup", _) => return refused(Refusal::NoGroup),
            ("notmember", _) => return refused(Refusal::NotMember),
            ("new", Some(id)) => {
                return Ok(Appended::New {
                    message: Message {
                        id: id.parse().map_err(|_| corrupt("message id"))?,
                        conversation: msg.conversation,
                        from: msg.from,
                        body: msg.body,
                        ts: msg.ts,
                        client_id: msg.client_id,
                    },
                    audience: audience.ok_or_else(|| corrupt("append reply"))?,
                    prev,
                });
            }
            ("dup", Some(record)) => record,
            _ => return Err(corrupt("append reply")),
        };
        let first: IdemRecord =
            serde_json::from_str(&value).map_err(|_| corrupt("idempotency record"))?;
        if first.c != conv || first.b != msg.body {
            return Ok(Appended::Conflict);
        }
        Ok(Appended::Duplicate(Message {
            id: first.id.parse().map_err(|_| corrupt("message id"))?,
            conversation: msg.conversation,
            from: msg.from,
            body: first.b,
            ts: first.t.parse().map_err(|_| corrupt("ts"))?,
            client_id: msg.client_id,
        }))
    }

    async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        if before == Some(StreamId::default()) {
            // Nothing comes before the first id (and Redis refuses the range `(0-0`).
            return Ok((Vec::new(), false));
        }
        let end = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
        let mut entries: Vec<REntry> = self
            .query::<StreamRangeReply>(
                ::redis::cmd("XREVRANGE")
                    .arg(self.keys.conv(conversation))
                    .arg(end)
                    .arg("-")
                    .arg("COUNT")
                    .arg(limit + 1),
            )
            .await?
            .ids;
        let has_more = entries.len() > limit;
        entries.truncate(limit);
        entries.reverse();
        let messages = entries
            .iter()
            .map(|e| parse_message(conversation, e))
            .collect::<Result<_, _>>()?;
        Ok((messages, has_more))
    }

    async fn sync(
        &self,
        user: &UserId,
        cursor: Option<StreamId>,
        limit: usize,
    ) -> Result<SyncPage, StoreError> {
        let mut pipe = ::redis::pipe();
        let mut inv = self.scripts.sync.key(self.keys.dms(user));
        inv.key(self.keys.usergroups(user))
            .key(self.keys.last())
            .key(self.keys.marks(user))
            .arg(self.keys.conv_prefix())
            .arg(cursor.map(|c| c.to_string()).unwrap_or_default())
            .arg(limit.max(1))
            .arg(user.as_str())
            .arg(self.history_max);
        pipe.invoke_script(&inv);
        let ((next, more, truncated, convs, entries),): ((
            String,
            i64,
            i64,
            Vec<String>,
            StreamRangeReply,
        ),) = self.query_scripted(&self.scripts.sync, &pipe).await?;
        if convs.len() != entries.ids.len() {
            return Err(corrupt("sync reply"));
        }
        let messages = convs
            .iter()
            .zip(&entries.ids)
            .map(|(c, e)| parse_message(&c.parse().map_err(|_| corrupt("conversation"))?, e))
            .collect::<Result<_, _>>()?;
        Ok(SyncPage {
            messages,
            cursor: next.parse().map_err(|_| corrupt("sync cursor"))?,
            has_more: more == 1,
            truncated: truncated == 1,
        })
    }

    async fn dm_peers(&self, user: &UserId) -> Result<Vec<UserId>, StoreError> {
        Ok(self
            .dms(user)
            .await?
            .iter()
            .filter_map(|c| c.dm_peer(user).cloned())
            .collect())
    }

    async fn conversations(
        &self,
        user: &UserId,
        groups: &[Group],
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let mut convs: Vec<(ConversationId, Option<String>)> = self
            .dms(user)
            .await?
            .into_iter()
            .map(|c| (c, None))
            .collect();
        convs.extend(
            groups
                .iter()
                .map(|g| (ConversationId::Group(g.id.clone()), Some(g.name.clone()))),
        );
        if convs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = convs.iter().map(|(c, _)| c.to_string()).collect();
        let mut pipe = ::redis::pipe();
        for id in &ids {
            pipe.cmd("XREVRANGE")
                .arg(self.keys.conv(id))
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
        }
        let records: Vec<String> = ids.iter().map(|id| format!("u:{id}")).collect();
        pipe.cmd("HMGET").arg(self.keys.count()).arg(&ids);
        pipe.cmd("HMGET").arg(self.keys.sent(user)).arg(&ids);
        pipe.cmd("HMGET").arg(self.keys.marks(user)).arg(&records);
        let mut raw: Vec<RValue> = self.query(&pipe).await?;
        let mut column = |what| -> Result<Vec<Option<String>>, StoreError> {
            ::redis::from_redis_value(raw.pop().ok_or_else(|| corrupt(what))?)
                .map_err(|_| corrupt(what))
        };
        let (records, sent, counts) = (column("marks")?, column("sent")?, column("count")?);
        if raw.len() != convs.len()
            || [&records, &sent, &counts]
                .iter()
                .any(|c| c.len() != raw.len())
        {
            return Err(corrupt("conversations reply"));
        }
        let number = |v: &Option<String>| v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut out = Vec::with_capacity(convs.len());
        for (i, ((id, name), last)) in convs.into_iter().zip(raw).enumerate() {
            let last: StreamRangeReply =
                ::redis::from_redis_value(last).map_err(|_| corrupt("last message"))?;
            let last_message = last
                .ids
                .first()
                .map(|e| parse_message(&id, e))
                .transpose()?;
            out.push(ConversationSummary {
                id,
                name,
                last_message,
                unread: unread(records[i].as_deref(), number(&counts[i]), number(&sent[i])),
            });
        }
        sort_recent_first(&mut out);
        Ok(out)
    }

    async fn advance(
        &self,
        user: &UserId,
        conversation: &ConversationId,
        upto: MessageId,
        mark: Mark,
    ) -> Result<Vec<(UserId, MessageId)>, StoreError> {
        let mut inv = self.scripts.advance.key(self.keys.conv(conversation));
        inv.key(self.keys.marks(user))
            .key(self.keys.delivered(conversation))
            .key(self.keys.count())
            .key(self.keys.sent(user))
            .arg(upto.to_string())
            .arg(match mark {
                Mark::Read => "r",
                Mark::Delivered => "d",
            })
            .arg(conversation.to_string())
            .arg(user.as_str())
            .arg(MARK_SCAN);
        let flat: Vec<String> = self.redis.script(&inv).await.map_err(backend)?;
        covered_senders(&flat)
    }
}

impl RedisStore {
    /// The user's DM conversations.
    async fn dms(&self, user: &UserId) -> Result<Vec<ConversationId>, StoreError> {
        let dms: Vec<String> = self
            .query(::redis::cmd("SMEMBERS").arg(self.keys.dms(user)))
            .await?;
        Ok(dms.iter().filter_map(|c| c.parse().ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::unread;

    #[test]
    fn unread_counts_what_came_after_the_read_mark_from_others() {
        assert_eq!(unread(None, 5, 2), 3, "no mark: everything from others");
        // At the mark: 1 unread, 10 sent in all, 4 of them by the user. Since: 6 more, 2 own.
        assert_eq!(unread(Some("1,10,4"), 16, 6), 5);
        assert_eq!(unread(Some("0,10,4"), 10, 4), 0);
        assert_eq!(
            unread(Some("0,10,4"), 9, 4),
            0,
            "counters older than the mark"
        );
        assert_eq!(
            unread(Some("garbage"), 3, 1),
            2,
            "a bad record counts from zero"
        );
    }
}
