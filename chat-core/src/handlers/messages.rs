//! `message:send`: store first, then deliver to every device of every recipient.

use serde::{Deserialize, Serialize};
use socketioxide::adapter::Adapter;

use super::{Call, delivery, rooms};
use crate::{
    error::{ChatError, ErrorCode},
    protocol::{ConversationId, GroupId, Message, UserId, now_ms},
    store::{Appended, NewMessage},
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SendReq {
    to: Option<UserId>,
    group: Option<GroupId>,
    body: String,
    client_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct SendRes {
    message: Message,
    duplicate: bool,
}

pub(crate) async fn send<A: Adapter>(call: Call<A>, req: SendReq) -> Result<SendRes, ChatError> {
    let ctx = &call.ctx;
    let len = req.body.chars().count();
    if len == 0 {
        return Err(ChatError::bad_request("body must not be empty"));
    }
    if len > ctx.limits.max_body {
        return Err(ChatError::too_large(format!(
            "body is over {} characters",
            ctx.limits.max_body
        )));
    }
    if let Some(id) = &req.client_id
        && (id.is_empty() || id.chars().count() > 64)
    {
        return Err(ChatError::bad_request("clientId must be 1-64 characters"));
    }
    let (conversation, audience, group) = match (req.to, req.group) {
        (Some(to), None) => {
            if to == call.user {
                return Err(ChatError::bad_request("you cannot message yourself"));
            }
            if ctx.stores.blocks.is_blocked(&to, &call.user).await? {
                return Err(ChatError::forbidden("you cannot message this user"));
            }
            let conversation = ConversationId::dm(&call.user, &to);
            (conversation, vec![call.user.clone(), to], None)
        }
        (None, Some(group)) => {
            let conversation = ConversationId::Group(group);
            let group = call.authorize(&conversation).await?;
            let audience = group
                .as_ref()
                .map(|g| g.members.clone())
                .unwrap_or_default();
            (conversation, audience, group)
        }
        _ => {
            return Err(ChatError::bad_request(
                "give exactly one of `to` or `group`",
            ));
        }
    };
    // A DM goes to both users' rooms, a group message to the group's room.
    let rooms: Vec<String> = match &conversation {
        ConversationId::Group(g) => vec![rooms::group(g)],
        ConversationId::Dm(..) => audience.iter().map(rooms::user).collect(),
    };
    let new = NewMessage {
        conversation,
        from: call.user.clone(),
        body: req.body,
        ts: now_ms(),
        client_id: req.client_id,
    };
    // Which nodes host the rooms is looked up while the message is stored: both go to Redis
    // in one round trip.
    let (appended, route) = tokio::join!(
        ctx.stores.messages.append(new, &audience),
        delivery::route(ctx, &rooms)
    );
    match appended? {
        Appended::New(message) => {
            let receipts = call.receipts_for(group.as_ref());
            // This node's devices in those rooms, except the sending one (it gets the ack).
            let here = call.socket.to(rooms.clone()).local();
            delivery::deliver(ctx, here, &message, rooms, route, receipts).await;
            Ok(SendRes {
                message,
                duplicate: false,
            })
        }
        Appended::Duplicate(message) => Ok(SendRes {
            message,
            duplicate: true,
        }),
        Appended::Conflict => Err(ChatError::new(
            ErrorCode::Conflict,
            "clientId was already used for a different message",
        )),
    }
}
