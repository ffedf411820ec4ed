//! Containers on loopback ports: one `redis-server` or sentinel each, and the polling helpers.

use std::{
    collections::{BTreeSet, HashMap},
    fmt::Display,
    net::TcpListener,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{AsyncConnectionConfig, FromRedisValue, RedisResult, aio::MultiplexedConnection};
use testcontainers::{
    ContainerAsync, GenericImage, ImageExt, bollard::errors::Error as DockerError,
    core::client::docker_client_instance, runners::AsyncRunner,
};

use super::{
    DEFAULT_IMAGE, MASTER_NAME, POLL_INTERVAL, READY_TIMEOUT, SENTINEL_CONF, TOPOLOGY_TIMEOUT,
};
/// One container running `redis-server` (or a sentinel) on `127.0.0.1:port`.
#[derive(Debug)]
pub(crate) struct Node {
    container: ContainerAsync<GenericImage>,
    pub(crate) port: u16,
    /// What it is, for messages: `redis`, `master`, `sentinel`...
    pub(crate) kind: &'static str,
}

impl Node {
    /// Starts a container from `spec(port)` (command line, sentinel config) on a free port and
    /// waits for `PING`. Tries another port if the one picked got taken in between.
    pub(crate) async fn launch(
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

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Polls `PING` until it answers; on failure returns the container's last log lines.
    pub(crate) async fn wait_ready(&self) -> Result<(), String> {
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
    pub(crate) async fn stop(&self, grace_secs: i32) {
        self.container
            .stop_with_timeout(Some(grace_secs))
            .await
            .unwrap_or_else(|err| panic!("cannot stop {self}: {err}"));
    }

    pub(crate) async fn resume(&self) {
        self.container
            .start()
            .await
            .unwrap_or_else(|err| panic!("cannot start {self} again: {err}"));
        if let Err(logs) = self.wait_ready().await {
            panic!("{self} did not answer PING after a restart:\n{logs}");
        }
    }

    /// The last lines the server logged.
    pub(crate) async fn logs(&self) -> String {
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
pub(crate) static TAKEN_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port reserved in [`TAKEN_PORTS`], given back if dropped before [`keep`](Port::keep).
pub(crate) struct Port(u16);

impl Port {
    pub(crate) fn reserve() -> Port {
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

    pub(crate) fn keep(self) -> u16 {
        let port = self.0;
        std::mem::forget(self);
        port
    }

    pub(crate) fn release(&self) {
        TAKEN_PORTS.lock().map(|mut t| t.remove(&self.0)).ok();
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.release();
    }
}

/// The image to run, checked to exist when it is the local default (which cannot be pulled).
pub(crate) async fn image() -> String {
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
pub(crate) fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// The command line every data node shares: loopback only, no snapshots, an announced address
/// that stays loopback once Sentinel makes the node a replica, and replicas synced at once
/// rather than after the default 5 s wait for more of them.
pub(crate) fn server_args(port: u16) -> Vec<String> {
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

pub(crate) async fn connect(addr: &str) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    redis::Client::open(format!("redis://{addr}"))?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// One command on a fresh connection.
pub(crate) async fn query<T: FromRedisValue>(addr: &str, args: &[&str]) -> RedisResult<T> {
    let (name, rest) = args.split_first().expect("a command");
    let mut con = connect(addr).await?;
    redis::cmd(name).arg(rest).query_async(&mut con).await
}

pub(crate) async fn master_by_sentinel(sentinel: &str) -> RedisResult<String> {
    let (host, port): (String, u16) = query(
        sentinel,
        &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
    )
    .await?;
    Ok(format!("{host}:{port}"))
}

/// `SENTINEL REPLICAS|SENTINELS mymaster`, one map per instance.
pub(crate) async fn sentinel_list(
    sentinel: &str,
    what: &str,
) -> Result<Vec<HashMap<String, String>>, String> {
    query(sentinel, &["SENTINEL", what, MASTER_NAME])
        .await
        .map_err(|err| format!("SENTINEL {what}: {err}"))
}

pub(crate) fn flags(instance: &HashMap<String, String>) -> &str {
    instance.get("flags").map_or("", String::as_str)
}

/// Calls `check` until it returns `Ok`, every [`POLL_INTERVAL`]; panics with its last error
/// once `timeout` has passed.
pub(crate) async fn eventually<T>(
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
pub(crate) async fn wait_in_sync(replica: &Node, master: &dyn Display) {
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
