//! The JSON body extractor of every API route: malformed JSON, wrong field
//! types and oversized bodies become [`ApiError`]s in the API's own shape, and
//! type errors name the field (`options.num_ctx`), not a Rust type.
//!
//! Like Ollama, the content type is not checked (`curl -d` sends
//! `application/x-www-form-urlencoded`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body, parsed with errors as [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = crate::body_limit(&req);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(limit)
            } else {
                ApiError::bad_request(format!("could not read the request body: {rejection}"))
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a request body, naming the field at fault in type errors.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("missing request body"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        describe(&path, &inner)
    })?;
    de.end().map_err(|e| describe(".", &e))?;
    Ok(value)
}

fn describe(path: &str, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request(format!("malformed JSON in the request body: {e}"))
        }
        Category::Data if path == "." || path.is_empty() => {
            ApiError::bad_request(format!("invalid request: {e}"))
        }
        Category::Data => ApiError::bad_request(format!("invalid value for field '{path}': {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Req {
        #[allow(dead_code)]
        model: String,
        #[serde(default)]
        #[allow(dead_code)]
        options: Option<Opts>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Opts {
        #[allow(dead_code)]
        num_ctx: Option<u32>,
    }

    #[test]
    fn errors_name_the_field_or_say_the_json_is_malformed() {
        let e = parse::<Req>(br#"{"model": "m", "options": {"num_ctx": "big"}}"#).unwrap_err();
        assert!(
            e.message
                .starts_with("invalid value for field 'options.num_ctx'"),
            "{}",
            e.message
        );
        let e = parse::<Req>(br#"{"model": 3}"#).unwrap_err();
        assert!(e.message.contains("'model'"), "{}", e.message);
        let e = parse::<Req>(br#"{"model": "m""#).unwrap_err();
        assert!(e.message.starts_with("malformed JSON"), "{}", e.message);
        let e = parse::<Req>(br#"{}"#).unwrap_err();
        assert!(e.message.contains("missing field `model`"), "{}", e.message);
        let e = parse::<Req>(b"  ").unwrap_err();
        assert_eq!(e.message, "missing request body");
        let e = parse::<Req>(br#"{"model": "m"} trailing"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(parse::<Req>(br#"{"model": "m", "extra": 1}"#).is_ok());
    }
}
