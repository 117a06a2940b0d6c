//! Model endpoints: the loaded models, one model's card, and the card files its trainer wrote
//! (`curves.svg`, `eval.svg`, `MODEL_CARD.md`; [`crate::service::models`] holds the allow-list
//! and reads them).

use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::search::engine;
use super::{blocking, AppState};
use crate::service::models::{self as cards, ModelCard};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /v1/models` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsResponse {
    /// Loaded models (terms models with the vector index their searches read).
    pub models: Vec<crate::search::serving::ModelStatus>,
}

/// Loaded models with their kind, base, trainer and evaluation numbers.
#[utoipa::path(get, path = "/v1/models", tag = "search", responses((status = 200, body = ModelsResponse)))]
pub async fn models(State(st): State<AppState>) -> Result<ApiJson<ModelsResponse>, ApiError> {
    let eng = engine(&st)?;
    Ok(ApiJson(ModelsResponse {
        models: eng.models(),
    }))
}

/// One model: what `/v1/models` shows for it, and the URLs of its card files (training
/// curves and evaluation pictures written by the trainer, the markdown card).
#[utoipa::path(get, path = "/v1/models/{name}", tag = "search",
    params(("name" = String, Path, description = "Model name (its folder under models/)")),
    responses((status = 200, body = ModelCard), (status = 404, body = ErrorBody, description = "Unknown model")))]
pub async fn model(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<ApiJson<ModelCard>, ApiError> {
    let (eng, dir) = (engine(&st)?, st.app()?.config.models_dir.clone());
    let card = blocking(move || cards::card(eng.registry(), &dir, &name)).await??;
    Ok(ApiJson(card))
}

/// A card file of a model: `curves.svg` (loss per step, dev metrics per evaluation step),
/// `eval.svg` (the evaluation table as bars) or `MODEL_CARD.md`. Any other name is 404.
#[utoipa::path(get, path = "/v1/models/{name}/files/{file}", tag = "search",
    params(("name" = String, Path, description = "Model name"),
        ("file" = String, Path, description = "curves.svg, eval.svg or MODEL_CARD.md")),
    responses(
        (status = 200, description = "The file", content(
            (String = "image/svg+xml"),
            (String = "text/markdown"))),
        (status = 404, body = ErrorBody, description = "Unknown model, a file name not served, or a file the trainer did not write")))]
pub async fn model_file(
    State(st): State<AppState>,
    ApiPath((name, file)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (eng, dir) = (engine(&st)?, st.app()?.config.models_dir.clone());
    let (bytes, content_type) =
        blocking(move || cards::card_file(eng.registry(), &dir, &name, &file)).await??;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // an SVG opened on its own runs no script and loads nothing
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        bytes,
    )
        .into_response())
}
