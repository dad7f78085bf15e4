//! The one error type of the API: a status and a message, rendered in Ollama's
//! shape `{"error": "..."}`, or through [`OpenAiError`] in OpenAI's shape
//! `{"error": {"message", "type", "param", "code"}}`. Internal failures are
//! logged with their detail and reach the client only as a generic message.

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

/// The longest message sent to a client: values a message quotes come from
/// the request, and a 10 MB model name must not come back as a 10 MB reply.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `text` cut to at most [`MAX_MESSAGE_BYTES`] / 4 bytes (on a character
/// boundary), with a note of how long it was: for quoting request values in
/// messages.
pub fn truncated(text: &str) -> String {
    cut(text, MAX_MESSAGE_BYTES / 4)
}

/// `text` cut to at most `max` bytes plus a note of its length.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

impl ApiError {
    /// An error with `status` and `message` (cut to [`MAX_MESSAGE_BYTES`]).
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: cut(&message.into(), MAX_MESSAGE_BYTES),
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

/// An [`ApiError`] as the OpenAI API (`/v1/*`) renders it, with the request
/// field at fault (`param`) and a machine-readable `code` where one applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct OpenAiError {
    /// The status and message.
    pub error: ApiError,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    /// OpenAI's code for the error (`model_not_found`), if it has one.
    pub code: Option<&'static str>,
}

impl OpenAiError {
    /// 400 about the field `param`.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> OpenAiError {
        OpenAiError {
            error: ApiError::bad_request(message),
            param: Some(param.to_owned()),
            code: None,
        }
    }

    /// 404 for a model that is not in the store, worded as OpenAI words it.
    pub fn model_not_found(model: &str) -> OpenAiError {
        OpenAiError {
            error: ApiError::not_found(format!("The model `{model}` does not exist")),
            param: Some("model".to_owned()),
            code: Some("model_not_found"),
        }
    }

    /// OpenAI's error `type` for the status.
    pub fn kind(&self) -> &'static str {
        match self.error.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            500.. => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// The JSON body OpenAI sends with an error.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.error.message,
                "type": self.kind(),
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

/// `error` rendered in the shape of the API `path` belongs to: OpenAI's
/// under `/v1/`, Ollama's elsewhere (for middleware, which answers before a
/// handler of either API).
pub(crate) fn response_for(path: &str, error: ApiError) -> Response {
    if path.starts_with("/v1/messages") {
        AnthropicError(error).into_response()
    } else if path.starts_with("/v1/") {
        OpenAiError::from(error).into_response()
    } else {
        error.into_response()
    }
}

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> OpenAiError {
        OpenAiError {
            error,
            param: None,
            code: None,
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (self.error.status, Json(self.body())).into_response()
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
            | StoreError::Quantize(_)
            | StoreError::Unsupported(_) => ApiError::bad_request(e.to_string()),
            StoreError::InvalidTemplate(_) => ApiError::bad_request(e.to_string()),
            StoreError::ReadOnly(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "the model store is read-only: models can be listed and run, not changed",
            ),
            StoreError::Unreachable { .. } | StoreError::Remote(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, e.to_string())
            }
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

    #[test]
    fn openai_errors_have_openai_shape() {
        let e = OpenAiError::model_not_found("ghost:latest");
        assert_eq!(e.error.status, StatusCode::NOT_FOUND);
        assert_eq!(
            e.body(),
            serde_json::json!({"error": {
                "message": "The model `ghost:latest` does not exist",
                "type": "not_found_error",
                "param": "model",
                "code": "model_not_found",
            }})
        );
        let e = OpenAiError::from(ApiError::too_large(10));
        assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        assert!(e.body()["error"]["param"].is_null());
        let e = OpenAiError::from(ApiError::unavailable("busy"));
        assert_eq!(e.body()["error"]["type"], "server_error");
    }
}

/// An [`ApiError`] as Anthropic's Messages API (`/v1/messages`) renders it:
/// `{"type": "error", "error": {"type", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AnthropicError(pub ApiError);

impl AnthropicError {
    /// Anthropic's error `type` for the status.
    pub fn kind(&self) -> &'static str {
        match self.0.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            500.. => "api_error",
            _ => "invalid_request_error",
        }
    }

    /// The JSON body Anthropic sends with an error.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "error",
            "error": {"type": self.kind(), "message": self.0.message},
        })
    }
}

impl From<ApiError> for AnthropicError {
    fn from(error: ApiError) -> AnthropicError {
        AnthropicError(error)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        (self.0.status, Json(self.body())).into_response()
    }
}
