//! `message:send`: store first, then deliver to every device of every recipient.

use serde::{Deserialize, Serialize};
use socketioxide::adapter::Adapter;

use super::{Call, delivery, rate_limited};
use crate::{
    error::{ChatError, ErrorCode},
    keys::rooms,
    protocol::{ConversationId, GroupId, Message, UserId, now_ms},
    store::{Appended, NewMessage, Refusal},
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
    let (new, rooms) = match check(&call, req) {
        Ok(checked) => checked,
        Err(e) => return Err(call.refuse(e).await),
    };
    let ctx = &call.ctx;
    let dm = matches!(new.conversation, ConversationId::Dm(..));
    // The message's budget, the block or membership check and the append are one step in
    // the store; which nodes host the rooms is looked up meanwhile (one round trip for both).
    let budget = call.budget();
    let buckets = budget.buckets();
    let (appended, route) = tokio::join!(
        ctx.stores.messages.append(new, &buckets),
        delivery::route(ctx, &rooms, &call.user)
    );
    match appended? {
        Appended::New { message, audience } => {
            ctx.metrics.stored();
            let receipts = ctx.receipts_for((!dm).then_some(audience));
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
        Appended::Refused(why) => Err(match why {
            Refusal::RateLimited => rate_limited(),
            Refusal::Blocked => ChatError::forbidden("you cannot message this user"),
            Refusal::NoGroup => ChatError::not_found("no such group"),
            Refusal::NotMember => ChatError::forbidden("you are not a member of this group"),
        }),
    }
}

/// What can be checked without the store: the message to append, and the rooms it goes to
/// (a DM to both users' rooms, a group message to the group's room).
fn check<A: Adapter>(call: &Call<A>, req: SendReq) -> Result<(NewMessage, Vec<String>), ChatError> {
    let len = req.body.chars().count();
    if len == 0 {
        return Err(ChatError::bad_request("body must not be empty"));
    }
    if len > call.ctx.limits.max_body {
        return Err(ChatError::too_large(format!(
            "body is over {} characters",
            call.ctx.limits.max_body
        )));
    }
    if let Some(id) = &req.client_id
        && (id.is_empty() || id.chars().count() > 64)
    {
        return Err(ChatError::bad_request("clientId must be 1-64 characters"));
    }
    let (conversation, rooms) = match (req.to, req.group) {
        (Some(to), None) => {
            if to == call.user {
                return Err(ChatError::bad_request("you cannot message yourself"));
            }
            let rooms = vec![rooms::user(&call.user), rooms::user(&to)];
            (ConversationId::dm(&call.user, &to), rooms)
        }
        (None, Some(group)) => {
            let rooms = vec![rooms::group(&group)];
            (ConversationId::Group(group), rooms)
        }
        _ => {
            return Err(ChatError::bad_request(
                "give exactly one of `to` or `group`",
            ));
        }
    };
    let new = NewMessage {
        conversation,
        from: call.user.clone(),
        body: req.body,
        ts: now_ms(),
        client_id: req.client_id,
    };
    Ok((new, rooms))
}
