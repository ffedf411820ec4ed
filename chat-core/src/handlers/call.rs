//! One acknowledged request: who asks (the socket's identity, checked again on every call),
//! the rate budgets it spends, the membership checks handlers share, and how its payload is
//! parsed and its result becomes the ack.

use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::Ctx;
use crate::{
    auth::Identity,
    config::Rate,
    error::{ChatError, ErrorCode},
    keys::buckets,
    protocol::{ConversationId, Group, UserId, now_ms},
};

/// One acknowledged request in progress: who asked, on which socket.
pub(crate) struct Call<A: Adapter> {
    pub ctx: Arc<Ctx>,
    pub socket: SocketRef<A>,
    pub user: UserId,
    event: &'static str,
}

/// The rate buckets a request takes a token from: the user's event bucket, and the message
/// bucket for `message:send`.
pub(crate) struct Budget(Vec<(String, Rate)>);

impl Budget {
    /// The buckets, as the stores take them.
    pub fn buckets(&self) -> Vec<(&str, Rate)> {
        self.0.iter().map(|(k, r)| (k.as_str(), *r)).collect()
    }
}

/// `message:send` takes its budget in the same store step as the append (one round trip);
/// every other event before its handler runs.
pub(super) fn budget_in_store(event: &str) -> bool {
    event == "message:send"
}

impl<A: Adapter> Call<A> {
    pub(super) async fn start(
        ctx: Arc<Ctx>,
        socket: SocketRef<A>,
        event: &'static str,
    ) -> Result<Self, ChatError> {
        let Some(identity) = socket.extensions.get::<Identity>() else {
            return Err(ChatError::new(ErrorCode::Unauthorized, "not signed in"));
        };
        if identity.expired(now_ms()) {
            return Err(ChatError::new(
                ErrorCode::Unauthorized,
                "token expired; reconnect with a new token",
            ));
        }
        let call = Self {
            ctx,
            socket,
            user: identity.user,
            event,
        };
        if !budget_in_store(event) {
            call.spend_budget().await?;
        }
        Ok(call)
    }

    /// What this request spends from the user's rate budgets.
    pub fn budget(&self) -> Budget {
        let limits = &self.ctx.limits;
        let mut list = vec![(buckets::events(&self.user), limits.event_rate)];
        if self.event == "message:send" {
            list.push((buckets::messages(&self.user), limits.message_rate));
        }
        if self.event == "search" {
            list.push((buckets::search(&self.user), limits.search_rate));
        }
        if matches!(self.event, "presence:status" | "presence:idle") {
            list.push((buckets::status(&self.user), limits.status_rate));
        }
        if self.event == "contacts:request" {
            list.push((
                buckets::contact_requests(&self.user),
                limits.contact_request_rate,
            ));
        }
        Budget(list)
    }

    /// Takes the request's budget (every bucket or none); `rate_limited` if one is empty.
    pub(super) async fn spend_budget(&self) -> Result<(), ChatError> {
        let budget = self.budget();
        if self
            .ctx
            .stores
            .rates
            .try_acquire_all(&budget.buckets())
            .await?
        {
            Ok(())
        } else {
            Err(rate_limited())
        }
    }

    /// The answer to a request refused before its store step. One whose budget is taken in
    /// that step takes it here instead: refused requests count against the rates as well,
    /// and being over the rate wins over any other refusal, as for every other event.
    pub async fn refuse(&self, e: ChatError) -> ChatError {
        if !budget_in_store(self.event) {
            return e;
        }
        match self.spend_budget().await {
            Ok(()) => e,
            Err(over) => over,
        }
    }

    /// Checks that the caller may read and write `conversation`; returns the group for groups.
    pub async fn authorize(
        &self,
        conversation: &ConversationId,
    ) -> Result<Option<Group>, ChatError> {
        match conversation {
            ConversationId::Dm(..) => match conversation.dm_peer(&self.user) {
                Some(_) => Ok(None),
                None => Err(ChatError::forbidden(
                    "you are not part of this conversation",
                )),
            },
            ConversationId::Group(id) => {
                let group = self
                    .ctx
                    .stores
                    .groups
                    .get(id)
                    .await?
                    .ok_or_else(|| ChatError::not_found("no such group"))?;
                if group.members.contains(&self.user) {
                    Ok(Some(group))
                } else {
                    Err(ChatError::forbidden("you are not a member of this group"))
                }
            }
        }
    }

    /// Whether receipts are sent in a conversation (DMs, and groups up to the limit).
    pub fn receipts_for(&self, group: Option<&Group>) -> bool {
        self.ctx.receipts_for(group.map(|g| g.members.len()))
    }
}

pub(crate) fn rate_limited() -> ChatError {
    ChatError::new(ErrorCode::RateLimited, "too many requests; slow down")
}

/// Deserializes a payload; a missing payload reads as `{}`.
pub(crate) fn parse<T: DeserializeOwned>(data: Value) -> Result<T, ChatError> {
    let data = match data {
        Value::Null => Value::Object(Default::default()),
        v => v,
    };
    if !data.is_object() {
        return Err(ChatError::bad_request("the payload must be an object"));
    }
    serde_json::from_value(data).map_err(|e| ChatError::bad_request(format!("bad payload: {e}")))
}

/// The ack for a handler result.
pub(crate) fn reply<T: Serialize>(result: Result<T, ChatError>) -> Value {
    let err = |e: ChatError| serde_json::json!({ "ok": false, "error": { "code": e.code, "message": e.message } });
    match result.map(|data| serde_json::to_value(data)) {
        Ok(Ok(Value::Object(mut map))) => {
            map.insert("ok".into(), Value::Bool(true));
            Value::Object(map)
        }
        Ok(Ok(Value::Null)) => serde_json::json!({ "ok": true }),
        Ok(Ok(_)) | Ok(Err(_)) => {
            tracing::error!("a handler produced a reply that is not an object");
            err(ChatError::new(ErrorCode::Unavailable, "internal error"))
        }
        Err(e) => err(e),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn replies_have_the_contract_shape() {
        #[derive(Serialize)]
        struct Members {
            members: Vec<String>,
        }
        let ok = reply(Ok(Members {
            members: vec!["a".into()],
        }));
        assert_eq!(ok, json!({"ok": true, "members": ["a"]}));
        assert_eq!(reply(Ok(())), json!({"ok": true}));
        let err = reply::<()>(Err(ChatError::forbidden("no")));
        assert_eq!(
            err,
            json!({"ok": false, "error": {"code": "forbidden", "message": "no"}})
        );
    }

    #[test]
    fn payloads_must_be_objects() {
        #[derive(serde::Deserialize, Debug)]
        struct Req {
            #[allow(dead_code)]
            x: Option<u8>,
        }
        assert!(parse::<Req>(Value::Null).is_ok());
        for bad in [json!("s"), json!(5), json!([1]), json!({"x": "y"})] {
            assert_eq!(parse::<Req>(bad).unwrap_err().code, ErrorCode::BadRequest);
        }
    }
}
