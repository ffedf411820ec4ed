//! `history`, `sync` and `conversations`: reading what was stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use socketioxide::adapter::Adapter;

use super::{Call, Ctx, receipts};
use crate::{
    error::ChatError,
    protocol::{ConversationId, ConversationSummary, Message, MessageId, StreamId},
    store::Mark,
};

/// Largest `history` page and `sync` batch.
pub(crate) const MAX_PAGE: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct HistoryReq {
    conversation: ConversationId,
    before: Option<MessageId>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryRes {
    messages: Vec<Message>,
    has_more: bool,
}

pub(crate) async fn history<A: Adapter>(
    call: Call<A>,
    req: HistoryReq,
) -> Result<HistoryRes, ChatError> {
    let limit = match req.limit {
        None => 50,
        Some(n) if (1..=MAX_PAGE as i64).contains(&n) => n as usize,
        Some(_) => return Err(ChatError::bad_request("limit must be 1-100")),
    };
    call.authorize(&req.conversation).await?;
    let (messages, has_more) = page(&call.ctx, &req.conversation, req.before, limit).await?;
    Ok(HistoryRes { messages, has_more })
}

/// Up to `limit` messages of `conversation` older than `before`, oldest first, and whether
/// older ones exist: from the store, then (with an archive) from the archive past what the
/// store keeps, in one page with no gap or repeat at the boundary.
pub(crate) async fn page(
    ctx: &Ctx,
    conversation: &ConversationId,
    before: Option<MessageId>,
    limit: usize,
) -> Result<(Vec<Message>, bool), ChatError> {
    let (mut messages, has_more) = ctx
        .stores
        .messages
        .history(conversation, before, limit)
        .await?;
    let Some(archiver) = &ctx.archive else {
        return Ok((messages, has_more));
    };
    if has_more {
        return Ok((messages, has_more));
    }
    // The store has nothing older: the archive goes on from its oldest message (a full page
    // asks it for one, to tell whether older ones exist).
    let older_than = messages.first().map(|m| m.id).or(before);
    let wanted = limit - messages.len().min(limit);
    match archiver
        .read(
            archiver
                .archive()
                .history(conversation, older_than, wanted.max(1)),
        )
        .await
    {
        Ok(older) if wanted == 0 => {
            let has_more = !older.messages.is_empty();
            Ok((messages, has_more))
        }
        Ok(older) => {
            let mut page = older.messages;
            page.append(&mut messages);
            Ok((page, older.has_more))
        }
        // What the store has, and the rest when asked again.
        Err(e) if !messages.is_empty() => {
            tracing::warn!(cause = %e, "archive unavailable: history stops at the store");
            Ok((messages, true))
        }
        Err(e) => Err(crate::archive::unavailable(&e)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncReq {
    cursor: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SyncRes {
    messages: Vec<Message>,
    cursor: StreamId,
    has_more: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

pub(crate) async fn sync<A: Adapter>(call: Call<A>, req: SyncReq) -> Result<SyncRes, ChatError> {
    let cursor = req
        .cursor
        .map(|c| c.parse::<StreamId>())
        .transpose()
        .map_err(|_| ChatError::bad_request("malformed cursor"))?;
    let page = call
        .ctx
        .stores
        .messages
        .sync(&call.user, cursor, MAX_PAGE)
        .await?;
    mark_delivered(&call, &page.messages).await;
    Ok(SyncRes {
        messages: page.messages,
        cursor: page.cursor,
        has_more: page.has_more,
        truncated: page.truncated,
    })
}

/// What a device fetched through `sync` counts as delivered to the user.
async fn mark_delivered<A: Adapter>(call: &Call<A>, messages: &[Message]) {
    let mut newest: BTreeMap<&ConversationId, MessageId> = BTreeMap::new();
    for m in messages.iter().filter(|m| m.from != call.user) {
        newest.insert(&m.conversation, m.id);
    }
    for (conversation, id) in newest {
        let group = match conversation {
            ConversationId::Group(g) => call.ctx.stores.groups.get(g).await.ok().flatten(),
            ConversationId::Dm(..) => None,
        };
        let covered = call
            .ctx
            .stores
            .messages
            .advance(&call.user, conversation, id, Mark::Delivered)
            .await;
        match covered {
            Ok(covered) if call.receipts_for(group.as_ref()) => {
                receipts::emit(
                    &call.socket,
                    conversation,
                    &call.user,
                    covered,
                    Mark::Delivered,
                )
                .await
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(cause = %e, "cannot record delivery"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConversationsReq {}

#[derive(Debug, Serialize)]
pub(crate) struct ConversationsRes {
    conversations: Vec<ConversationSummary>,
}

pub(crate) async fn conversations<A: Adapter>(
    call: Call<A>,
    _: ConversationsReq,
) -> Result<ConversationsRes, ChatError> {
    let groups = call.ctx.stores.groups.of_user(&call.user).await?;
    let conversations = call
        .ctx
        .stores
        .messages
        .conversations(&call.user, &groups)
        .await?;
    Ok(ConversationsRes { conversations })
}
