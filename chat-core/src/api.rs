//! The server API: what the product's backend does to the chat, as methods on
//! [`ChatHandle`]. Cluster-wide in cluster mode (a message posted on one node reaches
//! devices on every node; a disconnect reaches every node's sockets), with the same checks
//! as the socket path: the same limits, membership, blocks and idempotency, the same error
//! codes. chat-server serves it over HTTP (`docs/api.md`).

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::{
    error::ChatError,
    handlers::{group_admin, groups, history, messages, search},
    keys::{buckets, rooms},
    protocol::{
        ConversationId, Group, GroupId, Message, MessageId, PresenceState, UserId, Visibility,
        events, now_ms,
    },
    server::ChatHandle,
};

pub use crate::handlers::{
    group_admin::GroupChange,
    messages::{Sent, Target},
    search::{Found, FoundConversation, MAX_QUERY, MAX_RESULTS, SearchResults},
};

/// A message the backend posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// The sender; `None` posts a system message (sender [`crate::protocol::SYSTEM_SENDER`]).
    pub from: Option<UserId>,
    /// A user (a DM; with no sender, the user's DM with the system sender) or a group.
    pub to: Target,
    /// The text: 1 to `max_body` characters.
    pub body: String,
    /// An idempotency key, as on the socket path: the same `(from, clientId)` again answers
    /// the first message with `duplicate`.
    pub client_id: Option<String>,
}

/// The longest ban [`ChatHandle::disconnect_user`] takes: a year.
pub const MAX_BAN: Duration = Duration::from_secs(365 * 24 * 3600);

/// What every connected client gets from [`ChatHandle::announce`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Announcement {
    /// The text.
    pub body: String,
    /// Server time, ms since the epoch.
    pub ts: u64,
}

impl ChatHandle {
    /// Posts a message as a user (spending their message rate, as their own sends do) or as
    /// the system, stores it and delivers it to every device of its recipients, the
    /// sender's included.
    pub async fn send_message(&self, post: Post) -> Result<Sent, ChatError> {
        let ctx = &self.ctx;
        let from = post.from.unwrap_or_else(UserId::system);
        let mut out = messages::prepare(&ctx.limits, &from, post.to, post.body, post.client_id)?;
        messages::moderate(ctx, &mut out).await?;
        let bucket = buckets::messages(&from);
        let budget: Vec<_> = match from.is_system() {
            true => Vec::new(),
            false => vec![(bucket.as_str(), ctx.limits.message_rate)],
        };
        let io = self.io.clone();
        messages::post(ctx, out, &budget, move |rooms| io.to(rooms).local()).await
    }

    /// Creates a group owned by `owner`, with `members` besides; a public one is found by
    /// name (`group:find`).
    pub async fn create_group(
        &self,
        owner: &UserId,
        name: &str,
        members: Vec<UserId>,
        visibility: Visibility,
    ) -> Result<Group, ChatError> {
        groups::create_group(&self.ctx, owner, name, members, visibility, |r| {
            self.io.within(r)
        })
        .await
    }

    /// Adds `user` to a group (its size and the user's group count within their limits);
    /// their connected devices join it at once. Returns the group and whether the user was
    /// added (false: already a member).
    pub async fn add_member(
        &self,
        group: &GroupId,
        user: &UserId,
    ) -> Result<(Group, bool), ChatError> {
        groups::add_member(&self.ctx, group, user, |r| self.io.within(r)).await
    }

    /// Removes `user` from a group. False if they were not a member; `not_found` if the
    /// group does not exist.
    pub async fn remove_member(&self, group: &GroupId, user: &UserId) -> Result<bool, ChatError> {
        if self.ctx.stores.groups.get(group).await?.is_none() {
            return Err(ChatError::not_found("no such group"));
        }
        groups::remove_member(&self.ctx, group, user, None, |r| self.io.within(r)).await
    }

    /// Renames a group, sets its topic (`Some("")` clears it) or its visibility; members
    /// are told (`group:updated`).
    pub async fn update_group(
        &self,
        group: &GroupId,
        change: GroupChange<'_>,
    ) -> Result<Group, ChatError> {
        group_admin::update_group(&self.ctx, group, None, change, |r| self.io.within(r)).await
    }

    /// Gives a member the admin role (`admin`) or takes it away; members are told.
    pub async fn set_admin(
        &self,
        group: &GroupId,
        user: &UserId,
        admin: bool,
    ) -> Result<Group, ChatError> {
        group_admin::set_admin(&self.ctx, group, None, user, admin, |r| self.io.within(r)).await
    }

    /// Deletes a group and its messages; members are told and leave it on every node.
    pub async fn delete_group(&self, group: &GroupId) -> Result<(), ChatError> {
        group_admin::delete_group(&self.ctx, group, None, |r| self.io.within(r)).await
    }

