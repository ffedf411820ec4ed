//! A Sentinel topology for failover tests.

use std::collections::BTreeSet;

use futures_util::future::join_all;

use super::{FAILOVER_TIMEOUT, MASTER_NAME, SENTINEL_CONF, TOPOLOGY_TIMEOUT, container::*};
/// A master, one replica and three sentinels (quorum 2, `down-after-milliseconds` 1000,
/// `failover-timeout` 3000) watching [`MASTER_NAME`], each in its own container on loopback.
///
/// [`start`](Self::start) returns once the replica is in sync and every sentinel knows the
/// replica and the two other sentinels, so a failover can start as soon as the master dies.
#[derive(Debug)]
pub struct SentinelTopology {
    /// Master and replica; which is which changes with failovers.
    data: Vec<Node>,
    sentinels: Vec<Node>,
}

impl SentinelTopology {
    /// Starts the master, then the replica, then the three sentinels, and waits until they all
    /// know each other.
    pub async fn start() -> SentinelTopology {
        let master = Node::launch("master", |port| (server_args(port), None)).await;
        let master_port = master.port;
        let replica = Node::launch("replica", |port| {
            let mut cmd = server_args(port);
            cmd.extend(["--replicaof", "127.0.0.1", &master_port.to_string()].map(String::from));
            (cmd, None)
        })
        .await;
        wait_in_sync(&replica, &master).await;

        let sentinels = join_all((0..3).map(|_| {
            Node::launch("sentinel", move |port| {
                let conf = format!(
                    "port {port}\n\
                     bind 127.0.0.1\n\
                     sentinel announce-ip 127.0.0.1\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                     sentinel failover-timeout {MASTER_NAME} 3000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n"
                );
                let cmd = ["redis-server", SENTINEL_CONF, "--sentinel"].map(String::from);
                (cmd.into(), Some(conf))
            })
        }))
        .await;
        for sentinel in &sentinels {
            eventually(
                TOPOLOGY_TIMEOUT,
                format_args!("{sentinel} to know the replica and the other sentinels"),
                async || {
                    let replicas = sentinel_list(&sentinel.addr(), "REPLICAS").await?;
                    let peers = sentinel_list(&sentinel.addr(), "SENTINELS").await?;
                    let replica_ok = replicas.iter().any(|r| flags(r) == "slave");
                    let peers_ok = peers.iter().filter(|p| flags(p) == "sentinel").count() == 2;
                    (replica_ok && peers_ok)
                        .then_some(())
                        .ok_or(format!("replicas {replicas:?}, sentinels {peers:?}"))
                },
            )
            .await;
        }
        SentinelTopology {
            data: vec![master, replica],
            sentinels,
        }
    }

    /// The sentinels, as `127.0.0.1:PORT`.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(Node::addr).collect()
    }

    /// The sentinels, as `redis://127.0.0.1:PORT` (what `redis::sentinel` parses).
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://{}", s.addr()))
            .collect()
    }

    /// [`MASTER_NAME`].
    pub fn master_name(&self) -> &'static str {
        MASTER_NAME
    }

    /// The master's `127.0.0.1:PORT`, as the first sentinel that answers reports it.
    pub async fn master_addr(&self) -> String {
        let mut errors = Vec::new();
        for sentinel in &self.sentinels {
            match master_by_sentinel(&sentinel.addr()).await {
                Ok(addr) => return addr,
                Err(err) => errors.push(format!("{sentinel}: {err}")),
            }
        }
        panic!("no sentinel named the master: {errors:?}")
    }

    /// Kills the container of the current master (no graceful shutdown) and returns its address,
    /// to pass to [`wait_for_failover`](Self::wait_for_failover).
    pub async fn kill_master(&self) -> String {
        let addr = self.master_addr().await;
        self.data_node(&addr).stop(0).await;
        addr
    }

    /// Waits until every sentinel names a master other than `old_master` and that server answers
    /// `ROLE` as a master; returns its address. Panics after 30 s with what the sentinels said.
    ///
    /// Replication is asynchronous: to find a write on the new master, make it reach the replica
    /// before the kill (`WAIT 1 1000` on the old master).
    pub async fn wait_for_failover(&self, old_master: &str) -> String {
        eventually(
            FAILOVER_TIMEOUT,
            format_args!("a failover away from {old_master}"),
            async || {
                let answers = join_all(self.sentinels.iter().map(|s| async move {
                    master_by_sentinel(&s.addr())
                        .await
                        .map_err(|err| format!("{s}: {err}"))
                }))
                .await;
                let addrs = answers
                    .iter()
                    .cloned()
                    .collect::<Result<BTreeSet<_>, _>>()
                    .map_err(|err| format!("{answers:?} ({err})"))?;
                let new = match Vec::from_iter(addrs).as_slice() {
                    [one] if one != old_master => one.clone(),
                    _ => return Err(format!("sentinels name {answers:?}")),
                };
                let role: Vec<redis::Value> = query(&new, &["ROLE"])
                    .await
                    .map_err(|err| format!("ROLE on {new}: {err}"))?;
                match role.first() {
                    Some(redis::Value::BulkString(r)) if r == b"master" => Ok(new),
                    _ => Err(format!("{new} answers ROLE {role:?}")),
                }
            },
        )
        .await
    }

    /// Starts a killed master again and makes it a replica of the current master, as an
    /// operator would (Sentinel would too, but only after its 10 s `INFO` period); returns once
    /// it is in sync.
    pub async fn restart_old_master(&self, old_master: &str) {
        let node = self.data_node(old_master);
        node.resume().await;
        let master = self.master_addr().await;
        let (host, port) = master.rsplit_once(':').expect("host:port");
        if let Err(err) = query::<()>(&node.addr(), &["REPLICAOF", host, port]).await {
            panic!("REPLICAOF {master} on {node}: {err}");
        }
        wait_in_sync(node, &master).await;
    }

    #[track_caller]
    fn data_node(&self, addr: &str) -> &Node {
        self.data
            .iter()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("{addr} is neither the master nor the replica"))
    }
}
