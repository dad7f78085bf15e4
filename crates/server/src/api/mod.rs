//! The HTTP APIs. Ollama's lives in [`ollama`] (inference) and [`models`]
//! (model management), sharing [`stream`] to render job events.

pub mod models;
pub mod ollama;
pub mod stream;
