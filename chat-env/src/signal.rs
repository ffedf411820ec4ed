//! The stop signal of the binaries: SIGTERM or ctrl-c.

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
