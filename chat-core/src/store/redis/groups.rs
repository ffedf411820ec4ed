//! [`Groups`] in Redis: `group:<id>` (name, owner, join counter, topic, `a:<member>` for
//! each admin), `gmembers:<id>` (members by join order), `usergroups:<user>`.

use std::collections::HashMap;

use ::redis::Value as RValue;
use async_trait::async_trait;

use super::{RedisStore, backend, corrupt};
use crate::{
    error::StoreError,
    protocol::{ConversationId, Group, GroupId, UserId, Visibility},
    store::{GroupRefusal, Groups, public_entry},
};

impl RedisStore {
    /// Moves a group's entry in the public name index from what it was to what it is.
    async fn index(&self, before: Option<&Group>, after: Option<&Group>) -> Result<(), StoreError> {
        let entry = |g: Option<&Group>| {
            g.filter(|g| g.visibility == Visibility::Public)
                .map(public_entry)
        };
        let (old, new) = (entry(before), entry(after));
        if old == new {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        if let Some(old) = old {
            pipe.zrem(self.keys.public_groups(), old).ignore();
        }
        if let Some(new) = new {
            pipe.zadd(self.keys.public_groups(), new, 0).ignore();
        }
        self.query(&pipe).await
    }

    async fn group(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        Ok(self
            .groups_by_id(std::slice::from_ref(id))
            .await?
            .pop()
            .flatten())
    }

    async fn groups_by_id(&self, ids: &[GroupId]) -> Result<Vec<Option<Group>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.group(id))
                .zrange(self.keys.gmembers(id), 0, -1);
        }
        let raw: Vec<RValue> = self.query(&pipe).await?;
        let mut out = Vec::with_capacity(ids.len());
        for (id, pair) in ids.iter().zip(raw.chunks(2)) {
            let info: HashMap<String, String> =
                ::redis::from_redis_value(pair[0].clone()).map_err(|_| corrupt("group"))?;
            let members: Vec<String> =
                ::redis::from_redis_value(pair[1].clone()).map_err(|_| corrupt("members"))?;
            let (Some(name), Some(owner)) = (info.get("name"), info.get("owner")) else {
                out.push(None);
                continue;
            };
            let members: Vec<UserId> = members
                .into_iter()
                .map(UserId::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| corrupt("member"))?;
            // Admins in join order; a role left behind by a member who is gone is not one.
            let admins = members
                .iter()
                .filter(|m| info.contains_key(&format!("a:{m}")))
                .cloned()
                .collect();
            out.push(Some(Group {
                id: id.clone(),
                name: name.clone(),
                owner: UserId::parse(owner.as_str()).map_err(|_| corrupt("owner"))?,
                members,
                admins,
                topic: info.get("topic").cloned(),
                visibility: match info.get("visibility").map(String::as_str) {
                    Some("private") => Visibility::Private,
                    _ => Visibility::Public,
                },
            }));
        }
        Ok(out)
    }
}

#[async_trait]
impl Groups for RedisStore {
    async fn create(&self, group: Group) -> Result<Group, StoreError> {
        let id = &group.id;
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .hset_multiple(
                self.keys.group(id),
                &[
                    ("name", group.name.clone()),
                    ("owner", group.owner.to_string()),
                    ("seq", group.members.len().to_string()),
                ],
            )
            .ignore();
        for (i, m) in group.members.iter().enumerate() {
            pipe.zadd(self.keys.gmembers(id), m.as_str(), i + 1)
                .ignore()
                .sadd(self.keys.usergroups(m), id.as_str())
                .ignore();
        }
        if group.visibility == Visibility::Private {
            pipe.hset(self.keys.group(id), "visibility", "private")
                .ignore();
        }
        self.query::<()>(&pipe).await?;
        self.index(None, Some(&group)).await?;
        Ok(group)
    }

    async fn get(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        self.group(id).await
    }

    async fn join(
        &self,
        id: &GroupId,
        user: &UserId,
        max_size: usize,
        max_groups: usize,
    ) -> Result<Result<(Group, bool), GroupRefusal>, StoreError> {
        let mut inv = self.scripts.join.key(self.keys.group(id));
        inv.key(self.keys.gmembers(id))
            .key(self.keys.usergroups(user))
            .arg(user.as_str())
            .arg(max_size)
            .arg(max_groups)
            .arg(id.as_str());
        let outcome: String = self.redis.script(&inv).await.map_err(backend)?;
        let added = match outcome.as_str() {
            "notfound" => return Ok(Err(GroupRefusal::NotFound)),
            "full" => return Ok(Err(GroupRefusal::Full)),
            "toomany" => return Ok(Err(GroupRefusal::TooManyGroups)),
            "added" => true,
            _ => false,
        };
        match self.group(id).await? {
            Some(g) => Ok(Ok((g, added))),
            None => Ok(Err(GroupRefusal::NotFound)),
        }
    }

    async fn leave(&self, id: &GroupId, user: &UserId) -> Result<bool, StoreError> {
        let mut inv = self.scripts.leave.key(self.keys.group(id));
        inv.key(self.keys.gmembers(id))
            .key(self.keys.usergroups(user))
            .arg(user.as_str())
            .arg(id.as_str());
        let left: i64 = self.redis.script(&inv).await.map_err(backend)?;
        Ok(left == 1)
    }

