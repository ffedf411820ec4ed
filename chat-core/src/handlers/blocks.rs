//! `block` and `unblock`.

use serde::Deserialize;
use socketioxide::adapter::Adapter;

use super::Call;
use crate::{error::ChatError, protocol::UserId};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlockReq {
    user: UserId,
}

pub(crate) async fn block<A: Adapter>(call: Call<A>, req: BlockReq) -> Result<(), ChatError> {
    if req.user == call.user {
        return Err(ChatError::bad_request("you cannot block yourself"));
    }
    Ok(call.ctx.stores.blocks.block(&call.user, &req.user).await?)
}

pub(crate) async fn unblock<A: Adapter>(call: Call<A>, req: BlockReq) -> Result<(), ChatError> {
    if req.user == call.user {
        return Err(ChatError::bad_request("you cannot block yourself"));
    }
    Ok(call
        .ctx
        .stores
        .blocks
        .unblock(&call.user, &req.user)
        .await?)
}
