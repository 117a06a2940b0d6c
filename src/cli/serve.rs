//! `ontovec serve`: the HTTP server's flags, checked, handed to [`crate::api::server::serve`].

use super::args::DataArgs;
use anyhow::{bail, Result};
use clap::Args;
use std::net::SocketAddr;

/// Flags of `ontovec serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory options.
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on.
    #[arg(long, env = "ONTOVEC_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Bearer token required for write endpoints (required to bind a non-loopback address).
    #[arg(long, env = "ONTOVEC_AUTH_TOKEN")]
    pub auth_token: Option<String>,
    /// Largest ingest upload in bytes.
    #[arg(long, env = "ONTOVEC_MAX_UPLOAD_BYTES", default_value_t = 16 << 30)]
    pub max_upload_bytes: u64,
    /// Largest total of uploads staged on disk at once by all in-flight ingests (507 past it).
    #[arg(long, env = "ONTOVEC_MAX_STAGED_BYTES", default_value_t = 32 << 30)]
    pub max_staged_bytes: u64,
    /// Deadline of one request in milliseconds (uploads excepted); past it: 503 `deadline_exceeded`.
    #[arg(long, env = "ONTOVEC_REQUEST_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,
    /// Origin allowed to call the API from a browser (CORS), e.g. https://app.example.org;
    /// repeat or separate with commas; `*` allows any. None by default.
    #[arg(
        long = "cors-origin",
        env = "ONTOVEC_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Texts that search/normalize/relatedness/embed requests may have waiting in the
    /// encoder at once; beyond it requests get 429 with Retry-After instead of queueing.
    #[arg(long, env = "ONTOVEC_MAX_INFLIGHT_TEXTS", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_inflight_texts: u64,
    /// Most padded tokens in one batch of `/v1/embed`-style work while queries are arriving:
    /// a query waits for at most one such batch. 0 keeps batches as large as the encoder's
    /// budgets allow (throughput first).
    #[arg(long, env = "ONTOVEC_QUERY_BATCH_TOKENS",
          default_value_t = crate::encoder::DEFAULT_QUERY_BATCH_TOKENS as u64,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub query_batch_tokens: u64,
    /// Serve reads only (a replica restored with `ontovec snapshot restore`): write endpoints
    /// answer 403 `read_only`, and a shared Postgres vector store is left to the writer.
    #[arg(long, env = "ONTOVEC_READ_ONLY")]
    pub read_only: bool,
    /// The writer's base URL, named in a read-only node's 403 answers.
    #[arg(long, env = "ONTOVEC_WRITER_URL")]
    pub writer_url: Option<String>,
}

/// Check the flags and serve until SIGTERM/SIGINT.
pub fn run(a: ServeArgs) -> Result<()> {
    let ServeArgs {
        data,
        addr,
        auth_token,
        max_upload_bytes,
        max_staged_bytes,
        request_timeout_ms,
        cors_origins,
        max_inflight_texts,
        query_batch_tokens,
        read_only,
        writer_url,
    } = a;
    if !addr.ip().is_loopback() && auth_token.is_none() {
        bail!("refusing to listen on non-loopback {addr} without --auth-token (writes would be open to the network)");
    }
    if auth_token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        bail!("--auth-token must not be empty");
    }
    crate::api::cors_layer(&cors_origins).map_err(anyhow::Error::msg)?;
    let mut cfg = data.app_config()?;
    cfg.vector.read_only = read_only;
    cfg.writer_url = writer_url;
    cfg.auth_token = auth_token;
    cfg.max_upload_bytes = max_upload_bytes;
    cfg.max_staged_bytes = max_staged_bytes;
    cfg.request_timeout = std::time::Duration::from_millis(request_timeout_ms);
    cfg.cors_origins = cors_origins;
    cfg.max_inflight_texts = max_inflight_texts as usize;
    cfg.query_batch_tokens = query_batch_tokens as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let r = rt.block_on(crate::api::server::serve(cfg, addr));
    // blocking tasks stuck in dropped requests must not hold the exit
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    r
}
