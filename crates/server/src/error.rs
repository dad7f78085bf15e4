//! The one error type of the API: a status and a message, rendered in Ollama's
//! shape `{"error": "..."}`. Internal failures are logged with their detail
//! and reach the client only as a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use store::StoreError;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What the client is told.
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// 400: the request is malformed or asks for something invalid.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such model (or blob).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body too large: the limit is {limit} bytes"),
        )
    }

    /// 503: the server cannot take the request now (queue full, no memory).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500: logs `detail` and tells the client only that something failed.
    pub fn internal(context: &str, detail: &dyn std::fmt::Display) -> ApiError {
        tracing::error!("{context}: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error while {context}; see the server log"),
        )
    }

    /// The JSON body Ollama sends with an error.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.message })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(_) | StoreError::BlobNotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            StoreError::InvalidName(_)
            | StoreError::InvalidDigest(_)
            | StoreError::DigestMismatch { .. }
            | StoreError::InvalidModelfile { .. }
            | StoreError::Unsupported(_) => ApiError::bad_request(e.to_string()),
            StoreError::NotGguf { source, .. } => {
                ApiError::bad_request(format!("the model file is not GGUF: {source}"))
            }
            StoreError::Io { .. } | StoreError::CorruptManifest { .. } => {
                ApiError::internal("accessing the model store", &e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_statuses_without_leaking_paths() {
        let e: ApiError = StoreError::NotFound("nope".into()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "model 'nope' not found");
        let e: ApiError = StoreError::Io {
            path: "/secret/place".into(),
            source: std::io::Error::other("disk on fire"),
        }
        .into();
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("/secret"), "{}", e.message);
        assert_eq!(e.body()["error"], e.message.as_str());
    }
}
