//! Message delivery, once per node, with delivery receipts straight from the devices' acks.
//!
//! A stored message goes to each other node that hosts one of its rooms as one chat-level
//! cluster message ([`Envelope::Deliver`]), and every node, the sender's included, emits it
//! to its own devices in those rooms: one broadcast per node, however many recipients.
//! Where receipts apply the emit asks for acks, and the node that gets a recipient's first
//! ack queues a `delivered` receipt for the sender. [`send_delivered`] sends the queued
//! receipts in batches: one cluster message per sender and batch ([`Envelope::Receipts`]),
//! with one receipt per recipient and conversation (receipts are cumulative).
//!
//! Live deliveries touch no store: the ack names the message and its sender, which is all a
//! receipt needs. The stored delivered mark moves only when a device fetches messages
//! (`sync`, `history`) or the user reads, where it says which senders are owed a receipt.
//! A recipient with devices on several nodes may send a receipt from each; clients keep the
//! newest per user.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use futures_util::StreamExt;
use serde::de::IgnoredAny;
use socketioxide::{AckError, SocketIo, adapter::Adapter, operators::BroadcastOperators};
use socketioxide_core::Uid;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Ctx;
use crate::{
    auth::Identity,
    cluster::{
        ClusterEvent, Events,
        envelope::{Envelope, Receipt},
    },
    keys::rooms,
    protocol::{ConversationId, Message, MessageId, UserId, events},
    store::Mark,
};

/// A recipient's device acked a message.
#[derive(Debug)]
pub(crate) struct Delivered {
    recipient: UserId,
    conversation: ConversationId,
    message: MessageId,
    sender: UserId,
    /// The nodes hosting the sender's devices, if the message said.
    reply: Option<Arc<Vec<Uid>>>,
}

/// Receipts waiting to go out; when full, ack handling waits (back-pressure).
const RECEIPT_QUEUE: usize = 8192;
/// Most acks turned into receipts at once.
const RECEIPT_BATCH: usize = 512;
/// How long a batch waits for more acks after its first: the acks of one message from a
/// group's devices arrive within a few milliseconds, and sent together they reach the
/// sender as one cluster message. Nobody sees 10 ms on a delivery tick.
const RECEIPT_LINGER: std::time::Duration = std::time::Duration::from_millis(10);

/// The queue between ack handling and [`send_delivered`].
pub(crate) fn receipt_queue() -> (mpsc::Sender<Delivered>, mpsc::Receiver<Delivered>) {
    mpsc::channel(RECEIPT_QUEUE)
}

/// Where a message goes and where its receipts come back, in cluster mode.
#[derive(Debug, Default)]
pub(crate) struct Route {
    /// The other nodes hosting one of the message's rooms.
    targets: Vec<Uid>,
    /// The nodes hosting the sender's devices, this one included.
    reply: Option<Vec<Uid>>,
}

/// The route of a message from `sender` to `rooms`: one round trip for both lookups. With
/// receipts off nothing comes back, and only the targets are looked up.
pub(crate) async fn route(ctx: &Ctx, rooms: &[String], sender: &UserId) -> Route {
    let Some(cluster) = &ctx.cluster else {
        return Route::default();
    };
    if !ctx.limits.receipts {
        return Route {
            targets: cluster.chat_targets(rooms).await,
            reply: None,
        };
    }
    let sender_room = [rooms::user(sender)];
    let mut found = cluster
        .chat_routes(&[rooms, &sender_room])
        .await
        .into_iter();
    let targets = found.next().unwrap_or_default();
    let mut reply = found.next().unwrap_or_default();
    reply.push(cluster.uid());
    Route {
        targets,
        reply: Some(reply),
    }
}

/// Delivers a stored message to `rooms`: to the other nodes hosting them (`route`), then
/// through `here` (this node's devices in `rooms`, usually without the sending socket) once
/// `prev`, the conversation's message before it, has been emitted here (see `order`).
pub(crate) async fn deliver<A: Adapter>(
    ctx: &Arc<Ctx>,
    here: BroadcastOperators<A>,
    message: &Message,
    prev: Option<MessageId>,
    rooms: Vec<String>,
    route: Route,
    receipts: bool,
) {
    let reply = receipts.then_some(route.reply).flatten();
    if !route.targets.is_empty() {
        let envelope = Envelope::Deliver {
            message: message.clone(),
            rooms,
            receipts,
            reply: reply.clone(),
            prev,
        };
        to_nodes(ctx, &route.targets, &envelope).await;
        ctx.metrics.delivered_remote(route.targets.len());
    }
    emit_in_order(
        ctx,
        here,
        message.clone(),
        prev,
        receipts,
        reply.map(Arc::new),
    );
}

