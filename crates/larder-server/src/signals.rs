//! The signals the binary answers: Ctrl-C and SIGTERM (graceful shutdown) and SIGHUP
//! (reload), each handler installed when its function is called.

/// Waits for Ctrl-C or SIGTERM. The SIGTERM handler is installed when this is called, not when
/// the returned future is first polled, so call it before serving: a SIGTERM that arrives
/// while the server starts must not kill the process with the default action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match sigterm {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = term => {}
        }
        tracing::info!("shutting down");
    }
}

/// A SIGHUP listener (`None` when it could not be installed, logged).
#[cfg(unix)]
pub type Hangup = Option<tokio::signal::unix::Signal>;
/// No SIGHUP off Unix.
#[cfg(not(unix))]
pub type Hangup = Option<()>;

/// A SIGHUP listener, installed when this is called: call it before anything slow, so a
/// SIGHUP that arrives while the server starts (a `systemctl reload`) does not end the process
/// with the default action.
pub fn hangup_signal() -> Hangup {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| tracing::error!(error = %e, "cannot listen for SIGHUP"))
            .ok()
    }
    #[cfg(not(unix))]
    None
}
