//! Room routing: which nodes host which rooms, recorded in Redis when a socket joins, and
//! which nodes a broadcast or a chat entry must reach.

use std::{
    collections::HashSet,
    sync::{Arc, Weak},
};

use socketioxide_core::{
    Uid,
    adapter::{BroadcastOptions, Room},
};

use super::{Cluster, ClusterError, lock, read};

impl Cluster {
    /// Joins a local socket to `rooms` and records this node as a host of the routed ones,
    /// so broadcasts from other nodes find it. Use this instead of `socket.join` for rooms
    /// that should be routed.
    pub async fn join<A: socketioxide::adapter::Adapter>(
        &self,
        socket: &socketioxide::extract::SocketRef<A>,
        rooms: Vec<String>,
    ) -> Result<(), ClusterError> {
        socket.join(rooms.clone());
        let rooms: Vec<Room> = rooms.into_iter().map(Room::from).collect();
        self.record_rooms(&rooms, &[self.uid]).await
    }

    /// The other nodes a chat-level message to `rooms` must reach: those hosting one of them
    /// (routed rooms; any other room reaches every node).
    pub(crate) async fn chat_targets(&self, rooms: &[String]) -> Vec<Uid> {
        self.chat_routes(&[rooms]).await.pop().unwrap_or_default()
    }

    /// [`Cluster::chat_targets`] of several room sets, in one round trip.
    pub(crate) async fn chat_routes(&self, sets: &[&[String]]) -> Vec<Vec<Uid>> {
        // Chat entries are fire-and-forget, like broadcasts: they go to recently expired nodes
        // too (an inbox is kept for twenty leases), so a node that was frozen or cut off from
        // Redis past its lease delivers them live when it resumes, not only through `sync`.
        let (wait, candidates) = self.candidates(false);
        if sets
            .iter()
            .any(|rooms| !rooms.iter().all(|r| self.is_routed(r)))
        {
            return vec![self.others(&candidates); sets.len()];
        }
        let sets: Vec<Vec<&str>> = sets
            .iter()
            .map(|rooms| rooms.iter().map(String::as_str).collect())
            .collect();
        let sets: Vec<&[&str]> = sets.iter().map(Vec::as_slice).collect();
        self.hosting(&sets, &candidates, wait).await
    }

    /// The other nodes a request with `opts` must reach. `wait`: the caller waits for their
    /// answers, so only live nodes count; otherwise recently expired ones are included too.
    /// If Redis cannot say which nodes host the rooms, every candidate is a target: more
    /// traffic, nothing lost.
    pub(crate) async fn targets(&self, opts: &BroadcastOptions, wait: bool) -> Vec<Uid> {
        let (wait, candidates) = self.candidates(wait);
        if let Some(server) = opts.server_id {
            return match server {
                s if s == self.uid => Vec::new(),
                s if candidates.contains(&s) => vec![s],
                s => self.check_unknown(vec![s], wait).await,
            };
        }
        if opts.rooms.is_empty() || !opts.rooms.iter().all(|r| self.is_routed(r)) {
            return self.others(&candidates);
        }
        let rooms: Vec<&str> = opts.rooms.iter().map(|r| r.as_ref()).collect();
        self.hosting(&[&rooms], &candidates, wait)
            .await
            .pop()
            .unwrap_or_default()
    }

    /// The nodes a request may go to, and whether its caller may wait for them: with `wait`,
    /// the live ones; without, or right after an outage (every lease had run out and the
    /// others have not beaten yet: waiting on recently expired nodes is better then than
    /// skipping live ones), the reachable ones.
    pub(super) fn candidates(&self, wait: bool) -> (bool, Arc<Vec<Uid>>) {
        let wait = wait && !self.recovering();
        let nodes = if wait {
            self.live_nodes()
        } else {
            self.reachable_nodes()
        };
        (wait, nodes)
    }

    /// `candidates` but this node.
    pub(super) fn others(&self, candidates: &[Uid]) -> Vec<Uid> {
        candidates
            .iter()
            .copied()
            .filter(|u| *u != self.uid)
            .collect()
    }

