//! `message:send`: store first, then deliver to every device of every recipient.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use socketioxide::{AckError, adapter::Adapter};

use super::{Call, rate_limited, receipts, rooms};
use crate::{
    error::{ChatError, ErrorCode},
    protocol::{ConversationId, GroupId, Message, UserId, events, now_ms},
    store::{Appended, Mark, NewMessage},
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
    if !ctx
        .stores
        .rates
        .try_acquire(&format!("msg:{}", call.user), ctx.limits.message_rate)
        .await?
    {
        return Err(rate_limited());
    }
    let new = NewMessage {
        conversation,
        from: call.user.clone(),
        body: req.body,
        ts: now_ms(),
        client_id: req.client_id,
    };
    match ctx.stores.messages.append(new, &audience).await? {
        Appended::New(message) => {
            let receipts = call.receipts_for(group.as_ref());
            deliver(&call, &message, &audience, receipts).await;
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

/// Emits a stored message to the sender's other devices and every recipient's devices.
///
/// Where receipts apply, each recipient gets its own emit asking for an ack; the first
/// device to ack moves the recipient's delivered mark and the sender gets a receipt.
async fn deliver<A: Adapter>(
    call: &Call<A>,
    message: &Message,
    audience: &[UserId],
    receipts: bool,
) {
    let sock = &call.socket;
    let result = if receipts {
        for recipient in audience.iter().filter(|u| **u != call.user) {
            watch_delivery(call, message, recipient.clone()).await;
        }
        sock.to(rooms::user(&call.user))
            .emit(events::MESSAGE, message)
            .await
    } else {
        let room = match &message.conversation {
            ConversationId::Group(g) => rooms::group(g),
            ConversationId::Dm(..) => rooms::user(&call.user),
        };
        sock.to(room).emit(events::MESSAGE, message).await
    };
    if let Err(e) = result {
        tracing::warn!(conversation = %message.conversation, cause = %e, "delivery failed");
    }
}

async fn watch_delivery<A: Adapter>(call: &Call<A>, message: &Message, recipient: UserId) {
    let stream = call
        .socket
        .broadcast()
        .to(rooms::user(&recipient))
        .timeout(call.ctx.delivery_ack_timeout)
        .emit_with_ack::<_, serde::de::IgnoredAny>(events::MESSAGE, message)
        .await;
    let stream = match stream {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(conversation = %message.conversation, cause = %e, "delivery failed");
            return;
        }
    };
    let (ctx, socket) = (call.ctx.clone(), call.socket.clone());
    let (conversation, id) = (message.conversation.clone(), message.id);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some((_, res)) = stream.next().await {
            // Any answer, even one we cannot decode, proves the device got the message.
            if matches!(res, Ok(_) | Err(AckError::Decode(_))) {
                let covered = ctx
                    .stores
                    .messages
                    .advance(&recipient, &conversation, id, Mark::Delivered)
                    .await;
                match covered {
                    Ok(covered) => {
                        receipts::emit(&socket, &conversation, &recipient, covered, Mark::Delivered)
                            .await
                    }
                    Err(e) => tracing::warn!(cause = %e, "cannot record delivery"),
                }
                break;
            }
        }
    });
}