/// Emits `message` through `op` in its conversation's id order on this node (see `order`).
fn emit_in_order<A: Adapter>(
    ctx: &Arc<Ctx>,
    op: BroadcastOperators<A>,
    message: Message,
    prev: Option<MessageId>,
    receipts: bool,
    reply: Option<Arc<Vec<Uid>>>,
) {
    let (conversation, id) = (message.conversation.clone(), message.id);
    let emit = {
        let ctx = ctx.clone();
        Box::pin(async move { emit_local(&ctx, op, &message, receipts, reply).await })
    };
    ctx.order.offer(&conversation, id, prev, emit);
}

/// Sends `envelope` to the other nodes hosting one of `rooms`, in cluster mode.
async fn to_other_nodes(ctx: &Ctx, rooms: &[String], envelope: &Envelope) {
    if let Some(cluster) = &ctx.cluster {
        to_nodes(ctx, &cluster.chat_targets(rooms).await, envelope).await;
    }
}

/// Sends `envelope` to `nodes`.
async fn to_nodes(ctx: &Ctx, nodes: &[Uid], envelope: &Envelope) {
    let Some(cluster) = ctx.cluster.as_ref().filter(|_| !nodes.is_empty()) else {
        return;
    };
    if let Err(e) = cluster.send_chat(nodes, envelope).await {
        tracing::warn!(cause = %e, "cannot reach the other nodes");
    }
}

/// Emits `message` to the devices `op` selects on this node; with `receipts`, queues a
/// delivered receipt for the first device of each recipient (not the sender) that acks.
pub(super) async fn emit_local<A: Adapter>(
    ctx: &Arc<Ctx>,
    op: BroadcastOperators<A>,
    message: &Message,
    receipts: bool,
    reply: Option<Arc<Vec<Uid>>>,
) {
    ctx.metrics
        .delivered_local(message.ts, crate::protocol::now_ms());
    if !receipts {
        if let Err(e) = op.emit(events::MESSAGE, message).await {
            tracing::warn!(conversation = %message.conversation, cause = %e, "delivery failed");
        }
        return;
    }
    let lookup = op.clone();
    let emitted = std::time::Instant::now();
    let acks = op
        .timeout(ctx.delivery_ack_timeout)
        .emit_with_ack::<_, IgnoredAny>(events::MESSAGE, message)
        .await;
    let acks = match acks {
        Ok(acks) => acks,
        Err(e) => {
            tracing::warn!(conversation = %message.conversation, cause = %e, "delivery failed");
            return;
        }
    };
    let queue = ctx.delivered.clone();
    let metrics = ctx.clone();
    let (conversation, id, from) = (
        message.conversation.clone(),
        message.id,
        message.from.clone(),
    );
    tokio::spawn(async move {
        let mut acks = std::pin::pin!(acks);
        let mut marked = HashSet::new();
        while let Some((sid, res)) = acks.next().await {
            // Any answer, even one we cannot decode, proves the device got the message.
            if !matches!(res, Ok(_) | Err(AckError::Decode(_))) {
                continue;
            }
            metrics.metrics.acked(emitted.elapsed());
            let Some(user) = lookup
                .get_socket(sid)
                .and_then(|s| s.extensions.get::<Identity>())
                .map(|i| i.user)
            else {
                continue;
            };
            if user == from || !marked.insert(user.clone()) {
                continue;
            }
            let delivered = Delivered {
                recipient: user,
                conversation: conversation.clone(),
                message: id,
                sender: from.clone(),
                reply: reply.clone(),
            };
            if queue.send(delivered).await.is_err() {
                break;
            }
        }
    });
}

