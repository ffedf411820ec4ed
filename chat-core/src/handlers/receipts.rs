//! `read`, and the `receipt` events that tell senders their messages arrived or were read.

use serde::Deserialize;
use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::Call;
use crate::cluster::envelope::Receipt;
use crate::{
    error::ChatError,
    keys::rooms,
    protocol::{ConversationId, MessageId, UserId, events},
    store::Mark,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ReadReq {
    conversation: ConversationId,
    message_id: MessageId,
}

pub(crate) async fn read<A: Adapter>(call: Call<A>, req: ReadReq) -> Result<(), ChatError> {
    let group = call.authorize(&req.conversation).await?;
    let covered = call
        .ctx
        .stores
        .messages
        .advance(&call.user, &req.conversation, req.message_id, Mark::Read)
        .await?;
    if call.receipts_for(group.as_ref()) {
        emit(
            &call.socket,
            &req.conversation,
            &call.user,
            covered,
            Mark::Read,
        )
        .await;
    }
    Ok(())
}

/// Sends each sender in `covered` a cumulative receipt: `reader` has their messages up to the id.
pub(crate) async fn emit<A: Adapter>(
    socket: &SocketRef<A>,
    conversation: &ConversationId,
    reader: &UserId,
    covered: Vec<(UserId, MessageId)>,
    mark: Mark,
) {
    for (sender, id) in covered {
        let payload = Receipt {
            conversation: conversation.clone(),
            user: reader.clone(),
            message_id: id,
            status: mark,
        };
        if let Err(e) = socket
            .within(rooms::user(&sender))
            .emit(events::RECEIPT, &payload)
            .await
        {
            tracing::warn!(cause = %e, "cannot send receipt");
        }
    }
}
