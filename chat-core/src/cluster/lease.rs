//! This node's lease in the node table: the heartbeat, the live and recently expired nodes
//! it learns, and the nodes it finds dead.

use std::sync::{Arc, RwLock, Weak, atomic::Ordering};

use socketioxide_core::Uid;

use super::{Cluster, ClusterError, ClusterEvent, lock, nodes, read, write};

impl Cluster {
    pub(super) async fn heartbeat(&self) -> Result<(), ClusterError> {
        let connections: usize = {
            let nss = read(&self.namespaces);
            nss.values()
                .filter_map(Weak::upgrade)
                .map(|h| h.local_sockets())
                .sum()
        };
        let script = nodes::heartbeat_script();
        let mut inv = script.key(self.keys.nodes());
        inv.key(self.keys.node(self.uid))
            .key(self.keys.inbox(self.uid))
            .arg(self.uid.to_string())
            .arg(self.config.lease.as_millis() as u64)
            .arg("id")
            .arg(&self.info.id)
            .arg("url")
            .arg(self.info.url.as_deref().unwrap_or(""))
            .arg("capacity")
            .arg(self.info.capacity)
            .arg("version")
            .arg(env!("CARGO_PKG_VERSION"))
            .arg("draining")
            .arg(u8::from(self.draining.load(Ordering::SeqCst)))
            .arg("connections")
            .arg(connections);
        let reply: Vec<String> = self.redis.script(&inv).await?;
        let (mut live, expired, renewal) = nodes::parse_members(reply);
        live.sort_by_key(|u| u.to_string());
        self.detect_lost(&live, &expired);
        let mut reachable = live.clone();
        reachable.extend(expired);
        *write(&self.live) = Arc::new(live);
        lock(&self.dead).clear();
        *write(&self.reachable) = Arc::new(reachable);
        let n = self.heartbeats.fetch_add(1, Ordering::Relaxed);
        let rejoined = n > 0 && (renewal.fresh || renewal.lapsed);
        if rejoined {
            // Frozen, or cut off from Redis, past the lease: the other nodes may have declared
            // this one dead (its users offline, their presence entries gone) and the health
            // checker may have reaped it (its room records gone). Record every local room
            // again, and have the chat record its sockets' presence again.
            tracing::warn!(uid = %self.uid, reaped = renewal.fresh, "lease had lapsed; rejoining");
            lock(&self.registered).clear();
            let events = self.events.clone();
            tokio::spawn(async move { events.send(ClusterEvent::Rejoined).await });
        }
        if n.is_multiple_of(10) || rejoined {
            self.reconcile_rooms().await?;
        }
        Ok(())
    }

    /// Announces nodes whose lease ended ([`ClusterEvent::NodeLost`]), once each, on one
    /// node only: the live node with the smallest uid. Only while this node has been beating
    /// without a failure for a whole lease, so that an outage everyone went through (every
    /// lease ran out at once) is not mistaken for the death of the others.
    pub(super) fn detect_lost(&self, live: &[Uid], expired: &[Uid]) {
        let healthy_for = {
            let mut since = lock(&self.healthy_since);
            since
                .get_or_insert_with(tokio::time::Instant::now)
                .elapsed()
        };
        let mut announced = lock(&self.announced);
        announced.retain(|u| !live.iter().any(|l| l.to_string() == *u));
        let leader = live.first() == Some(&self.uid);
        if !leader || healthy_for < self.config.lease {
            return;
        }
        for &uid in expired {
            if uid != self.uid && announced.insert(uid.to_string()) {
                tracing::info!(lost = %uid, "node lease ended; announcing its users offline");
                // Never makes the heartbeat wait for the chat: the lease must not run out
                // because deliveries are slow.
                let events = self.events.clone();
                tokio::spawn(async move { events.send(ClusterEvent::NodeLost(uid)).await });
            }
        }
    }

    /// Whether heartbeats failed within the last lease (or never succeeded since a failure).
    pub(super) fn recovering(&self) -> bool {
        lock(&self.healthy_since).is_none_or(|since| since.elapsed() < self.config.lease)
    }

    pub(super) fn reachable_nodes(&self) -> Arc<Vec<Uid>> {
        read(&self.reachable).clone()
    }

    /// Looks up nodes this one has not heard of since its last heartbeat: a node that just
    /// joined must not miss what is sent to it before the next beat. Nodes found dead are
    /// remembered until then, so lingering records cost one lookup per beat.
    pub(super) async fn check_unknown(&self, uids: Vec<Uid>, wait: bool) -> Vec<Uid> {
        let uids: Vec<Uid> = {
            let dead = lock(&self.dead);
            uids.into_iter()
                .filter(|u| !dead.contains(&u.to_string()))
                .collect()
        };
        if uids.is_empty() {
            return Vec::new();
        }
        let mut inv = self.lookup.key(self.keys.nodes());
        inv.arg(self.config.lease.as_millis() as u64 * 10);
        for u in &uids {
            inv.arg(u.to_string());
        }
        let reply: Vec<i64> = match self.redis.script(&inv).await {
            Ok(r) => r,
            // Unknown to us and Redis cannot tell: send anyway, nothing is lost.
            Err(_) => return if wait { Vec::new() } else { uids },
        };
        let (mut live, mut reachable) = (Vec::new(), Vec::new());
        let mut dead = lock(&self.dead);
        for (u, state) in uids.into_iter().zip(reply) {
            match state {
                2 => {
                    live.push(u);
                    reachable.push(u);
                }
                1 => reachable.push(u),
                _ => {
                    dead.insert(u.to_string());
                }
            }
        }
        drop(dead);
        if !reachable.is_empty() {
            let extend = |nodes: &RwLock<Arc<Vec<Uid>>>, add: &[Uid]| {
                let mut l = write(nodes);
                let mut v = (**l).clone();
                v.extend(
                    add.iter()
                        .filter(|u| !v.contains(u))
                        .copied()
                        .collect::<Vec<_>>(),
                );
                *l = Arc::new(v);
            };
            extend(&self.live, &live);
            extend(&self.reachable, &reachable);
        }
        if wait { live } else { reachable }
    }
}
