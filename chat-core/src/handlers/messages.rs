//! `message:send`: store first, then deliver to every device of every recipient. The
//! server API sends through the same steps ([`prepare`], [`moderate`], [`post`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use socketioxide::{adapter::Adapter, operators::BroadcastOperators};

use super::{Call, Ctx, delivery, notify::Notice, rate_limited};
use crate::{
    config::{Limits, Rate},
    error::{ChatError, ErrorCode},
    hooks::{Draft, Verdict},
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

/// A message sent: the stored one, and whether it had been sent before with the same
/// `clientId` (then nothing new was stored or delivered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    /// The stored message.
    pub message: Message,
    /// The sender had already sent it (same `clientId`): this is the first one.
    pub duplicate: bool,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A direct message to this user.
    User(UserId),
    /// A message to this group.
    Group(GroupId),
}

/// A checked message: what to append, and the rooms it goes to (a DM to both users'
/// rooms, a group message to the group's room).
#[derive(Debug)]
pub(crate) struct Outgoing {
    new: NewMessage,
    rooms: Vec<String>,
}

pub(crate) async fn send<A: Adapter>(call: Call<A>, req: SendReq) -> Result<Sent, ChatError> {
    let target = match (req.to, req.group) {
        (Some(to), None) => Target::User(to),
        (None, Some(group)) => Target::Group(group),
        _ => {
            let e = ChatError::bad_request("give exactly one of `to` or `group`");
            return Err(call.refuse(e).await);
        }
    };
    let prepared = prepare(
        &call.ctx.limits,
        &call.user,
        target,
        req.body,
        req.client_id,
    );
    let mut out = match prepared {
        Ok(out) => out,
        Err(e) => return Err(call.refuse(e).await),
    };
    if let Err(e) = moderate(&call.ctx, &mut out).await {
        return Err(call.refuse(e).await);
    }
    let budget = call.budget();
    // This node's devices in those rooms, except the sending one (it gets the ack).
    let socket = call.socket.clone();
    post(&call.ctx, out, &budget.buckets(), move |rooms| {
        socket.to(rooms).local()
    })
    .await
}

/// What can be checked without the store: the body, the `clientId` and the target.
pub(crate) fn prepare(
    limits: &Limits,
    from: &UserId,
    target: Target,
    body: String,
    client_id: Option<String>,
) -> Result<Outgoing, ChatError> {
    check_body(limits, &body)?;
    if let Some(id) = &client_id
        && (id.is_empty() || id.chars().count() > 64)
    {
        return Err(ChatError::bad_request("clientId must be 1-64 characters"));
    }
    let (conversation, rooms) = match target {
        Target::User(to) => {
            if &to == from {
                return Err(ChatError::bad_request("you cannot message yourself"));
            }
            let rooms = vec![rooms::user(from), rooms::user(&to)];
            (ConversationId::dm(from, &to), rooms)
        }
        Target::Group(group) => {
            let rooms = vec![rooms::group(&group)];
            (ConversationId::Group(group), rooms)
        }
    };
    let new = NewMessage {
        conversation,
        from: from.clone(),
        body,
        ts: now_ms(),
        client_id,
    };
    Ok(Outgoing { new, rooms })
}

fn check_body(limits: &Limits, body: &str) -> Result<(), ChatError> {
    let len = body.chars().count();
    if len == 0 {
        return Err(ChatError::bad_request("body must not be empty"));
    }
    if len > limits.max_body {
        return Err(ChatError::too_large(format!(
            "body is over {} characters",
            limits.max_body
        )));
    }
    Ok(())
}

/// Runs the embedder's message hook, if any: the message goes on as it is, rewritten (and
/// checked again), or is refused.
pub(crate) async fn moderate(ctx: &Ctx, out: &mut Outgoing) -> Result<(), ChatError> {
    let Some(hook) = &ctx.message_hook else {
        return Ok(());
    };
    let draft = Draft {
        from: &out.new.from,
        conversation: &out.new.conversation,
        body: &out.new.body,
    };
    match hook.check(draft).await {
        Verdict::Accept => Ok(()),
        Verdict::Rewrite(body) => {
            check_body(&ctx.limits, &body)?;
            out.new.body = body;
            Ok(())
        }
        Verdict::Refuse(e) => Err(e),
    }
}

/// Stores `out` (spending `budget` in the same step), then delivers it: to the other nodes
/// hosting its rooms, and to this node's devices `here` selects in them; with an archive,
/// queues it for the archive before answering (a failure there fails the send: the client
/// sends it again with its `clientId`, and the duplicate is queued).
pub(crate) async fn post<A: Adapter>(
    ctx: &Arc<Ctx>,
    out: Outgoing,
    budget: &[(&str, Rate)],
    here: impl FnOnce(Vec<String>) -> BroadcastOperators<A>,
) -> Result<Sent, ChatError> {
    let Outgoing { new, rooms } = out;
    let dm = matches!(new.conversation, ConversationId::Dm(..));
    // The message's budget, the block or membership check and the append are one step in
    // the store; which nodes host the rooms is looked up meanwhile (one round trip for both).
    let sender = new.from.clone();
    let (appended, route) = tokio::join!(
        ctx.stores.messages.append(new, budget),
        delivery::route(ctx, &rooms, &sender)
    );
    match appended? {
        Appended::New {
            message,
            audience,
            prev,
        } => {
            ctx.metrics.stored();
            let receipts = ctx.receipts_for((!dm).then_some(audience));
            let local = here(rooms.clone());
            // Queued for the archive before the ack, delivered meanwhile.
            let ((), queued) = tokio::join!(
                delivery::deliver(ctx, local, &message, prev, rooms, route, receipts),
                archive(ctx, &message)
            );
            ctx.notify(|| Notice::Stored(message.clone()));
            queued?;
            Ok(Sent {
                message,
                duplicate: false,
            })
        }
        Appended::Duplicate(message) => {
            // Queued again: the first attempt may have failed before it was (idempotent).
            archive(ctx, &message).await?;
            Ok(Sent {
                message,
                duplicate: true,
            })
        }
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

/// Queues a stored message for the archive, if there is one.
async fn archive(ctx: &Ctx, message: &Message) -> Result<(), ChatError> {
    match &ctx.archive {
        Some(archiver) => archiver.enqueue(message).await,
        None => Ok(()),
    }
}
