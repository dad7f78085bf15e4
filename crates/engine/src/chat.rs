//! A conversation: history, system prompt and options, rendered through the
//! model's chat template each turn. The rendered prompt of a turn extends the
//! previous turn's, so [`Context::prefill`] only runs the new part. Answers
//! of models that think arrive split into thinking and content, and only the
//! content (with the thinking beside it) joins the history, as the templates
//! expect.

use std::ops::ControlFlow;
use std::sync::atomic::AtomicBool;

use model::chat::output::{Dialect, OutputParser, Piece};
use model::chat::{ChatRequest, ChatTemplate, Think};
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
    /// How the template's answers mark thinking (and calls).
    dialect: Dialect,
    /// Whether, and how hard, the model should think.
    think: Think,
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
        let dialect = Dialect::detect(source.unwrap_or(CHATML));
        let text = |id: Option<u32>| {
            id.and_then(|id| tokenizer.token_text(id))
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Self {
            ctx,
            tokenizer,
            template,
            dialect,
            think: Think::Default,
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
        self.dialect = Dialect::detect(source);
        self.fallback_template = false;
        Ok(())
    }

    /// Whether the model should think (the template's flags), from the next
    /// turn on.
    pub fn set_think(&mut self, think: Think) {
        self.think = think;
    }

    /// Whether the model's template marks thinking, so answers may hold some.
    pub fn thinks(&self) -> bool {
        self.dialect.thinks()
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
        let mut extra = model::chat::runtime_variables(model::chat::local_clock());
        self.think.insert_variables(&mut extra);
        let request = ChatRequest {
            messages,
            add_generation_prompt: true,
            bos_token: self.bos_text.clone(),
            eos_token: self.eos_text.clone(),
            extra,
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

    /// Sends a user message and streams the answer to `on_piece`: content,
    /// and thinking where the template marks it. The answer (or as much as
    /// was generated before a cancel) joins the history; on an error the user
    /// message is taken back. When the conversation no longer fits the
    /// context, the oldest messages are dropped first.
    pub fn send(
        &mut self,
        user: &str,
        cancel: Option<&AtomicBool>,
        on_piece: &mut dyn FnMut(Piece) -> ControlFlow<()>,
    ) -> Result<GenerateResult, EngineError> {
        self.messages.push(json!({"role": "user", "content": user}));
        let outcome = self.answer(cancel, on_piece);
        match &outcome {
            Ok((result, thinking_open)) => {
                let mut message = json!({"role": "assistant", "content": result.text});
                if self.dialect.thinks() {
                    let parsed = self.dialect.parse(&result.text, false, *thinking_open);
                    message["content"] = parsed.content.into();
                    if !parsed.thinking.is_empty() {
                        message["thinking"] = parsed.thinking.clone().into();
                        message["reasoning_content"] = parsed.thinking.into();
                    }
                }
                self.messages.push(message);
            }
            Err(_) => {
                self.messages.pop();
            }
        }
        outcome.map(|(result, _)| result)
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

    /// Generates the answer to the conversation; also whether the prompt
    /// left a thinking block open.
    fn answer(
        &mut self,
        cancel: Option<&AtomicBool>,
        on_piece: &mut dyn FnMut(Piece) -> ControlFlow<()>,
    ) -> Result<(GenerateResult, bool), EngineError> {
        let mut rendered = self.render()?;
        let mut prompt = self.tokenize(&rendered);
        while prompt.len() >= self.ctx.n_ctx() && self.messages.len() > 1 {
            // Drop the oldest exchange: the first message, and the answer to it.
            self.messages.remove(0);
            if self.messages.len() > 1 && self.messages[0]["role"] == "assistant" {
                self.messages.remove(0);
            }
            rendered = self.render()?;
            prompt = self.tokenize(&rendered);
        }
        let thinking_open = self.dialect.prompt_opens_thinking(&rendered);
        let mut options = self.options.clone();
        if self.fallback_template {
            options.stop.push(CHATML_END.to_owned());
        }
        let mut constraint = match (&self.constraint, &self.constraint_env) {
            (Some(c), Some(env)) => Some(env.compile(c)?),
            _ => None,
        };
        let mut parser = self
            .dialect
            .thinks()
            .then(|| OutputParser::new(self.dialect, false, thinking_open));
        let mut flow = ControlFlow::Continue(());
        let mut on_text = |text: &str| {
            match &mut parser {
                Some(p) => {
                    for piece in p.push(text) {
                        if flow.is_continue() {
                            flow = on_piece(piece);
                        }
                    }
                }
                None => flow = on_piece(Piece::Content(text.to_owned())),
            }
            flow
        };
        let result = generate_constrained(
            &mut self.ctx,
            self.tokenizer,
            &prompt,
            &options,
            constraint.as_mut(),
            cancel,
            &mut on_text,
        )?;
        if let Some(p) = parser
            && flow.is_continue()
        {
            for piece in p.finish() {
                if on_piece(piece).is_break() {
                    break;
                }
            }
        }
        Ok((result, thinking_open))
    }
}
