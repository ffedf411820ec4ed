//! Real Redis for the integration tests: Docker containers started through testcontainers.
//!
//! - [`RedisServer`]: one standalone server with an append-only file, for outage tests
//!   ([`stop`](RedisServer::stop) / [`resume`](RedisServer::resume),
//!   [`restart`](RedisServer::restart), [`kill_clients`](RedisServer::kill_clients)).
//! - [`SentinelTopology`]: a master, one replica and three sentinels (quorum 2) watching
//!   [`MASTER_NAME`], for failover tests.
//!
//! Every container uses host networking and listens on its own free loopback port, so every
//! address a test sees, Sentinel's answers included, is `127.0.0.1:PORT` (CI machines run Docker
//! with the bridge off). A container is removed when its handle drops, also when a test panics.
//!
//! The image is `CHAT_TEST_REDIS_IMAGE`, by default `chat-test-redis:local`, which
//! `scripts/redis-test-image.sh` builds from the host's `redis-server` without any registry
//! (`.ci/run` calls it). The official `redis:7` image works as well where a registry is
//! reachable (`CHAT_TEST_REDIS_IMAGE=redis:7`): the command lines are the same.
//!
//! ```text
//! let redis = RedisServer::start().await;
//! let client = redis::Client::open(redis.url())?;
//! redis.restart().await; // what was written before is still there
//!
//! let topology = SentinelTopology::start().await;
//! let sentinels = topology.sentinel_urls(); // for redis::sentinel::SentinelClient
//! let old = topology.kill_master().await;
//! let new = topology.wait_for_failover(&old).await;
//! ```
//!
//! Helpers panic with a message naming the server and the step that failed; they poll with
//! deadlines, never fixed sleeps.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Display;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, RedisResult};
use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::core::client::docker_client_instance;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// The image used when `CHAT_TEST_REDIS_IMAGE` is not set.
pub const DEFAULT_IMAGE: &str = "chat-test-redis:local";
/// The name the sentinels of a [`SentinelTopology`] monitor their master under.
pub const MASTER_NAME: &str = "mymaster";

/// How long a server gets to answer `PING` after its container starts.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a replica and the sentinels get to find each other.
const TOPOLOGY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a failover may take, from the master's death to all sentinels naming the new one.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two polls.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Where a sentinel's config file goes: Sentinel rewrites it, so it must be writable, and the
/// official image hands `/data` to its `redis` user.
const SENTINEL_CONF: &str = "/data/sentinel.conf";

/// A standalone Redis in a container, on `127.0.0.1:port()`, with an append-only file synced on
/// every write: data survives [`restart`](Self::restart) and [`stop`](Self::stop) +
/// [`resume`](Self::resume).
#[derive(Debug)]
pub struct RedisServer {
    node: Node,
}

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

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub async fn start() -> RedisServer {
        let node = Node::launch("redis", |port| {
            let mut cmd = server_args(port);
            cmd.extend(["--appendonly", "yes", "--appendfsync", "always"].map(String::from));
            (cmd, None)
        })
        .await;
        RedisServer { node }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.node.addr())
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.node.addr()
    }

    /// The loopback port the server listens on; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.node.port
    }

    /// A new multiplexed connection (connect timeout 1 s, response timeout 5 s).
    pub async fn connect(&self) -> MultiplexedConnection {
        connect(&self.node.addr())
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {}: {err}", self.node))
    }

    /// Stops the container (SIGTERM, as an operator would) and returns once it is down. Clients
    /// see their connections close; new connections are refused until [`resume`](Self::resume).
    pub async fn stop(&self) {
        self.node.stop(5).await;
    }

    /// Starts the stopped container again, on the same port and with the same data, and waits
    /// until it answers `PING`.
    pub async fn resume(&self) {
        self.node.resume().await;
    }

    /// [`stop`](Self::stop) then [`resume`](Self::resume).
    pub async fn restart(&self) {
        self.stop().await;
        self.resume().await;
    }

    /// Closes every client connection (normal and Pub/Sub) but the one that asks, as a network
    /// blip would. Returns how many were closed.
    pub async fn kill_clients(&self) -> u64 {
        let result: RedisResult<(u64, u64)> = async {
            let mut con = connect(&self.node.addr()).await?;
            let normal = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "normal"])
                .query_async(&mut con)
                .await?;
            let pubsub = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "pubsub"])
                .query_async(&mut con)
                .await?;
            Ok((normal, pubsub))
        }
        .await;
        let (normal, pubsub) =
            result.unwrap_or_else(|err| panic!("CLIENT KILL on {}: {err}", self.node));
        normal + pubsub
    }

    /// Runs one command on a fresh connection, like `redis-cli`, and converts the reply:
    /// `redis.cli::<Option<String>>(&["GET", "k"]).await`. Panics on errors.
    pub async fn cli<T: FromRedisValue>(&self, args: &[&str]) -> T {
        self.try_cli(args)
            .await
            .unwrap_or_else(|err| panic!("{args:?} on {}: {err}", self.node))
    }

    /// [`cli`](Self::cli) that returns errors (a refused connection while stopped, say).
    pub async fn try_cli<T: FromRedisValue>(&self, args: &[&str]) -> RedisResult<T> {
        query(&self.node.addr(), args).await
    }
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

