//! The shutdown signal of the binaries: SIGTERM or ctrl-c.

/// Resolves on ctrl-c (SIGINT) or, on Unix, SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// signal that arrives right after the server says it is listening must start a drain, not
/// kill the process. Call it inside the Tokio runtime.
pub fn signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        async fn wait(stream: std::io::Result<Signal>, name: &'static str) -> &'static str {
            match stream {
                Ok(mut s) => {
                    s.recv().await;
                    name
                }
                Err(e) => {
                    tracing::error!(cause = %e, "cannot listen for {name}");
                    std::future::pending().await
                }
            }
        }
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            let name = tokio::select! {
                name = wait(int, "ctrl-c") => name,
                name = wait(term, "SIGTERM") => name,
            };
            tracing::info!("{name} received");
        }
    }
    #[cfg(not(unix))]
    async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("ctrl-c received"),
            Err(e) => {
                tracing::error!(cause = %e, "cannot listen for ctrl-c");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How long open HTTP requests get to finish once a server stops.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves `app` until `stop` resolves, then lets open requests finish for at most
/// [`GRACE`]: a client that never completes its request must not keep the process alive.
///
/// Every connection shares one router. Served as a plain `Router`, axum gives each
/// connection a deep copy of it (every route's boxed service, the CORS layer's settings),
/// about 9 KB that a keep-alive connection holds while idle: a long-polling client keeps two.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopped = tokio_util::sync::CancellationToken::new();
    let trigger = stopped.clone();
    // `with_state` turns every handler into a route once, as axum would per connection.
    let shared = app.with_state(()).into_make_service();
    let graceful = axum::serve(listener, shared).with_graceful_shutdown(async move {
        stop.await;
        trigger.cancel();
    });
    tokio::select! {
        served = graceful.into_future() => served,
        () = async { stopped.cancelled().await; tokio::time::sleep(GRACE).await } => {
            tracing::warn!(grace = ?GRACE, "requests still open after the grace period; closing them");
            Ok(())
        }
    }
}
