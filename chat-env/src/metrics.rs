//! `/metrics` in the Prometheus text format, for the three binaries.
//!
//! Each binary's `run` makes one [`Exporter`]: a Prometheus recorder of its own (not the
//! process-wide one, so several servers in one process, as in tests, keep apart), resolves
//! its libraries' metrics handles against it ([`Exporter::scope`]), and serves
//! [`router`] on its main listener, or on `CHAT_METRICS_LISTEN` when that is set.

use std::{
    future::Future,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use ::metrics::Counter;
use axum::{Router, http::header, response::IntoResponse, routing::get};
use chat_core::serve::{HttpLimits, HttpStats};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Bucket bounds of every histogram, in seconds: every family is a latency, from a Redis
/// round trip on a LAN (sub-millisecond) to a delivery stuck behind a failover (seconds).
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histograms' recent samples are folded into their buckets when nobody scrapes
/// (samples wait in a queue until then: memory must not grow without a scraper).
const UPKEEP: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A Prometheus recorder of one binary, with its HTTP server's counters.
#[derive(Debug)]
pub struct Exporter {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    http: Arc<HttpStats>,
    refused: Counter,
}

impl Default for Exporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Exporter {
    /// A recorder with [`BUCKETS`] for every histogram.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            // Only an empty bucket list is refused.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let refused = ::metrics::with_local_recorder(&recorder, || {
            ::metrics::describe_counter!(
                "chat_http_connections_refused_total",
                "TCP connections answered 503 and closed at the connection cap (CHAT_MAX_CONNECTIONS)."
            );
            ::metrics::counter!("chat_http_connections_refused_total")
        });
        Self {
            recorder,
            handle,
            http: Arc::default(),
            refused,
        }
    }

    /// Runs `f` with this recorder as the current one: the metrics handles `f` resolves
    /// (`Chat::builder`, `Redis::new`...) record here.
    pub fn scope<T>(&self, f: impl FnOnce() -> T) -> T {
        ::metrics::with_local_recorder(&self.recorder, f)
    }

    /// The counters to give the HTTP server (`chat_core::serve::serve_with`).
    pub fn http_stats(&self) -> Arc<HttpStats> {
        self.http.clone()
    }

    /// The current values in the Prometheus text format.
    pub fn render(&self) -> String {
        self.refused
            .absolute(self.http.refused.load(Ordering::Relaxed));
        self.handle.render()
    }

    /// Folds histogram samples into their buckets every few seconds until `stop` resolves.
    pub async fn upkeep(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let mut tick = tokio::time::interval(UPKEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => self.handle.run_upkeep(),
                () = &mut stop => return,
            }
        }
    }
}

/// `GET /metrics`: runs `refresh` (values the libraries count only when asked), then
/// renders. No authentication: bind `CHAT_METRICS_LISTEN` to a private address to keep it
/// from clients.
pub fn router<F, Fut>(exporter: Arc<Exporter>, refresh: F) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    Router::new().route(
        "/metrics",
        get(move || async move {
            refresh().await;
            ([(header::CONTENT_TYPE, CONTENT_TYPE)], exporter.render()).into_response()
        }),
    )
}

/// Serves `app` on `listener` and `metrics` (a [`router`]) on `metrics_listener`, or with
/// `app` when there is none, with `exporter`'s upkeep, until `stop` resolves; the HTTP
/// server counts in the exporter's [`Exporter::http_stats`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    metrics: Router,
    metrics_listener: Option<TcpListener>,
    limits: HttpLimits,
    exporter: Arc<Exporter>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopping = CancellationToken::new();
    let upkeep = tokio::spawn(exporter.clone().upkeep(stopping.clone().cancelled_owned()));
    let (app, side) = match metrics_listener {
        None => (app.merge(metrics), None),
        Some(l) => {
            tracing::info!(addr = %l.local_addr()?, "metrics listening");
            let stop = stopping.clone().cancelled_owned();
            (
                app,
                Some(tokio::spawn(chat_core::serve::serve(l, metrics, stop))),
            )
        }
    };
    let trigger = stopping.clone();
    let served =
        chat_core::serve::serve_with(listener, app, limits, exporter.http_stats(), async move {
            stop.await;
            trigger.cancel();
        })
        .await;
    stopping.cancel();
    let _ = upkeep.await;
    if let Some(side) = side {
        side.await.unwrap_or(Ok(()))?;
    }
    served
}

