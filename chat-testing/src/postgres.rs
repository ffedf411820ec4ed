//! A PostgreSQL server in a container on a loopback port, one per test: the archive's
//! integration tests run on the real thing.
//!
//! The image is `chat-test-postgres:local`, built from the host's PostgreSQL by
//! `scripts/postgres-test-image.sh` (no registry needed; `CHAT_TEST_POSTGRES_IMAGE` names
//! another, such as `postgres:16`, which must then take the same command). The server runs
//! with host networking on 127.0.0.1 only, trusts local connections (user `postgres`, no
//! password) and skips fsync: test data dies with the container.

use std::{net::TcpListener, time::Duration};

use testcontainers::{
    ContainerAsync, GenericImage, ImageExt,
    core::{WaitFor, client::docker_client_instance},
    runners::AsyncRunner,
};

const DEFAULT_IMAGE: &str = "chat-test-postgres:local";
const READY: &str = "database system is ready to accept connections";

/// A running PostgreSQL server; stopped and removed when dropped.
#[derive(Debug)]
pub struct PostgresServer {
    _container: ContainerAsync<GenericImage>,
    port: u16,
}

impl PostgresServer {
    /// Starts a fresh server and waits until it accepts connections.
    pub async fn start() -> PostgresServer {
        let image = std::env::var("CHAT_TEST_POSTGRES_IMAGE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
        check_image(&image).await;
        let (name, tag) = image.rsplit_once(':').unwrap_or((&image, "latest"));
        for _attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let script = format!(
                "initdb -D /tmp/pg -U postgres --auth=trust -E UTF8 --locale=C >/dev/null 2>&1 \
                 && exec postgres -D /tmp/pg -p {port} -c listen_addresses=127.0.0.1 -k /tmp \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            );
            let started = GenericImage::new(name, tag)
                .with_wait_for(WaitFor::message_on_stderr(READY))
                .with_network("host")
                .with_label("chat-test", "postgres")
                .with_user("postgres")
                .with_cmd(["sh", "-c", script.as_str()])
                .with_startup_timeout(Duration::from_secs(60))
                .start()
                .await;
            match started {
                Ok(container) => {
                    return PostgresServer {
                        _container: container,
                        port,
                    };
                }
                // The port was taken in between: another one.
                Err(err) if err.to_string().contains("exited") => continue,
                Err(err) => panic!("cannot start a postgres container from {image}: {err}"),
            }
        }
        panic!("no postgres container came up after 3 tries")
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

async fn check_image(image: &str) {
    let docker = docker_client_instance()
        .await
        .unwrap_or_else(|err| panic!("no docker engine ({err}): start dockerd (.ci/run does)"));
    if docker.inspect_image(image).await.is_err() && image == DEFAULT_IMAGE {
        panic!(
            "docker image {image} not found: run scripts/postgres-test-image.sh first (or set \
             CHAT_TEST_POSTGRES_IMAGE to an image docker can pull)"
        );
    }
}
