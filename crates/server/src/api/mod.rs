//! The HTTP APIs. Ollama's lives in [`ollama`] (inference) and [`models`]
//! (model management), sharing [`stream`] to render job events; OpenAI's in
//! [`openai`] (with OpenAI's Responses API), Anthropic's Messages API in
//! [`anthropic`], over the same internal request and events; [`tools`]
//! holds the tool and thinking fields they share.

pub mod anthropic;
pub mod format;
pub mod lora;
pub mod models;
pub mod ollama;
pub mod openai;
pub mod progress;
pub mod pull;
pub mod registry;
pub mod stream;
pub mod tools;