    /// Up to `limit` (1–100) messages of a conversation older than `before` (or the newest),
    /// oldest first, and whether older ones exist. The backend reads any conversation.
    pub async fn history(
        &self,
        conversation: &ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), ChatError> {
        if !(1..=history::MAX_PAGE).contains(&limit) {
            return Err(ChatError::bad_request("limit must be 1-100"));
        }
        if let ConversationId::Group(id) = conversation
            && self.ctx.stores.groups.get(id).await?.is_none()
        {
            return Err(ChatError::not_found("no such group"));
        }
        history::page(&self.ctx, conversation, before, limit).await
    }

    /// Full-text search in the archive, newest first: as `user` (their DMs and current
    /// groups), in one `conversation` (the backend reads any; with a user too, they must be
    /// in it), or both. `limit` 1-[`MAX_RESULTS`]; `cursor` from the previous page.
    /// `unavailable` without an archive.
    pub async fn search(
        &self,
        user: Option<&UserId>,
        conversation: Option<&ConversationId>,
        query: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<SearchResults, ChatError> {
        if !(1..=MAX_RESULTS).contains(&limit) {
            return Err(ChatError::bad_request(format!(
                "limit must be 1-{MAX_RESULTS}"
            )));
        }
        search::check_query(query)?;
        let scope = match (user, conversation) {
            (None, None) => {
                return Err(ChatError::bad_request(
                    "give a user, a conversation or both",
                ));
            }
            (Some(user), None) => search::scope_of(&self.ctx, user).await?,
            (user, Some(conversation)) => {
                match conversation {
                    ConversationId::Group(id) => {
                        let group = self.ctx.stores.groups.get(id).await?;
                        let Some(group) = group else {
                            return Err(ChatError::not_found("no such group"));
                        };
                        if user.is_some_and(|u| !group.members.contains(u)) {
                            return Err(ChatError::forbidden(
                                "the user is not a member of this group",
                            ));
                        }
                    }
                    ConversationId::Dm(..) => {
                        if user.is_some_and(|u| conversation.dm_peer(u).is_none()) {
                            return Err(ChatError::forbidden(
                                "the user is not part of this conversation",
                            ));
                        }
                    }
                }
                crate::archive::SearchScope {
                    dms_of: None,
                    conversations: vec![conversation.clone()],
                }
            }
        };
        search::run(&self.ctx, &scope, query, cursor, limit).await
    }

    /// Whether each user is online, and when they were last seen (at most
    /// `presence_batch` users, 100 by default).
    pub async fn presence(&self, users: &[UserId]) -> Result<Vec<PresenceState>, ChatError> {
        let max = self.ctx.limits.presence_batch;
        if users.is_empty() || users.len() > max {
            return Err(ChatError::bad_request(format!("ask for 1-{max} users")));
        }
        Ok(self.ctx.stores.presence.get(users).await?)
    }

    /// Disconnects every device of `user` on every node; with `ban`, first refuses their
    /// connections for that long (at most [`MAX_BAN`]): their `connect_error` says
    /// `banned: until <ms>`. Returns how many sockets were disconnected.
    pub async fn disconnect_user(
        &self,
        user: &UserId,
        ban: Option<Duration>,
    ) -> Result<usize, ChatError> {
        if let Some(ban) = ban {
            if ban.is_zero() || ban > MAX_BAN {
                return Err(ChatError::bad_request(format!(
                    "banSeconds must be 1-{}",
                    MAX_BAN.as_secs()
                )));
            }
            let until = now_ms() + ban.as_millis() as u64;
            self.ctx.stores.bans.ban(user, until).await?;
        }
        let room = rooms::user(user);
        let sockets = self
            .io
            .within(room.clone())
            .fetch_sockets()
            .await
            .map_err(|e| unavailable("cannot reach every node", &e))?;
        self.io
            .within(room)
            .disconnect()
            .await
            .map_err(|e| unavailable("cannot reach every node", &e))?;
        tracing::info!(user = %user, sockets = sockets.len(), banned = ban.is_some(), "user disconnected by the server api");
        Ok(sockets.len())
    }

    /// Sends `announcement {body, ts}` to every connected client of the cluster, once.
    pub async fn announce(&self, body: &str) -> Result<Announcement, ChatError> {
        let len = body.chars().count();
        if len == 0 || len > self.ctx.limits.max_body {
            return Err(ChatError::bad_request(format!(
                "body must be 1-{} characters",
                self.ctx.limits.max_body
            )));
        }
        let announcement = Announcement {
            body: body.to_owned(),
            ts: now_ms(),
        };
        self.io
            .emit(events::ANNOUNCEMENT, &json!(announcement))
            .await
            .map_err(|e| unavailable("cannot reach every node", &e))?;
        Ok(announcement)
    }
}

fn unavailable(message: &str, cause: &dyn std::fmt::Display) -> ChatError {
    tracing::warn!(%cause, "{message}");
    ChatError::new(crate::ErrorCode::Unavailable, format!("{message}; retry"))
}
