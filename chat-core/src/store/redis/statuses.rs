//! [`Statuses`] in Redis: one hash per user, `status:{<user>}`: `s` the status, `t` the
//! text, `d:<socket>` each device that reported inactivity. Every step touches that key.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{RedisStore, backend, corrupt};
use crate::{
    error::StoreError,
    protocol::{Status, UserId},
    store::{StatusRecord, Statuses},
};

/// Deletes every `d:` field of KEYS[1].
pub(super) const FORGET_DEVICES: &str = r#"
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, 2) == 'd:' then redis.call('HDEL', KEYS[1], f) end
end
return 0
"#;

#[async_trait]
impl Statuses for RedisStore {
    async fn set_status(
        &self,
        user: &UserId,
        status: Status,
        text: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = self.keys.status(user);
        let mut pipe = ::redis::pipe();
        pipe.atomic().hset(&key, "s", status.code()).ignore();
        match text {
            Some(t) => pipe.hset(&key, "t", t).ignore(),
            None => pipe.hdel(&key, "t").ignore(),
        };
        self.query(&pipe).await
    }

    async fn set_device_idle(
        &self,
        user: &UserId,
        socket: &str,
        idle: bool,
    ) -> Result<(), StoreError> {
        let (key, field) = (self.keys.status(user), format!("d:{socket}"));
        if idle {
            self.query(::redis::cmd("HSET").arg(key).arg(field).arg(1))
                .await
        } else {
            self.query(::redis::cmd("HDEL").arg(key).arg(field)).await
        }
    }

    async fn forget_devices(&self, user: &UserId) -> Result<(), StoreError> {
        let inv = self.scripts.forget_devices.key(self.keys.status(user));
        self.redis.script(&inv).await.map_err(backend)
    }

    async fn statuses(&self, users: &[UserId]) -> Result<Vec<StatusRecord>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for u in users {
            pipe.hgetall(self.keys.status(u));
        }
        let all: Vec<HashMap<String, String>> = self.query(&pipe).await?;
        all.into_iter()
            .map(|h| {
                let status = match h.get("s") {
                    Some(s) => Status::from_code(s).ok_or_else(|| corrupt("status"))?,
                    None => Status::Available,
                };
                Ok(StatusRecord {
                    status,
                    text: h.get("t").cloned(),
                    idle_devices: h.keys().filter(|k| k.starts_with("d:")).count(),
                })
            })
            .collect()
    }
}