/// Sends the queued delivered receipts in batches, until `stop` fires (then it sends what
/// is queued and returns).
pub(crate) async fn send_delivered<A: Adapter>(
    ctx: Arc<Ctx>,
    io: SocketIo<A>,
    mut queue: mpsc::Receiver<Delivered>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(RECEIPT_BATCH);
    loop {
        let n = tokio::select! {
            n = queue.recv_many(&mut batch, RECEIPT_BATCH) => n,
            () = stop.cancelled() => {
                queue.close();
                queue.recv_many(&mut batch, RECEIPT_QUEUE).await
            }
        };
        if n == 0 {
            return;
        }
        if batch.len() < RECEIPT_BATCH && !stop.is_cancelled() {
            tokio::time::sleep(RECEIPT_LINGER).await;
            while batch.len() < RECEIPT_BATCH {
                match queue.try_recv() {
                    Ok(ack) => batch.push(ack),
                    Err(_) => break,
                }
            }
        }
        // Receipts are cumulative: per sender, recipient and conversation, the newest counts.
        let mut newest: HashMap<(UserId, UserId, ConversationId), MessageId> = HashMap::new();
        // Where each sender's receipts go: the nodes its messages named (all of them, as the
        // sender's devices may have moved between messages), or None to look them up.
        let mut reply: HashMap<UserId, Option<Vec<Uid>>> = HashMap::new();
        for d in batch.drain(..) {
            let nodes = reply
                .entry(d.sender.clone())
                .or_insert_with(|| Some(Vec::new()));
            match (nodes.as_mut(), &d.reply) {
                (Some(known), Some(more)) => {
                    for n in more.iter() {
                        if !known.contains(n) {
                            known.push(*n);
                        }
                    }
                }
                _ => *nodes = None,
            }
            let upto = newest
                .entry((d.sender, d.recipient, d.conversation))
                .or_insert(d.message);
            *upto = (*upto).max(d.message);
        }
        let mut by_sender: HashMap<UserId, Vec<Receipt>> = HashMap::new();
        for ((sender, user, conversation), message_id) in newest {
            by_sender.entry(sender).or_default().push(Receipt {
                conversation,
                user,
                message_id,
                status: Mark::Delivered,
            });
        }
        futures_util::future::join_all(by_sender.into_iter().map(|(sender, receipts)| {
            let nodes = reply.remove(&sender).flatten();
            send_receipts_to(&ctx, &io, rooms::user(&sender), receipts, nodes)
        }))
        .await;
    }
}

/// Sends `receipts` to the devices in `room`: on `nodes` (this one among them or not), or
/// without them, on every node hosting the room.
async fn send_receipts_to<A: Adapter>(
    ctx: &Arc<Ctx>,
    io: &SocketIo<A>,
    room: String,
    receipts: Vec<Receipt>,
    nodes: Option<Vec<Uid>>,
) {
    let lookup = [room.clone()];
    let envelope = Envelope::Receipts { room, receipts };
    let here = match (&ctx.cluster, nodes) {
        (Some(cluster), Some(nodes)) => {
            let me = cluster.uid();
            let others: Vec<Uid> = nodes.iter().copied().filter(|n| *n != me).collect();
            to_nodes(ctx, &others, &envelope).await;
            nodes.contains(&me)
        }
        _ => {
            to_other_nodes(ctx, &lookup, &envelope).await;
            true
        }
    };
    if here {
        handle(ctx, io, envelope).await;
    }
}

/// Carries out an envelope on this node's devices.
async fn handle<A: Adapter>(ctx: &Arc<Ctx>, io: &SocketIo<A>, envelope: Envelope) {
    match envelope {
        Envelope::Deliver {
            message,
            rooms,
            receipts,
            reply,
            prev,
        } => emit_in_order(
            ctx,
            io.local().to(rooms),
            message,
            prev,
            receipts,
            reply.map(Arc::new),
        ),
        Envelope::Receipts { room, receipts } => {
            // The sender's few devices here, found once: a group message's receipts come in
            // dozens, and a broadcast each would look the room up again every time.
            for socket in io.local().to(room).sockets() {
                for receipt in &receipts {
                    if let Err(e) = socket.emit(events::RECEIPT, receipt) {
                        tracing::warn!(cause = %e, "cannot send receipt");
                        break;
                    }
                }
            }
        }
    }
}

/// Carries out what the cluster hands this node, one event at a time in arrival order
/// (messages then reach devices in their conversation's id order, see `order`), until
/// `stop` fires. A lost
/// node's presence cleanup runs beside, so deliveries never wait for it.
pub(crate) async fn handle_events<A: Adapter>(
    ctx: Arc<Ctx>,
    io: SocketIo<A>,
    Events(mut events): Events,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = stop.cancelled() => None,
        };
        match event {
            Some(ClusterEvent::Chat(envelope)) => handle(&ctx, &io, *envelope).await,
            Some(ClusterEvent::NodeLost(node)) => {
                let (ctx, io) = (ctx.clone(), io.clone());
                tokio::spawn(async move { super::node_lost(&ctx, &io, node).await });
            }
            Some(ClusterEvent::Rejoined) => {
                let (ctx, io) = (ctx.clone(), io.clone());
                tokio::spawn(async move { super::rejoined(&ctx, &io).await });
            }
            None => return,
        }
    }
}
