//! `typing`: volatile, throttled, never acknowledged.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::{Ctx, call::parse};
use crate::{
    auth::Identity,
    keys::rooms,
    protocol::{ConversationId, events, now_ms},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TypingReq {
    conversation: ConversationId,
    typing: bool,
}

/// Handles a `typing` event; never answers.
pub(super) async fn handle<A: Adapter>(s: SocketRef<A>, ctx: Arc<Ctx>, data: Option<Value>) {
    // Dropping is the contract for anything wrong here: typing is best effort.
    let Some(identity) = s.extensions.get::<Identity>() else {
        return;
    };
    if identity.expired(now_ms()) {
        return;
    }
    let user = identity.user;
    if !ctx
        .typing
        .try_acquire(user.as_str(), ctx.limits.typing_rate)
    {
        return;
    }
    let Ok(req) = parse::<TypingReq>(data.unwrap_or(Value::Null)) else {
        return;
    };
    let room = match &req.conversation {
        ConversationId::Dm(..) => {
            let Some(peer) = req.conversation.dm_peer(&user) else {
                return;
            };
            if ctx
                .stores
                .blocks
                .is_blocked(peer, &user)
                .await
                .unwrap_or(true)
            {
                return;
            }
            // With visibility `contacts`, typing tells as much as presence does.
            let shown = super::presence::visible(&ctx, peer, std::slice::from_ref(&user)).await;
            if !shown.is_ok_and(|s| s[0]) {
                return;
            }
            rooms::user(peer)
        }
        ConversationId::Group(g) => match ctx.stores.groups.get(g).await {
            Ok(Some(group)) if group.members.contains(&user) => rooms::group(g),
            _ => return,
        },
    };
    let payload = json!({
        "conversation": req.conversation,
        "user": user,
        "typing": req.typing,
    });
    let _ = s
        .broadcast()
        .to(room)
        .except(rooms::user(&user))
        .volatile()
        .emit(events::TYPING, &payload)
        .await;
}
