//! A conversation: history, system prompt and options, rendered through the
//! model's chat template each turn. The rendered prompt of a turn extends the
//! previous turn's, so [`Context::prefill`] only runs the new part.

use std::ops::ControlFlow;
use std::sync::atomic::AtomicBool;

use model::chat::{ChatRequest, ChatTemplate};
use model::tokenizer::Tokenizer;
use serde_json::json;

use crate::EngineError;
use crate::backend::Backend;
use crate::constraint::{Constraint, ConstraintEnv};
use crate::generate::{Context, GenerateResult, generate_constrained};
use crate::options::Options;

/// The GGUF key holding the model's Jinja chat template.
const TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// The template used when a model has none: ChatML, as llama.cpp falls back to
/// (src/llama-chat.cpp, `LLM_CHAT_TEMPLATE_CHATML`).
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + \
                      message['content'] + '<|im_end|>' + '\n'}}{% endfor %}\
                      {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
/// ChatML's end of turn, a stop sequence when the fallback is in use (the
/// model's vocabulary may not know it as an end-of-generation token).
const CHATML_END: &str = "<|im_end|>";

/// One conversation with one model.
pub struct ChatSession<'t, B> {
    ctx: Context<B>,
    tokenizer: &'t Tokenizer,
    template: ChatTemplate,
    /// Whether `template` is the ChatML fallback.
    fallback_template: bool,
    bos_text: String,
    eos_text: String,
    system: Option<String>,
    messages: Vec<serde_json::Value>,
    /// The grammar every answer follows (`hearth run --format`), and the
    /// vocabulary's trie it is compiled against, built when first needed.
    constraint: Option<Constraint>,
    constraint_env: Option<ConstraintEnv>,
    /// Options for the next turns.
    pub options: Options,
}

impl<B> std::fmt::Debug for ChatSession<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSession")
            .field("system", &self.system)
            .field("messages", &self.messages)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<'t, B: Backend> ChatSession<'t, B> {
    /// A session over `ctx` using the template in `metadata` (ChatML if there is
    /// none).
    pub fn new(
        ctx: Context<B>,
        tokenizer: &'t Tokenizer,
        metadata: &gguf::Metadata,
        options: Options,
    ) -> Result<Self, EngineError> {
        let source = metadata.opt_str(TEMPLATE_KEY).ok().flatten();
        let template = ChatTemplate::new(source.unwrap_or(CHATML))?;
        let text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.token_text(id))
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Self {
            ctx,
            tokenizer,
            template,
            fallback_template: source.is_none(),
            bos_text: text(tokenizer.bos()),
            eos_text: text(tokenizer.eos()),
            system: None,
            messages: Vec::new(),
            constraint: None,
            constraint_env: None,
            options,
        })
    }

    /// Replaces the model's chat template with `source` (a Modelfile's
    /// TEMPLATE, Go or Jinja).
    pub fn set_template(&mut self, source: &str) -> Result<(), EngineError> {
        self.template = ChatTemplate::new(source)?;
        self.fallback_template = false;
        Ok(())
    }

    /// Sets (or with `None` removes) the system prompt.
    pub fn set_system(&mut self, system: Option<String>) {
        self.system = system;
    }

    /// The system prompt.
    pub fn system(&self) -> Option<&str> {
        self.system.as_deref()
    }

    /// The conversation so far (without the system prompt), oldest first.
    pub fn messages(&self) -> &[serde_json::Value] {
        &self.messages
    }

    /// Replaces the conversation (without the system prompt), e.g. to go on
    /// with it on a reloaded model.
    pub fn set_messages(&mut self, messages: Vec<serde_json::Value>) {
        self.messages = messages;
    }

    /// Forgets the conversation; the system prompt and options stay.
    pub fn clear(&mut self) {
        self.messages.clear();
    }

    /// The cached context.
    pub fn context(&self) -> &Context<B> {
        &self.ctx
    }

    /// Swaps in a new backend sequence (e.g. after `num_ctx` changed); the
    /// conversation is kept and re-run on the next turn.
    pub fn replace_backend(&mut self, backend: B) {
        self.ctx = Context::new(backend);
    }

    /// The prompt for the conversation as it stands, ending with an open
    /// assistant turn.
    pub fn render(&self) -> Result<String, EngineError> {
        let mut messages = Vec::with_capacity(self.messages.len() + 1);
        if let Some(system) = &self.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.extend(self.messages.iter().cloned());
        let request = ChatRequest {
            messages,
            add_generation_prompt: true,
            bos_token: self.bos_text.clone(),
            eos_token: self.eos_text.clone(),
            extra: model::chat::runtime_variables(model::chat::local_clock()),
            ..ChatRequest::default()
        };
        Ok(self.template.render(&request)?)
    }

    /// Tokenizes a rendered prompt: special tokens parsed, BOS added when the
    /// model wants one, and not doubled when the template already wrote it.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut tokens = self.tokenizer.encode(text, true, true);
        if let Some(bos) = self.tokenizer.bos()
            && tokens.len() >= 2
            && tokens[0] == bos
            && tokens[1] == bos
        {
            tokens.remove(0);
        }
        tokens
    }

    /// Sends a user message and streams the answer to `on_text`. The answer (or
    /// as much as was generated before a cancel) joins the history; on an error
    /// the user message is taken back. When the conversation no longer fits the
    /// context, the oldest messages are dropped first.
    pub fn send(
        &mut self,
        user: &str,
        cancel: Option<&AtomicBool>,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<GenerateResult, EngineError> {
        self.messages.push(json!({"role": "user", "content": user}));
        let outcome = self.answer(cancel, on_text);
        match &outcome {
            Ok(result) => self
                .messages
                .push(json!({"role": "assistant", "content": result.text})),
            Err(_) => {
                self.messages.pop();
            }
        }
        outcome
    }

    /// Holds every answer to `constraint` (`None`: free text). The grammar is
    /// checked now, so a bad schema is an error here, not at the next turn.
    pub fn set_constraint(&mut self, constraint: Option<Constraint>) -> Result<(), EngineError> {
        if let Some(c) = &constraint {
            if self.constraint_env.is_none() {
                self.constraint_env = Some(ConstraintEnv::new(self.tokenizer)?);
            }
            self.constraint_env.as_ref().expect("built").compile(c)?;
        }
        self.constraint = constraint;
        Ok(())
    }

    fn answer(
        &mut self,
        cancel: Option<&AtomicBool>,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<GenerateResult, EngineError> {
        let mut prompt = self.tokenize(&self.render()?);
        while prompt.len() >= self.ctx.n_ctx() && self.messages.len() > 1 {
            // Drop the oldest exchange: the first message, and the answer to it.
            self.messages.remove(0);
            if self.messages.len() > 1 && self.messages[0]["role"] == "assistant" {
                self.messages.remove(0);
            }
            prompt = self.tokenize(&self.render()?);
        }
        let mut options = self.options.clone();
        if self.fallback_template {
            options.stop.push(CHATML_END.to_owned());
        }
        let mut constraint = match (&self.constraint, &self.constraint_env) {
            (Some(c), Some(env)) => Some(env.compile(c)?),
            _ => None,
        };
        generate_constrained(
            &mut self.ctx,
            self.tokenizer,
            &prompt,
            &options,
            constraint.as_mut(),
            cancel,
            on_text,
        )
    }
}
