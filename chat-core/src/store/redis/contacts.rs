//! [`Contacts`] in Redis: one hash per user, `contacts:{<user>}`, other user → state code
//! ([`ContactState::code`]). Every step touches that one key.

use async_trait::async_trait;

use super::{RedisStore, backend, corrupt};
use crate::{
    error::StoreError,
    protocol::{ContactState, UserId},
    store::{ContactChange, Contacts},
};

/// Compare-and-set on one roster entry. KEYS[1] the roster; ARGV[1] the other user, ARGV[2]
/// the new state code (empty: remove), ARGV[3] the cap, ARGV[4..] the expected codes (`-`:
/// no entry). Returns `{outcome, code before}`: 1 done, 0 unexpected, 2 full.
pub(super) const CONTACT_SET: &str = r#"
local now = redis.call('HGET', KEYS[1], ARGV[1]) or '-'
local expected = false
for i = 4, #ARGV do
  if ARGV[i] == now then expected = true end
end
if not expected then return {0, now} end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  if now == '-' and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return {2, now} end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return {1, now}
"#;

fn code(state: Option<ContactState>) -> &'static str {
    state.map_or("-", ContactState::code)
}

fn state(code: &str) -> Result<Option<ContactState>, StoreError> {
    match code {
        "-" => Ok(None),
        c => ContactState::from_code(c)
            .map(Some)
            .ok_or_else(|| corrupt("contact state")),
    }
}

impl RedisStore {
    /// The whole roster of `user`, sorted (at most the cap's worth of entries).
    async fn roster_all(&self, user: &UserId) -> Result<Vec<(UserId, ContactState)>, StoreError> {
        let raw: Vec<(String, String)> = self
            .query(::redis::cmd("HGETALL").arg(self.keys.contacts(user)))
            .await?;
        let mut out = raw
            .into_iter()
            .map(|(u, c)| {
                let user = UserId::parse(u).map_err(|_| corrupt("contact"))?;
                let state = state(&c)?.ok_or_else(|| corrupt("contact state"))?;
                Ok((user, state))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort();
        Ok(out)
    }
}

#[async_trait]
impl Contacts for RedisStore {
    async fn set_contact(
        &self,
        user: &UserId,
        other: &UserId,
        from: &[Option<ContactState>],
        to: Option<ContactState>,
        max: usize,
    ) -> Result<ContactChange, StoreError> {
        let mut inv = self.scripts.contact.key(self.keys.contacts(user));
        inv.arg(other.as_str())
            .arg(to.map_or("", ContactState::code))
            .arg(max);
        for f in from {
            inv.arg(code(*f));
        }
        let (outcome, before): (i64, String) = self.redis.script(&inv).await.map_err(backend)?;
        let before = state(&before)?;
        Ok(match outcome {
            1 => ContactChange::Done(before),
            2 => ContactChange::Full,
            _ => ContactChange::Unexpected(before),
        })
    }

    async fn roster(
        &self,
        user: &UserId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<(UserId, ContactState)>, StoreError> {
        Ok(self
            .roster_all(user)
            .await?
            .into_iter()
            .filter(|(u, _)| after.is_none_or(|a| u > a))
            .take(limit)
            .collect())
    }

    async fn contact_states(
        &self,
        pairs: &[(UserId, UserId)],
    ) -> Result<Vec<Option<ContactState>>, StoreError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for (owner, other) in pairs {
            pipe.hget(self.keys.contacts(owner), other.as_str());
        }
        let raw: Vec<Option<String>> = self.query(&pipe).await?;
        raw.iter()
            .map(|c| match c {
                Some(c) => state(c)?.ok_or_else(|| corrupt("contact state")).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    async fn contacts(&self, user: &UserId) -> Result<Vec<UserId>, StoreError> {
        Ok(self
            .roster_all(user)
            .await?
            .into_iter()
            .filter(|(_, s)| *s == ContactState::Contact)
            .map(|(u, _)| u)
            .collect())
    }
}
