//! Filling gaps: when a held-back message's wait ends, the messages missing before it are
//! read from the store and emitted first.

use std::{future::Future, sync::Arc, time::Duration};

use socketioxide::{SocketIo, adapter::Adapter};
use tokio_util::sync::CancellationToken;

use super::{Emit, FILL_MAX, IDLE, Sequencer, Waits};
use crate::{
    handlers::{Ctx, delivery},
    keys::rooms,
    protocol::{ConversationId, Message, MessageId},
};

/// Longest read of a fill: past it the held-back messages go without the missing ones.
const FILL_TIMEOUT: Duration = Duration::from_secs(1);

/// Ends the waits of held-back messages as they fall due, filling each gap from the store in
/// a task of its own (a slow read holds up no other conversation), and forgets idle
/// conversations; until `stop` fires.
pub(crate) async fn fill_gaps<A: Adapter>(
    ctx: Arc<Ctx>,
    io: SocketIo<A>,
    waits: Waits,
    stop: CancellationToken,
) {
    let order = ctx.order.clone();
    let read = move |conversation: ConversationId, upto: MessageId| {
        let (ctx, io) = (ctx.clone(), io.clone());
        async move { read_gap(&ctx, &io, &conversation, upto).await }
    };
    run(order, waits, read, stop).await;
}

/// [`fill_gaps`] with `read` for the store: the messages of a conversation before an id,
/// oldest first, each with its emit.
pub(super) async fn run<R, F>(
    order: Arc<Sequencer>,
    Waits(mut waits): Waits,
    read: R,
    stop: CancellationToken,
) where
    R: Fn(ConversationId, MessageId) -> F + Clone + Send + 'static,
    F: Future<Output = Vec<(MessageId, Emit)>> + Send + 'static,
{
    let mut sweep = tokio::time::interval(IDLE / 2);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Every wait is GAP_WAIT long, so they fall due in the order they were queued.
        let wait = tokio::select! {
            wait = waits.recv() => match wait {
                Some(wait) => wait,
                None => return,
            },
            _ = sweep.tick() => {
                let tracked = order.forget_idle();
                tracing::debug!(tracked, "live order: idle conversations forgotten");
                continue;
            }
            () = stop.cancelled() => return,
        };
        tokio::select! {
            () = tokio::time::sleep_until(wait.until) => {}
            () = stop.cancelled() => return,
        }
        if order.gap(&wait.conversation, wait.id) {
            tokio::spawn(fill(
                order.clone(),
                read.clone(),
                wait.conversation,
                wait.id,
            ));
        }
    }
}

/// Reads the messages of `conversation` before `upto` and hands them to the sequencer,
/// again while more waits of the conversation ended meanwhile.
async fn fill<R, F>(
    order: Arc<Sequencer>,
    read: R,
    conversation: ConversationId,
    mut upto: MessageId,
) where
    R: Fn(ConversationId, MessageId) -> F,
    F: Future<Output = Vec<(MessageId, Emit)>>,
{
    loop {
        let found = read(conversation.clone(), upto).await;
        match order.filled(&conversation, upto, found) {
            Some(next) => upto = next,
            None => return,
        }
    }
}

/// The newest [`FILL_MAX`] messages of `conversation` before `upto` in the store, with
/// their emits; none if the store cannot say in time.
async fn read_gap<A: Adapter>(
    ctx: &Arc<Ctx>,
    io: &SocketIo<A>,
    conversation: &ConversationId,
    upto: MessageId,
) -> Vec<(MessageId, Emit)> {
    let read = ctx
        .stores
        .messages
        .history(conversation, Some(upto), FILL_MAX);
    let found = match tokio::time::timeout(FILL_TIMEOUT, read).await {
        Ok(Ok((messages, _))) => messages,
        Ok(Err(e)) => {
            tracing::warn!(%conversation, cause = %e, "live order: cannot read a gap");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(%conversation, "live order: reading a gap timed out");
            Vec::new()
        }
    };
    found
        .into_iter()
        .map(|m| (m.id, emit_to_conversation(ctx, io, m)))
        .collect()
}

/// The emit of a message read from the store to this node's devices in its conversation:
/// the DM's two users, or the group. Receipts as for a DM; none in groups, whose size the
/// store's answer does not give (a later message's receipt covers it).
fn emit_to_conversation<A: Adapter>(ctx: &Arc<Ctx>, io: &SocketIo<A>, message: Message) -> Emit {
    let targets = match &message.conversation {
        ConversationId::Dm(a, b) => vec![rooms::user(a), rooms::user(b)],
        ConversationId::Group(g) => vec![rooms::group(g)],
    };
    let receipts = matches!(message.conversation, ConversationId::Dm(..)) && ctx.receipts_for(None);
    let (ctx, op) = (ctx.clone(), io.local().to(targets));
    Box::pin(async move { delivery::emit_local(&ctx, op, &message, receipts, None).await })
}
