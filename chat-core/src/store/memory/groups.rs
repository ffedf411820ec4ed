//! [`Groups`] in memory.

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;

use super::{MemoryStore, lock};
use crate::{
    error::StoreError,
    protocol::{Group, GroupId, UserId, Visibility},
    store::{GroupRefusal, Groups, public_entry},
};

/// Groups embedded mode keeps (without a cap the groups of users who come and go would
/// grow the process for ever): past it, creating one is refused.
pub(super) const MAX_GROUPS: usize = 100_000;

#[derive(Debug, Default)]
pub(super) struct GroupState {
    pub(super) groups: HashMap<GroupId, Group>,
    pub(super) by_user: HashMap<UserId, HashSet<GroupId>>,
    /// Public groups by [`public_entry`].
    pub(super) public: BTreeSet<String>,
}

impl GroupState {
    fn unlist(&mut self, group: &Group) {
        self.public.remove(&public_entry(group));
    }

    fn list(&mut self, group: &Group) {
        if group.visibility == Visibility::Public {
            self.public.insert(public_entry(group));
        }
    }
}

#[async_trait]
impl Groups for MemoryStore {
    async fn create(&self, group: Group) -> Result<Group, StoreError> {
        self.writable()?;
        let mut st = lock(&self.groups);
        if st.groups.len() >= MAX_GROUPS {
            return Err(StoreError::Full(format!(
                "this server keeps at most {MAX_GROUPS} groups; leave or delete some first"
            )));
        }
        for m in &group.members {
            st.by_user
                .entry(m.clone())
                .or_default()
                .insert(group.id.clone());
        }
        st.list(&group);
        st.groups.insert(group.id.clone(), group.clone());
        Ok(group)
    }

    async fn get(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        Ok(lock(&self.groups).groups.get(id).cloned())
    }

    async fn join(
        &self,
        id: &GroupId,
        user: &UserId,
        max_size: usize,
        max_groups: usize,
    ) -> Result<Result<(Group, bool), GroupRefusal>, StoreError> {
        self.writable()?;
        let mut st = lock(&self.groups);
        let st = &mut *st;
        let Some(group) = st.groups.get_mut(id) else {
            return Ok(Err(GroupRefusal::NotFound));
        };
        if group.members.contains(user) {
            return Ok(Ok((group.clone(), false)));
        }
        if group.members.len() >= max_size {
            return Ok(Err(GroupRefusal::Full));
        }
        let mine = st.by_user.entry(user.clone()).or_default();
        if mine.len() >= max_groups {
            return Ok(Err(GroupRefusal::TooManyGroups));
        }
        mine.insert(id.clone());
        group.members.push(user.clone());
        Ok(Ok((group.clone(), true)))
    }

    async fn leave(&self, id: &GroupId, user: &UserId) -> Result<bool, StoreError> {
        self.writable()?;
        let mut st = lock(&self.groups);
        let st = &mut *st;
        let Some(group) = st.groups.get_mut(id) else {
            return Ok(false);
        };
        let Some(pos) = group.members.iter().position(|m| m == user) else {
            return Ok(false);
        };
        group.members.remove(pos);
        group.admins.retain(|a| a != user);
        if &group.owner == user {
            let next = group.admins.first().or(group.members.first()).cloned();
            if let Some(next) = next {
                group.admins.retain(|a| a != &next);
                group.owner = next;
            }
        }
        if let Some(mine) = st.by_user.get_mut(user) {
            mine.remove(id);
        }
        Ok(true)
    }

    async fn of_user(&self, user: &UserId) -> Result<Vec<Group>, StoreError> {
        let st = lock(&self.groups);
        let mut groups: Vec<Group> = st
            .by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| st.groups.get(id).cloned())
            .collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(groups)
    }

    async fn update(
        &self,
        id: &GroupId,
        name: Option<&str>,
        topic: Option<Option<&str>>,
        visibility: Option<Visibility>,
    ) -> Result<Option<Group>, StoreError> {
        self.writable()?;
        let mut st = lock(&self.groups);
        let Some(mut group) = st.groups.get(id).cloned() else {
            return Ok(None);
        };
        st.unlist(&group);
        if let Some(name) = name {
            group.name = name.to_owned();
        }
        if let Some(topic) = topic {
            group.topic = topic.map(str::to_owned);
        }
        if let Some(v) = visibility {
            group.visibility = v;
        }
        st.list(&group);
        st.groups.insert(id.clone(), group.clone());
        Ok(Some(group))
    }

    async fn find(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Group>, Option<String>), StoreError> {
        let st = lock(&self.groups);
        let mut found = Vec::new();
        let start = after.unwrap_or(prefix).to_owned();
        for entry in st.public.range(start..) {
            if !entry.starts_with(prefix) {
                break;
            }
            if after == Some(entry.as_str()) {
                continue;
            }
            if found.len() == limit {
                let last = found.last().map(public_entry);
                return Ok((found, last));
            }
            let id = entry.rsplit('\0').next().unwrap_or_default();
            if let Some(g) = GroupId::parse(id).ok().and_then(|id| st.groups.get(&id)) {
                found.push(g.clone());
            }
        }
        Ok((found, None))
    }

    async fn set_admin(
        &self,
        id: &GroupId,
        user: &UserId,
        admin: bool,
    ) -> Result<Result<Group, GroupRefusal>, StoreError> {
        self.writable()?;
        let mut st = lock(&self.groups);
        let Some(group) = st.groups.get_mut(id) else {
            return Ok(Err(GroupRefusal::NotFound));
        };
        if !group.members.contains(user) {
            return Ok(Err(GroupRefusal::NotMember));
        }
        group.admins.retain(|a| a != user);
        if admin && &group.owner != user {
            // Kept in join order, as the Redis store reads them.
            let members = &group.members;
            let mut admins: Vec<UserId> = group.admins.drain(..).chain([user.clone()]).collect();
            admins.sort_by_key(|a| members.iter().position(|m| m == a));
            group.admins = admins;
        }
        Ok(Ok(group.clone()))
    }

    async fn delete(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        self.writable()?;
        let mut st = lock(&self.groups);
        let Some(group) = st.groups.remove(id) else {
            return Ok(None);
        };
        st.unlist(&group);
        for m in &group.members {
            if let Some(mine) = st.by_user.get_mut(m) {
                mine.remove(id);
                if mine.is_empty() {
                    st.by_user.remove(m);
                }
            }
        }
        Ok(Some(group))
    }

    async fn counts(&self, users: &[UserId]) -> Result<Vec<usize>, StoreError> {
        let st = lock(&self.groups);
        Ok(users
            .iter()
            .map(|u| st.by_user.get(u).map_or(0, HashSet::len))
            .collect())
    }
}
