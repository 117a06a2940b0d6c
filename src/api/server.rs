//! Running the HTTP server: bind first (so `/health` answers at once), open the store and
//! indexes in the background (`/ready` turns 200 when done), shut down gracefully on SIGTERM or
//! Ctrl-C: stop accepting, drain in-flight requests, flush the store.

use crate::api::{router, AppState};
use crate::service::app::{App, AppConfig};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::time::Duration;

/// Serve until a shutdown signal.
pub async fn serve(cfg: AppConfig, addr: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    serve_listener(cfg, listener, crate::util::signal::shutdown_signal()).await
}

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long background work gets to reach a batch boundary and save its progress.
pub const BACKGROUND_GRACE: Duration = Duration::from_millis(2500);
/// Past this after the signal the process exits whatever still runs (the promise: exit in 5 s).
pub const EXIT_DEADLINE: Duration = Duration::from_millis(4800);

/// Serve on an already bound listener until `shutdown` completes (tests bind port 0).
///
/// On `shutdown`: stop accepting, cancel background work at once (it saves its progress at the
/// next batch boundary), give in-flight requests [`DRAIN_GRACE`] and background threads
/// [`BACKGROUND_GRACE`], flush the store. A watchdog exits the process at [`EXIT_DEADLINE`]
/// if anything still hangs.
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
                app.start_indexer();
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
    // the signal starts the drain and, at the same moment, cancels background work
    let (signalled_tx, signalled_rx) = tokio::sync::watch::channel(false);
    let canceller = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = signalled_tx.send(true);
        if let Ok(app) = canceller.app() {
            // cancel only: the threads are joined (bounded) after the drain
            app.jobs.cancel_all();
            app.request_stop();
        }
        std::thread::spawn(|| {
            std::thread::sleep(EXIT_DEADLINE);
            eprintln!("shutdown did not finish within {EXIT_DEADLINE:?}; exiting");
            std::process::exit(1);
        });
    });
    let mut drain_rx = signalled_rx.clone();
    let server = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = drain_rx.wait_for(|s| *s).await;
    });
    let mut grace_rx = signalled_rx;
    tokio::select! {
        r = server => r?,
        _ = async {
            let _ = grace_rx.wait_for(|s| *s).await;
            tokio::time::sleep(DRAIN_GRACE).await;
        } => tracing::warn!("in-flight requests did not finish within {DRAIN_GRACE:?}; dropping them"),
    }
    tracing::info!("draining done; stopping background work");
    if let Ok(Some(app)) = app_handle.await {
        let stopped =
            tokio::task::spawn_blocking(move || (app.shutdown(BACKGROUND_GRACE), app)).await;
        if let Ok((_, app)) = stopped {
            app.store.flush()?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}
