//! `block`, `unblock` and `blocks`. A block also ends a contact (`contacts:remove`).

use serde::{Deserialize, Serialize};
use socketioxide::adapter::Adapter;

use super::Call;
use crate::{
    error::{ChatError, ErrorCode},
    protocol::UserId,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlockReq {
    user: UserId,
}

pub(crate) async fn block<A: Adapter>(call: Call<A>, req: BlockReq) -> Result<(), ChatError> {
    if req.user == call.user {
        return Err(ChatError::bad_request("you cannot block yourself"));
    }
    let blocks = &call.ctx.stores.blocks;
    let max = call.ctx.limits.blocks_per_user;
    // Checked before the step, as the group cap: concurrent blocks of one user may pass
    // the cap by as many as run at once.
    if blocks.count(&call.user).await? >= max && !blocks.is_blocked(&call.user, &req.user).await? {
        return Err(ChatError::new(
            ErrorCode::Conflict,
            format!("you block {max} users already; unblock some first"),
        ));
    }
    blocks.block(&call.user, &req.user).await?;
    // A blocked user is no contact, and has no request pending either way.
    super::contacts::sever(&call, &req.user).await
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlocksReq {}

#[derive(Debug, Serialize)]
pub(crate) struct BlocksRes {
    users: Vec<UserId>,
}

/// The users the caller blocks, sorted: the whole list, which `blocks_per_user` caps.
pub(crate) async fn list<A: Adapter>(call: Call<A>, _: BlocksReq) -> Result<BlocksRes, ChatError> {
    let users = call.ctx.stores.blocks.list(&call.user).await?;
    Ok(BlocksRes { users })
}