/// One container running `redis-server` (or a sentinel) on `127.0.0.1:port`.
#[derive(Debug)]
struct Node {
    container: ContainerAsync<GenericImage>,
    port: u16,
    /// What it is, for messages: `redis`, `master`, `sentinel`...
    kind: &'static str,
}

impl Node {
    /// Starts a container from `spec(port)` (command line, sentinel config) on a free port and
    /// waits for `PING`. Tries another port if the one picked got taken in between.
    async fn launch(
        kind: &'static str,
        spec: impl Fn(u16) -> (Vec<String>, Option<String>),
    ) -> Node {
        let image = image().await;
        let (name, tag) = split_image(&image);
        for _attempt in 0..3 {
            let port = Port::reserve();
            let (cmd, conf) = spec(port.0);
            let mut request = GenericImage::new(name, tag)
                .with_network("host")
                .with_label("chat-test", kind)
                .with_cmd(cmd);
            if let Some(conf) = conf {
                request = request.with_copy_to(SENTINEL_CONF, conf.into_bytes());
            }
            let container = request.start().await.unwrap_or_else(|err| {
                panic!(
                    "cannot start a {kind} container from {image}: {err} (without a registry, \
                     build {DEFAULT_IMAGE} with scripts/redis-test-image.sh and leave \
                     CHAT_TEST_REDIS_IMAGE unset)"
                )
            });
            let node = Node {
                container,
                port: port.keep(),
                kind,
            };
            match node.wait_ready().await {
                Ok(()) => return node,
                Err(logs) if logs.contains("Address already in use") => continue,
                Err(logs) => panic!("{node} did not answer PING within {READY_TIMEOUT:?}:\n{logs}"),
            }
        }
        panic!("no free port for a {kind} container after 3 tries")
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Polls `PING` until it answers; on failure returns the container's last log lines.
    async fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let err = match query::<String>(&self.addr(), &["PING"]).await {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let running = self.container.is_running().await.unwrap_or(true);
            if !running || Instant::now() >= deadline {
                let state = if running { "running" } else { "exited" };
                return Err(format!("{state}, last error: {err}\n{}", self.logs().await));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Stops the container, giving the server `grace_secs` between SIGTERM and SIGKILL.
    async fn stop(&self, grace_secs: i32) {
        self.container
            .stop_with_timeout(Some(grace_secs))
            .await
            .unwrap_or_else(|err| panic!("cannot stop {self}: {err}"));
    }

    async fn resume(&self) {
        self.container
            .start()
            .await
            .unwrap_or_else(|err| panic!("cannot start {self} again: {err}"));
        if let Err(logs) = self.wait_ready().await {
            panic!("{self} did not answer PING after a restart:\n{logs}");
        }
    }

    /// The last lines the server logged.
    async fn logs(&self) -> String {
        let mut out = self.container.stdout_to_vec().await.unwrap_or_default();
        out.extend(self.container.stderr_to_vec().await.unwrap_or_default());
        let text = String::from_utf8_lossy(&out);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at 127.0.0.1:{} (container {:.12})",
            self.kind,
            self.port,
            self.container.id()
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // The container itself goes when `container` drops, just after.
        Port(self.port).release();
    }
}

/// Loopback ports this process handed to containers. A stopped server's port is free for the
/// kernel; keeping it here stops a concurrent test from picking it before the server resumes.
static TAKEN_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port reserved in [`TAKEN_PORTS`], given back if dropped before [`keep`](Port::keep).
struct Port(u16);

impl Port {
    fn reserve() -> Port {
        loop {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("bind a free loopback port")
                .port();
            if TAKEN_PORTS.lock().expect("port set").insert(port) {
                return Port(port);
            }
        }
    }

    fn keep(self) -> u16 {
        let port = self.0;
        std::mem::forget(self);
        port
    }

    fn release(&self) {
        TAKEN_PORTS.lock().map(|mut t| t.remove(&self.0)).ok();
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.release();
    }
}

/// The image to run, checked to exist when it is the local default (which cannot be pulled).
async fn image() -> String {
    let image = std::env::var("CHAT_TEST_REDIS_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
    let docker = docker_client_instance()
        .await
        .unwrap_or_else(|err| panic!("no docker engine ({err}): start dockerd (.ci/run does)"));
    match docker.inspect_image(&image).await {
        Ok(_) => {}
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            // Another image may be pullable: testcontainers pulls it. Ours cannot be.
            assert!(
                image != DEFAULT_IMAGE,
                "docker image {image} not found: run scripts/redis-test-image.sh first \
                 (or set CHAT_TEST_REDIS_IMAGE to an image docker can pull, such as redis:7)"
            );
        }
        Err(err) => panic!(
            "the docker engine does not answer ({err}): start dockerd (.ci/run does), \
             then run scripts/redis-test-image.sh"
        ),
    }
    image
}

/// `redis:7` → (`redis`, `7`); `host:5000/redis` → (`host:5000/redis`, `latest`).
fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// The command line every data node shares: loopback only, no snapshots, an announced address
/// that stays loopback once Sentinel makes the node a replica, and replicas synced at once
/// rather than after the default 5 s wait for more of them.
fn server_args(port: u16) -> Vec<String> {
    let port = port.to_string();
    [
        "redis-server",
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--replica-announce-ip",
        "127.0.0.1",
        "--repl-diskless-sync-delay",
        "0",
    ]
    .map(String::from)
    .into()
}

async fn connect(addr: &str) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    redis::Client::open(format!("redis://{addr}"))?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// One command on a fresh connection.
async fn query<T: FromRedisValue>(addr: &str, args: &[&str]) -> RedisResult<T> {
    let (name, rest) = args.split_first().expect("a command");
    let mut con = connect(addr).await?;
    redis::cmd(name).arg(rest).query_async(&mut con).await
}

async fn master_by_sentinel(sentinel: &str) -> RedisResult<String> {
    let (host, port): (String, u16) = query(
        sentinel,
        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
    )
    .await?;
    Ok(format!("{host}:{port}"))
}

/// `SENTINEL REPLICAS|SENTINELS mymaster`, one map per instance.
async fn sentinel_list(sentinel: &str, what: &str) -> Result<Vec<HashMap<String, String>>, String> {
    query(sentinel, &["SENTINEL", what, MASTER_NAME])
        .await
        .map_err(|err| format!("SENTINEL {what}: {err}"))
}

fn flags(instance: &HashMap<String, String>) -> &str {
    instance.get("flags").map_or("", String::as_str)
}

/// Calls `check` until it returns `Ok`, every [`POLL_INTERVAL`]; panics with its last error
/// once `timeout` has passed.
async fn eventually<T>(
    timeout: Duration,
    what: impl Display,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("waited {timeout:?} for {what}; last: {last}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// Waits until `replica` reports its link to `master` up.
async fn wait_in_sync(replica: &Node, master: &dyn Display) {
    eventually(
        TOPOLOGY_TIMEOUT,
        format_args!("{replica} in sync with {master}"),
        async || {
            let info: String = query(&replica.addr(), &["INFO", "replication"])
                .await
                .map_err(|err| err.to_string())?;
            info.contains("master_link_status:up")
                .then_some(())
                .ok_or(info)
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use redis::AsyncCommands;
    use redis::sentinel::{SentinelClient, SentinelServerType};

    use super::*;
    use crate::helpers::uid;

    /// A standalone server starts and answers commands on its loopback URL.
    #[tokio::test]
    async fn standalone_server_answers() {
        let redis = RedisServer::start().await;
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
        assert_eq!(redis.addr(), format!("127.0.0.1:{}", redis.port()));

        let mut con = redis.connect().await;
        let key = uid("standalone");
        let () = con.set(&key, "v").await.unwrap();
        assert_eq!(redis.cli::<String>(&["GET", &key]).await, "v");
    }

    /// What was written before a restart is read back after it, on the same URL.
    #[tokio::test]
    async fn data_survives_restart() {
        let redis = RedisServer::start().await;
        let key = uid("durable");
        redis.cli::<()>(&["SET", &key, "kept"]).await;

        redis.restart().await;

        assert_eq!(
            redis.cli::<Option<String>>(&["GET", &key]).await.as_deref(),
            Some("kept")
        );
    }

    /// While the server is stopped commands fail; once resumed they work and data is intact.
    #[tokio::test]
    async fn commands_fail_while_stopped() {
        let redis = RedisServer::start().await;
        let key = uid("outage");
        redis.cli::<()>(&["SET", &key, "before"]).await;

        redis.stop().await;
        assert!(redis.try_cli::<String>(&["PING"]).await.is_err());

        redis.resume().await;
        assert_eq!(redis.cli::<String>(&["GET", &key]).await, "before");
    }

    /// `kill_clients` drops open connections: the next command on them fails.
    #[tokio::test]
    async fn kill_clients_drops_connections() {
        let redis = RedisServer::start().await;
        let mut con = redis.connect().await;
        let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
        assert_eq!(pong, "PONG");

        assert!(redis.kill_clients().await >= 1);

        let after: RedisResult<String> = redis::cmd("PING").query_async(&mut con).await;
        assert!(
            after.is_err(),
            "the killed connection still answered: {after:?}"
        );
        assert_eq!(redis.cli::<String>(&["PING"]).await, "PONG");
    }

    /// Killing the master promotes the replica, which holds what was written before, and the
    /// old master comes back as a replica.
    #[tokio::test]
    async fn sentinel_failover_promotes_the_replica() {
        let topology = SentinelTopology::start().await;
        assert_eq!(topology.sentinel_addrs().len(), 3);
        let mut sentinel = SentinelClient::build(
            topology.sentinel_urls(),
            topology.master_name().to_owned(),
            None,
            SentinelServerType::Master,
        )
        .unwrap();
        let mut con = sentinel.get_async_connection().await.unwrap();
        let key = uid("failover");
        let () = con.set(&key, "replicated").await.unwrap();
        let acked: u32 = redis::cmd("WAIT")
            .arg(1)
            .arg(2000)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(acked, 1, "the replica did not acknowledge the write");

        let old = topology.kill_master().await;
        let new = topology.wait_for_failover(&old).await;

        assert_ne!(new, old);
        assert_eq!(topology.master_addr().await, new);
        let mut con = sentinel.get_async_connection().await.unwrap();
        let value: Option<String> = con.get(&key).await.unwrap();
        assert_eq!(value.as_deref(), Some("replicated"));

        topology.restart_old_master(&old).await;
        assert_eq!(topology.master_addr().await, new);
    }
}