    async fn of_user(&self, user: &UserId) -> Result<Vec<Group>, StoreError> {
        let ids: Vec<String> = self
            .query(::redis::cmd("SMEMBERS").arg(self.keys.usergroups(user)))
            .await?;
        let mut ids: Vec<GroupId> = ids
            .into_iter()
            .filter_map(|i| GroupId::parse(i).ok())
            .collect();
        ids.sort();
        Ok(self
            .groups_by_id(&ids)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    async fn update(
        &self,
        id: &GroupId,
        name: Option<&str>,
        topic: Option<Option<&str>>,
        visibility: Option<Visibility>,
    ) -> Result<Option<Group>, StoreError> {
        let before = self.group(id).await?;
        let mut inv = self.scripts.group_update.key(self.keys.group(id));
        inv.arg(name.unwrap_or(""));
        match topic {
            Some(Some(t)) => inv.arg("set").arg(t),
            Some(None) => inv.arg("clear").arg(""),
            None => inv.arg("keep").arg(""),
        };
        inv.arg(match visibility {
            Some(Visibility::Public) => "public",
            Some(Visibility::Private) => "private",
            None => "",
        });
        let found: i64 = self.redis.script(&inv).await.map_err(backend)?;
        if found == 0 {
            return Ok(None);
        }
        let after = self.group(id).await?;
        self.index(before.as_ref(), after.as_ref()).await?;
        Ok(after)
    }

    async fn find(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Group>, Option<String>), StoreError> {
        let min = match after {
            Some(a) => [b"(", a.as_bytes()].concat(),
            None => [b"[", prefix.as_bytes()].concat(),
        };
        // 0xff never occurs in UTF-8: every entry that starts with the prefix sorts below.
        let max = [b"[", prefix.as_bytes(), &[0xff]].concat();
        let entries: Vec<String> = self
            .query(
                ::redis::cmd("ZRANGEBYLEX")
                    .arg(self.keys.public_groups())
                    .arg(min)
                    .arg(max)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit + 1),
            )
            .await?;
        let more = entries.len() > limit;
        let page = &entries[..entries.len().min(limit)];
        let ids: Vec<GroupId> = page
            .iter()
            .filter_map(|e| GroupId::parse(e.rsplit('\0').next().unwrap_or_default()).ok())
            .collect();
        let groups = self.groups_by_id(&ids).await?;
        // An entry counts only while its group is public under that name: a change that
        // failed to reach the index (or a deleted group) is skipped here.
        let found = groups
            .into_iter()
            .flatten()
            .filter(|g| g.visibility == Visibility::Public && page.contains(&public_entry(g)))
            .collect();
        Ok((found, more.then(|| page[limit - 1].clone())))
    }

    async fn set_admin(
        &self,
        id: &GroupId,
        user: &UserId,
        admin: bool,
    ) -> Result<Result<Group, GroupRefusal>, StoreError> {
        // Two keys, two steps (one slot each): a member who leaves in between leaves a role
        // behind that reads as none ([`RedisStore::groups_by_id`]).
        let member: Option<f64> = self
            .query(
                ::redis::cmd("ZSCORE")
                    .arg(self.keys.gmembers(id))
                    .arg(user.as_str()),
            )
            .await?;
        if member.is_none() {
            return Ok(Err(match self.group(id).await? {
                Some(_) => GroupRefusal::NotMember,
                None => GroupRefusal::NotFound,
            }));
        }
        let mut inv = self.scripts.group_admin.key(self.keys.group(id));
        inv.arg(user.as_str()).arg(if admin { "1" } else { "0" });
        let found: i64 = self.redis.script(&inv).await.map_err(backend)?;
        match (found, self.group(id).await?) {
            (1, Some(g)) => Ok(Ok(g)),
            _ => Ok(Err(GroupRefusal::NotFound)),
        }
    }

    async fn delete(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        let Some(group) = self.group(id).await? else {
            return Ok(None);
        };
        // The group record first: from then on the group reads as gone everywhere. The
        // rest is cleanup, one key at a time; what a failure leaves behind (a membership
        // entry of a group that is gone) is skipped by every read.
        let gone: i64 = self
            .query(::redis::cmd("DEL").arg(self.keys.group(id)))
            .await?;
        if gone == 0 {
            return Ok(None);
        }
        self.index(Some(&group), None).await?;
        let conversation = ConversationId::Group(id.clone()).to_string();
        let mut pipe = ::redis::pipe();
        for m in &group.members {
            pipe.srem(self.keys.usergroups(m), id.as_str()).ignore();
        }
        pipe.del(self.keys.gmembers(id))
            .ignore()
            .del(self.keys.conv(&conversation))
            .ignore()
            .del(self.keys.delivered(&conversation))
            .ignore()
            .hdel(self.keys.last(), &conversation)
            .ignore()
            .hdel(self.keys.count(), &conversation)
            .ignore();
        self.query::<()>(&pipe).await?;
        Ok(Some(group))
    }

    async fn counts(&self, users: &[UserId]) -> Result<Vec<usize>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for u in users {
            pipe.scard(self.keys.usergroups(u));
        }
        self.query(&pipe).await
    }
}
