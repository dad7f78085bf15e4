//! Errors of compiling and rendering chat templates.

use std::fmt;

/// Why a chat template could not be compiled or rendered.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ChatError {
    /// The template source is not valid Jinja (nor a valid Go template).
    #[error("chat template syntax error: {0}")]
    Syntax(String),
    /// The template called `raise_exception(message)`: the request does not fit
    /// the model's conversation format (e.g. a system role the model lacks).
    #[error("chat template rejected the conversation: {0}")]
    Raised(String),
    /// Rendering failed for another reason (undefined attribute, type error,
    /// unsupported method, bad `strftime_now` format, a Go template's
    /// execution error or bound).
    #[error("chat template render error: {0}")]
    Render(String),
}

impl ChatError {
    /// Maps a minijinja error (whose text names the template line), recognising
    /// `raise_exception` by its source.
    pub(crate) fn from_render(err: minijinja::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = source {
            if let Some(raised) = e.downcast_ref::<RaisedException>() {
                return Self::Raised(raised.0.clone());
            }
            source = e.source();
        }
        if err.kind() == minijinja::ErrorKind::SyntaxError {
            Self::Syntax(err.to_string())
        } else {
            Self::Render(err.to_string())
        }
    }
}

/// The error `raise_exception(message)` returns, carried as the source of the
/// minijinja error so that the message survives unchanged.
#[derive(Debug)]
pub(crate) struct RaisedException(pub(crate) String);

impl fmt::Display for RaisedException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedException {}