/// Binds the separate metrics listener (`CHAT_METRICS_LISTEN`), when one is configured.
pub async fn bind(addr: Option<std::net::SocketAddr>) -> std::io::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => TcpListener::bind(addr).await.map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use chat_testing::metrics::sample;

    use super::*;

    /// A family resolved in the exporter's scope shows up in its rendering, with its
    /// labels, and histograms have buckets (not summaries).
    #[test]
    fn renders_what_was_resolved_in_scope() {
        let e = Exporter::new();
        let (c, h) = e.scope(|| {
            (
                ::metrics::counter!("t_total", "kind" => "a"),
                ::metrics::histogram!("t_seconds"),
            )
        });
        c.increment(3);
        h.record(0.002);
        e.http.refused.fetch_add(2, Ordering::Relaxed);
        let text = e.render();
        assert_eq!(sample(&text, "t_total", &[("kind", "a")]), Some(3.0));
        assert_eq!(sample(&text, "t_total", &[]), None);
        assert_eq!(sample(&text, "t_seconds_count", &[]), Some(1.0));
        assert_eq!(
            sample(&text, "t_seconds_bucket", &[("le", "0.0025")]),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "chat_http_connections_refused_total", &[]),
            Some(2.0)
        );
        // Another exporter does not see it.
        assert_eq!(
            sample(&Exporter::new().render(), "t_total", &[("kind", "a")]),
            None
        );
    }
}

#[cfg(test)]
mod serve_tests {
    use std::net::SocketAddr;

    use axum::routing::get;
    use chat_testing::metrics::sample;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// One `GET` on its own connection: the status line and the body.
    async fn fetch(addr: SocketAddr, path: &str) -> (String, String) {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut res = String::new();
        tcp.read_to_string(&mut res).await.unwrap();
        let (head, body) = res.split_once("\r\n\r\n").unwrap_or((&res, ""));
        (
            head.lines().next().unwrap_or("").to_owned(),
            body.to_owned(),
        )
    }

    /// `/metrics` is served with the app when no metrics listener is given, else only on
    /// that one; the app's connection refusals at its cap are counted.
    #[tokio::test]
    async fn metrics_with_the_app_or_on_their_own_listener() {
        for separate in [false, true] {
            let exporter = Arc::new(Exporter::new());
            let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let main_addr = main.local_addr().unwrap();
            let side = match separate {
                true => Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
                false => None,
            };
            let metrics_addr = side.as_ref().map_or(main_addr, |l| l.local_addr().unwrap());
            let app = Router::new().route("/x", get(|| async { "x" }));
            let limits = HttpLimits {
                max_connections: 1,
                ..HttpLimits::default()
            };
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let metrics = router(exporter.clone(), || async {});
            let task = tokio::spawn(serve(main, app, metrics, side, limits, exporter, async {
                let _ = stopped.await;
            }));
            let (status, text) = fetch(metrics_addr, "/metrics").await;
            assert!(status.contains(" 200 "), "{status}");
            assert_eq!(
                sample(&text, "chat_http_connections_refused_total", &[]),
                Some(0.0)
            );
            assert!(fetch(main_addr, "/x").await.0.contains(" 200 "));
            if separate {
                assert!(fetch(main_addr, "/metrics").await.0.contains(" 404 "));
                // The app's one connection slot is taken: the next connection is refused,
                // and the scrape, on its own listener, says so.
                let _held = tokio::net::TcpStream::connect(main_addr).await.unwrap();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while !fetch(main_addr, "/x").await.0.contains(" 503 ") {
                    assert!(tokio::time::Instant::now() < deadline, "never refused");
                }
                let (_, text) = fetch(metrics_addr, "/metrics").await;
                let refused = sample(&text, "chat_http_connections_refused_total", &[]);
                assert!(refused.is_some_and(|n| n >= 1.0), "{text}");
            }
            let _ = stop.send(());
            task.await.unwrap().unwrap();
        }
    }
}
