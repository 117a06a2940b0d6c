//! Running the HTTP server: bind first (so `/health` answers at once), open the store and
//! indexes in the background (`/ready` turns 200 when done), shut down gracefully on SIGTERM or
//! Ctrl-C: stop accepting, drain in-flight requests, flush the store.

use crate::api::{router, AppState};
use crate::service::app::{App, AppConfig};
use anyhow::{Context, Result};
use std::net::SocketAddr;

/// Serve until a shutdown signal.
pub async fn serve(cfg: AppConfig, addr: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    serve_listener(cfg, listener, shutdown_signal()).await
}

/// Serve on an already bound listener until `shutdown` completes (tests bind port 0).
pub async fn serve_listener(
    cfg: AppConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let state = AppState::from_config(&cfg);
    let opener = state.clone();
    let open = tokio::task::spawn_blocking(move || App::open(cfg));
    let app_handle = tokio::spawn(async move {
        match open.await {
            Ok(Ok(app)) => {
                tracing::info!("store open; ready");
                opener.set_app(app.clone());
                let bg = app.clone();
                tokio::task::spawn_blocking(move || {
                    let t = std::time::Instant::now();
                    match bg.sync_indexes(None) {
                        Ok(()) => tracing::info!(
                            secs = t.elapsed().as_secs_f64(),
                            "indexes caught up with the store"
                        ),
                        Err(e) => tracing::error!(error = %e, "index catch-up failed"),
                    }
                });
                Some(app)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot open the store; shutting down");
                std::process::exit(2);
            }
            Err(e) => {
                tracing::error!(error = %e, "store opener failed");
                std::process::exit(2);
            }
        }
    });
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    tracing::info!("draining done; flushing store");
    if let Ok(Some(app)) = app_handle.await {
        app.store.flush()?;
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}