    /// For each set of routed rooms, the other nodes among `candidates` that host one of them,
    /// in one round trip. If Redis cannot say, every candidate.
    pub(super) async fn hosting(
        &self,
        sets: &[&[&str]],
        candidates: &[Uid],
        wait: bool,
    ) -> Vec<Vec<Uid>> {
        let me = self.uid;
        let mut pipe = ::redis::pipe();
        for rooms in sets {
            let keys: Vec<String> = rooms.iter().map(|r| self.keys.room(r)).collect();
            pipe.cmd("SUNION").arg(&keys);
        }
        let hosts = match self.redis.query::<Vec<Vec<String>>>(&pipe).await {
            Ok(hosts) if hosts.len() == sets.len() => hosts,
            reply => {
                let cause = reply.err().map(|e| e.to_string()).unwrap_or_default();
                tracing::debug!(%cause, "cluster: room lookup failed; sending to every node");
                return vec![self.others(candidates); sets.len()];
            }
        };
        let reachable = self.reachable_nodes();
        let mut out = Vec::with_capacity(sets.len());
        for hosts in hosts {
            let mut targets = Vec::new();
            let mut unknown = Vec::new();
            for host in hosts.iter().filter_map(|h| h.parse::<Uid>().ok()) {
                if host == me {
                    continue;
                }
                if candidates.contains(&host) {
                    targets.push(host);
                } else if !reachable.contains(&host) {
                    unknown.push(host);
                }
            }
            if !unknown.is_empty() {
                targets.extend(self.check_unknown(unknown, wait).await);
            }
            out.push(targets);
        }
        out
    }

    /// Whether broadcasts to `room` are routed by the recorded hosting nodes.
    pub(super) fn is_routed(&self, room: &str) -> bool {
        self.config
            .routed_prefixes
            .iter()
            .any(|p| room.starts_with(p.as_str()))
    }

    /// Records that `nodes` host `rooms` (routed rooms only), before the join is visible.
    pub(crate) async fn record_rooms(
        &self,
        rooms: &[Room],
        nodes: &[Uid],
    ) -> Result<(), ClusterError> {
        let rooms: Vec<&Room> = rooms.iter().filter(|r| self.is_routed(r)).collect();
        let local_only = nodes == [self.uid];
        let rooms: Vec<&Room> = if local_only {
            let reg = lock(&self.registered);
            rooms.into_iter().filter(|r| !reg.contains(*r)).collect()
        } else {
            rooms
        };
        if rooms.is_empty() || nodes.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        for r in &rooms {
            for n in nodes {
                pipe.sadd(self.keys.room(r), n.to_string()).ignore();
                pipe.sadd(self.keys.noderooms(n), r.as_ref()).ignore();
            }
        }
        self.redis.query::<()>(&pipe).await?;
        if nodes.contains(&self.uid) {
            let mut reg = lock(&self.registered);
            reg.extend(rooms.into_iter().cloned());
        }
        Ok(())
    }

    /// Records local routed rooms not yet in Redis, and forgets rooms no longer local.
    pub(super) async fn reconcile_rooms(&self) -> Result<(), ClusterError> {
        let local: HashSet<Room> = {
            let nss = read(&self.namespaces);
            nss.values()
                .filter_map(Weak::upgrade)
                .flat_map(|h| h.local_rooms())
                .filter(|r| self.is_routed(r))
                .collect()
        };
        let (add, remove): (Vec<Room>, Vec<Room>) = {
            let reg = lock(&self.registered);
            (
                local.difference(&reg).cloned().collect(),
                reg.difference(&local).cloned().collect(),
            )
        };
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        let me = self.uid.to_string();
        let noderooms = self.keys.noderooms(&me);
        let mut pipe = ::redis::pipe();
        for r in &add {
            pipe.sadd(self.keys.room(r), &me).ignore();
            pipe.sadd(&noderooms, r.as_ref()).ignore();
        }
        for r in &remove {
            pipe.srem(self.keys.room(r), &me).ignore();
            pipe.srem(&noderooms, r.as_ref()).ignore();
        }
        self.redis.query::<()>(&pipe).await?;
        {
            let mut reg = lock(&self.registered);
            reg.extend(add);
            for r in &remove {
                reg.remove(r);
            }
        }
        // A socket may have joined one of the removed rooms meanwhile, seeing it still
        // registered: record those again.
        let back: Vec<Room> = {
            let nss = read(&self.namespaces);
            let now: HashSet<Room> = nss
                .values()
                .filter_map(Weak::upgrade)
                .flat_map(|h| h.local_rooms())
                .collect();
            remove.into_iter().filter(|r| now.contains(r)).collect()
        };
        if !back.is_empty() {
            self.record_rooms(&back, &[self.uid]).await?;
        }
        Ok(())
    }
}
