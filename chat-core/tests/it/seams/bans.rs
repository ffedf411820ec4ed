//! A ban that lands while the user's socket is still connecting: the socket is not yet in
//! its user's room, so the disconnect misses it; the connect step looks again.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chat_core::{
    error::StoreError,
    protocol::{Group, GroupId, UserId, Visibility},
    store::{GroupRefusal, Groups, Stores, memory::MemoryStore},
};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::helpers::*;

/// Groups whose `of_user` (read by every connect before the socket joins its rooms) waits
/// for a permit: the test holds a connect at that point.
#[derive(Debug)]
struct Gated(Arc<MemoryStore>, Arc<Semaphore>);

#[async_trait]
impl Groups for Gated {
    async fn create(&self, group: Group) -> Result<Group, StoreError> {
        self.0.create(group).await
    }
    async fn get(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        self.0.get(id).await
    }
    async fn join(
        &self,
        id: &GroupId,
        user: &UserId,
        max_size: usize,
        max_groups: usize,
    ) -> Result<Result<(Group, bool), GroupRefusal>, StoreError> {
        self.0.join(id, user, max_size, max_groups).await
    }
    async fn leave(&self, id: &GroupId, user: &UserId) -> Result<bool, StoreError> {
        self.0.leave(id, user).await
    }
    async fn of_user(&self, user: &UserId) -> Result<Vec<Group>, StoreError> {
        let _ = self.1.acquire().await.map(|p| p.forget());
        self.0.of_user(user).await
    }
    async fn counts(&self, users: &[UserId]) -> Result<Vec<usize>, StoreError> {
        self.0.counts(users).await
    }
    async fn update(
        &self,
        id: &GroupId,
        name: Option<&str>,
        topic: Option<Option<&str>>,
        visibility: Option<Visibility>,
    ) -> Result<Option<Group>, StoreError> {
        self.0.update(id, name, topic, visibility).await
    }
    async fn find(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Group>, Option<String>), StoreError> {
        self.0.find(prefix, after, limit).await
    }
    async fn set_admin(
        &self,
        id: &GroupId,
        user: &UserId,
        admin: bool,
    ) -> Result<Result<Group, GroupRefusal>, StoreError> {
        self.0.set_admin(id, user, admin).await
    }
    async fn delete(&self, id: &GroupId) -> Result<Option<Group>, StoreError> {
        self.0.delete(id).await
    }
}

#[tokio::test]
async fn a_ban_during_the_connect_disconnects_the_socket() {
    let memory = Arc::new(MemoryStore::new(&chat_core::Limits::default()));
    let gate = Arc::new(Semaphore::new(0));
    let stores = Stores {
        groups: Arc::new(Gated(memory.clone(), gate.clone())),
        ..Stores::all_in(memory)
    };
    let server = TestServer::built(|_| {}, |b| b.stores(stores)).await;
    let mallory = uid("mallory");
    // Past the middleware's ban check, held before joining its rooms.
    let addr = server.addr;
    let who = mallory.clone();
    let connecting = tokio::spawn(async move { Client::connect(addr, json!({"user": who})).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.handle.connections() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the connect never got in"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let user = UserId::parse(mallory.as_str()).unwrap();
    let n = server
        .handle
        .disconnect_user(&user, Some(Duration::from_secs(600)))
        .await
        .unwrap();
    assert_eq!(n, 0, "not in its room yet: nothing to disconnect");
    gate.add_permits(1_000);
    // The client never gets `ready`: it is disconnected (the test client panics on that).
    match connecting.await {
        Err(panicked) => assert!(panicked.is_panic()),
        Ok(Ok(client)) => {
            tokio::time::timeout(Duration::from_secs(10), client.closed())
                .await
                .expect("a socket banned while connecting stayed connected");
        }
        Ok(Err(refused)) => assert!(refused.starts_with("banned"), "{refused}"),
    }
    let refused = Client::connect(server.addr, json!({"user": mallory}))
        .await
        .err()
        .unwrap();
    assert!(refused.starts_with("banned: until "), "{refused}");
}
