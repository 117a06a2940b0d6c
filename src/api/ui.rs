//! The built-in search-and-browse page: one HTML shell, a script and a style sheet compiled
//! into the binary (nothing from a CDN; works offline). Its state lives in the URL
//! (`/?q=heart%20attack`, `/concept/{system}/{code}`, `/?tab=note`, `/models/{name}`: the model
//! card with the trainer's pictures), so every page the shell
//! serves is the same document and the script renders the view the URL names.

use super::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/ui/index.html"));
const SCRIPT: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/ui/app.js"));
const STYLE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/ui/app.css"));

/// Routes of the page: `/`, `/concept/{system}/{code}`, `/models`, `/models/{name}` and its two
/// assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/concept/{system}/{code}", get(page))
        .route("/models", get(page))
        .route("/models/{name}", get(page))
        .route("/ui/app.js", get(script))
        .route("/ui/app.css", get(style))
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
            ),
        ],
        INDEX,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE,
    )
}
