//! `search`: full-text search in the archive over the conversations a user may read (their
//! DMs and the groups they are a member of now), newest first, paged. The server API
//! searches through the same steps ([`run`]).

use serde::{Deserialize, Serialize};
use socketioxide::adapter::Adapter;

use super::{Call, Ctx};
use crate::{
    archive::{SearchScope, unavailable},
    error::{ChatError, ErrorCode},
    protocol::{ConversationId, Message, MessageId, UserId},
};

/// Longest query, in characters.
pub const MAX_QUERY: usize = 200;
/// Largest page.
pub const MAX_RESULTS: usize = 50;
/// The page size when none is asked for.
const DEFAULT_RESULTS: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SearchReq {
    query: String,
    conversation: Option<ConversationId>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// A page of search results, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResults {
    /// The matching messages, each with its conversation.
    pub results: Vec<Found>,
    /// Where the next page starts (ask again with it), when older messages match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One matching message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Found {
    /// Where it was sent.
    pub conversation: FoundConversation,
    /// The message as stored.
    pub message: Message,
}

/// The conversation of a result: its id, and its name for a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundConversation {
    /// The conversation.
    pub id: ConversationId,
    /// The group's name, for groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

pub(crate) async fn search<A: Adapter>(
    call: Call<A>,
    req: SearchReq,
) -> Result<SearchResults, ChatError> {
    let limit = match req.limit {
        None => DEFAULT_RESULTS,
        Some(n) if (1..=MAX_RESULTS as i64).contains(&n) => n as usize,
        Some(_) => {
            return Err(ChatError::bad_request(format!(
                "limit must be 1-{MAX_RESULTS}"
            )));
        }
    };
    check_query(&req.query)?;
    let scope = match &req.conversation {
        Some(conversation) => {
            call.authorize(conversation).await?;
            SearchScope {
                dms_of: None,
                conversations: vec![conversation.clone()],
            }
        }
        None => scope_of(&call.ctx, &call.user).await?,
    };
    run(&call.ctx, &scope, &req.query, req.cursor.as_deref(), limit).await
}

/// What `user` may search: their DMs and their groups.
pub(crate) async fn scope_of(ctx: &Ctx, user: &UserId) -> Result<SearchScope, ChatError> {
    let groups = ctx.stores.groups.of_user(user).await?;
    Ok(SearchScope {
        dms_of: Some(user.clone()),
        conversations: groups
            .into_iter()
            .map(|g| ConversationId::Group(g.id))
            .collect(),
    })
}

/// A query is 1-[`MAX_QUERY`] characters, not all blank.
pub(crate) fn check_query(query: &str) -> Result<(), ChatError> {
    if query.trim().is_empty() {
        return Err(ChatError::bad_request("query must not be empty"));
    }
    if query.chars().count() > MAX_QUERY {
        return Err(ChatError::too_large(format!(
            "query is over {MAX_QUERY} characters"
        )));
    }
    Ok(())
}

/// Searches `scope` in the archive (checked query, limit and scope), after `cursor`.
pub(crate) async fn run(
    ctx: &Ctx,
    scope: &SearchScope,
    query: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<SearchResults, ChatError> {
    let Some(archiver) = &ctx.archive else {
        return Err(ChatError::new(
            ErrorCode::Unavailable,
            "search needs the archive, which is off (CHAT_DATABASE_URL)",
        ));
    };
    let after = cursor.map(parse_cursor).transpose()?;
    let page = archiver
        .read(archiver.archive().search(scope, query, after, limit))
        .await
        .map_err(|e| unavailable(&e))?;
    let cursor = match (page.has_more, page.messages.last()) {
        (true, Some(last)) => Some(format!("{}/{}", last.id, last.conversation)),
        _ => None,
    };
    let mut results = Vec::with_capacity(page.messages.len());
    let mut names = std::collections::HashMap::new();
    for message in page.messages {
        let name = match &message.conversation {
            ConversationId::Group(g) => match names.get(g) {
                Some(name) => name,
                None => {
                    let name = ctx.stores.groups.get(g).await?.map(|g| g.name);
                    names.entry(g.clone()).or_insert(name)
                }
            }
            .clone(),
            ConversationId::Dm(..) => None,
        };
        let conversation = FoundConversation {
            id: message.conversation.clone(),
            name,
        };
        results.push(Found {
            conversation,
            message,
        });
    }
    Ok(SearchResults { results, cursor })
}

/// A cursor is `<message id>/<conversation>`, as [`run`] hands it out.
fn parse_cursor(cursor: &str) -> Result<(MessageId, ConversationId), ChatError> {
    let bad = || ChatError::bad_request("malformed cursor");
    let (id, conversation) = cursor.split_once('/').ok_or_else(bad)?;
    Ok((
        id.parse().map_err(|_| bad())?,
        conversation.parse().map_err(|_| bad())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let (id, conversation) = parse_cursor("17-2/dm:ann:bob").unwrap();
        assert_eq!(id, MessageId { ms: 17, seq: 2 });
        assert_eq!(conversation.to_string(), "dm:ann:bob");
        for bad in ["", "17-2", "x/dm:ann:bob", "17-2/dm:bob:ann", "17-2/nope"] {
            assert!(parse_cursor(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn queries_are_checked() {
        assert!(check_query("deploy").is_ok());
        assert_eq!(check_query("  ").unwrap_err().code, ErrorCode::BadRequest);
        let long = "a".repeat(MAX_QUERY + 1);
        assert_eq!(check_query(&long).unwrap_err().code, ErrorCode::TooLarge);
        assert!(check_query(&"é".repeat(MAX_QUERY)).is_ok());
    }
}
