//! The shutdown signal of the binaries: SIGTERM or ctrl-c.

/// Resolves on ctrl-c (SIGINT) or, on Unix, SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(cause = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(cause = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

/// How long open HTTP requests get to finish once a server stops.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves `app` until `stop` resolves, then lets open requests finish for at most
/// [`GRACE`]: a client that never completes its request must not keep the process alive.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopped = tokio_util::sync::CancellationToken::new();
    let trigger = stopped.clone();
    let graceful = axum::serve(listener, app).with_graceful_shutdown(async move {
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
