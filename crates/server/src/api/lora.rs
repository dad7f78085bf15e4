//! llama-server's LoRA adapter endpoints: `GET /lora-adapters` lists a
//! model's adapters (its Modelfile ADAPTERs) with their default scales, and
//! `POST /lora-adapters` sets those scales for the loaded model, without
//! reloading it. A request's own `lora` field overrides them. hearth serves
//! several models, so the model is named by `?model=NAME`; without it, the
//! one loaded model is meant.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::request::LoraChoice;

/// `?model=NAME`.
#[derive(Debug, Deserialize)]
pub struct Which {
    model: Option<String>,
}

/// The model meant: the one named, else the only one loaded.
async fn model(state: &AppState, which: Which) -> Result<store::ResolvedModel, ApiError> {
    match which.model {
        Some(name) => state.scheduler.resolve(&name).await,
        None => {
            let loaded = state.scheduler.list_loaded();
            match loaded.as_slice() {
                [one] => Ok((*one.model).clone()),
                _ => Err(ApiError::bad_request(format!(
                    "{} models are loaded: name one with ?model=NAME",
                    loaded.len()
                ))),
            }
        }
    }
}

/// `[{"id", "path", "scale"}]` for `model`'s adapters at `scales`.
fn listing(model: &store::ResolvedModel, scales: &[f32]) -> Json<Value> {
    Json(Value::Array(
        model
            .adapters
            .iter()
            .enumerate()
            .map(|(id, path)| {
                json!({
                    "id": id,
                    "path": path.display().to_string(),
                    "scale": scales.get(id).copied().unwrap_or(1.0),
                })
            })
            .collect(),
    ))
}

fn read(scales: &std::sync::Mutex<Vec<f32>>) -> Vec<f32> {
    scales
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// `GET /lora-adapters`: the model's adapters and their default scales (1
/// until set, also for a model not loaded).
pub async fn list(
    State(state): State<AppState>,
    Query(which): Query<Which>,
) -> Result<Json<Value>, ApiError> {
    let model = model(&state, which).await?;
    let scales = state
        .scheduler
        .lora_scales(&model.digest)
        .map(|s| read(&s))
        .unwrap_or_default();
    Ok(listing(&model, &scales))
}

/// `POST /lora-adapters`: sets the loaded model's default adapter scales;
/// an adapter left out is off (scale 0), as llama-server does.
pub async fn set(
    State(state): State<AppState>,
    Query(which): Query<Which>,
    ApiJson(choices): ApiJson<Vec<LoraChoice>>,
) -> Result<Json<Value>, ApiError> {
    let model = model(&state, which).await?;
    let n = model.adapters.len();
    let mut wanted = vec![0.0f32; n];
    for c in &choices {
        if c.id >= n {
            return Err(ApiError::bad_request(format!(
                "lora id {} is not an adapter of this model, which has {n}",
                c.id
            )));
        }
        if !c.scale.is_finite() {
            return Err(ApiError::bad_request(format!(
                "lora scale {} for id {} is not a number",
                c.scale, c.id
            )));
        }
        wanted[c.id] = c.scale;
    }
    let Some(scales) = state.scheduler.lora_scales(&model.digest) else {
        return Err(ApiError::bad_request(format!(
            "model '{}' is not loaded: load it first (its adapters start at scale 1)",
            model.name.display_short()
        )));
    };
    *scales
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = wanted.clone();
    Ok(listing(&model, &wanted))
}
