//! Feeds the event hooks: what the handlers report goes through a bounded queue to one task
//! that completes it (which recipients of a stored message are offline) and hands it to
//! every hook in turn. Nothing here waits on the send path.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Ctx;
use crate::{
    hooks::{ChatEvent, EventHook},
    protocol::{ConversationId, Message, UserId},
};

/// What the handlers report.
#[derive(Debug)]
pub(crate) enum Notice {
    /// A message was stored; the task finds its offline recipients.
    Stored(Message),
    /// Anything else, complete.
    Event(ChatEvent),
}

/// The queue between the handlers and [`run`].
pub(crate) fn queue(capacity: usize) -> (mpsc::Sender<Notice>, mpsc::Receiver<Notice>) {
    mpsc::channel(capacity.max(1))
}

impl Ctx {
    /// Reports to the event hooks, if there are any; drops (and counts) when they are behind.
    pub(crate) fn notify(&self, notice: impl FnOnce() -> Notice) {
        let Some(tx) = &self.notices else { return };
        let queued = tx.try_send(notice()).is_ok();
        self.metrics.hook_event(queued);
        if !queued {
            tracing::debug!("hook queue full: event dropped");
        }
    }
}

/// Hands every notice to every hook, in order, until `stop`; then what is queued.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    mut rx: mpsc::Receiver<Notice>,
    hooks: Vec<Arc<dyn EventHook>>,
    stop: CancellationToken,
) {
    loop {
        let notice = tokio::select! {
            n = rx.recv() => n,
            () = stop.cancelled() => { rx.close(); rx.recv().await }
        };
        let Some(notice) = notice else { return };
        let event = match notice {
            Notice::Event(e) => e,
            Notice::Stored(message) => {
                let offline = offline_recipients(&ctx, &message).await;
                ChatEvent::MessageStored { message, offline }
            }
        };
        for hook in &hooks {
            hook.on_event(&event).await;
        }
    }
}

/// The recipients of `message` (the DM's other user, the group's members but the sender)
/// with no connected device now. On a store error, none: a notice is not worth a retry.
async fn offline_recipients(ctx: &Ctx, message: &Message) -> Vec<UserId> {
    let recipients: Vec<UserId> = match &message.conversation {
        ConversationId::Dm(..) => message
            .conversation
            .dm_peer(&message.from)
            .filter(|u| !u.is_system())
            .into_iter()
            .cloned()
            .collect(),
        ConversationId::Group(id) => match ctx.stores.groups.get(id).await {
            Ok(Some(g)) => g
                .members
                .into_iter()
                .filter(|m| *m != message.from)
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::warn!(group = %id, cause = %e, "cannot load members for the hooks");
                Vec::new()
            }
        },
    };
    if recipients.is_empty() {
        return recipients;
    }
    match ctx.stores.presence.get(&recipients).await {
        Ok(states) => recipients
            .into_iter()
            .zip(states)
            .filter(|(_, p)| !p.online)
            .map(|(u, _)| u)
            .collect(),
        Err(e) => {
            tracing::warn!(cause = %e, "cannot read presence for the hooks");
            Vec::new()
        }
    }
}
