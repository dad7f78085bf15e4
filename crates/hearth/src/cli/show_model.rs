//! `hearth show NAME`: a model of the store as `ollama show` presents it (the
//! weights' architecture, size and quantization, then the Modelfile's
//! parameters, system prompt and license), or one part of it with
//! `--modelfile`, `--parameters`, `--template`, `--system` or `--license`.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use gguf::{GgufFile, Metadata};
use store::{ModelName, ParamValue, Parameters, ResolvedModel};

use super::format;

/// The part of a model to print instead of the overview (at most one).
#[derive(Debug, Default, clap::Args)]
#[group(multiple = false)]
pub struct PartArgs {
    /// Print a Modelfile that rebuilds the model.
    #[arg(long)]
    modelfile: bool,
    /// Print the model's parameters.
    #[arg(long)]
    parameters: bool,
    /// Print the chat template (the Modelfile's TEMPLATE, else the file's).
    #[arg(long)]
    template: bool,
    /// Print the system prompt.
    #[arg(long)]
    system: bool,
    /// Print the license.
    #[arg(long)]
    license: bool,
}

impl PartArgs {
    /// Whether any part was asked for.
    pub fn any(&self) -> bool {
        self.modelfile || self.parameters || self.template || self.system || self.license
    }

    /// The part asked for, as `/api/show` names its field (`license` when none).
    fn name(&self) -> &'static str {
        if self.modelfile {
            "modelfile"
        } else if self.parameters {
            "parameters"
        } else if self.template {
            "template"
        } else if self.system {
            "system"
        } else {
            "license"
        }
    }
}

/// Resolves `name` in the store and prints it.
pub fn run(name: &str, part: &PartArgs) -> anyhow::Result<()> {
    if let Some(client) = super::client::Client::detect() {
        if part.any() {
            return show_part_remote(&client, name, part);
        }
        let out = super::remote::overview(&client, name, indented)?;
        return std::io::stdout()
            .lock()
            .write_all(out.as_bytes())
            .context("writing to stdout");
    }
    let out = if part.any() {
        part_text(name, part.name())?
    } else {
        let name = ModelName::parse(name)?;
        let model = crate::builtin::open_store()?.resolve(&name)?;
        overview(&model, &weights(&model)?)
    };
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing to stdout")
}

/// One text part of a model of the store: `modelfile`, `parameters`,
/// `template` (the Modelfile's TEMPLATE, else the file's), `system` or
/// `license`; empty when the model has none.
pub(super) fn part_text(name: &str, part: &str) -> anyhow::Result<String> {
    let name = ModelName::parse(name)?;
    let model = crate::builtin::open_store()?.resolve(&name)?;
    Ok(match part {
        "modelfile" => model.modelfile_text(),
        "parameters" => model.params.show_text(),
        "template" => {
            let template = match &model.template {
                Some(t) => Some(t.clone()),
                None => weights(&model)?
                    .metadata()
                    .opt_str("tokenizer.chat_template")
                    .ok()
                    .flatten()
                    .map(str::to_owned),
            };
            template.map(with_newline).unwrap_or_default()
        }
        "system" => model.system.clone().map(with_newline).unwrap_or_default(),
        "license" => model.licenses.iter().cloned().map(with_newline).collect(),
        other => {
            anyhow::bail!("no part '{other}' (modelfile, parameters, template, system, license)")
        }
    })
}

/// One part of a model, from a running server's `/api/show`.
fn show_part_remote(
    client: &super::client::Client,
    name: &str,
    part: &PartArgs,
) -> anyhow::Result<()> {
    let field = part.name();
    let text = super::remote::show_field(client, name, field)?;
    let out = if text.is_empty() {
        text
    } else {
        with_newline(text)
    };
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing to stdout")
}

/// The model's GGUF file, parsed.
fn weights(model: &ResolvedModel) -> anyhow::Result<GgufFile> {
    GgufFile::open(&model.gguf_path)
        .with_context(|| format!("reading the weights of {}", model.name.display_short()))
}

fn with_newline(mut s: String) -> String {
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// `ollama show`'s sections: Model, Parameters, System, License.
fn overview(model: &ResolvedModel, gguf: &GgufFile) -> String {
    let m = gguf.metadata();
    let arch = m.opt_str("general.architecture").ok().flatten();
    let n_params: u64 = gguf.tensors().iter().map(|t| t.n_elements()).sum();
    let key = |suffix: &str| arch.map(|a| scalar(m, &format!("{a}.{suffix}")));
    let mut out = String::from("  Model\n");
    let rows = [
        ("architecture", arch.map(str::to_owned)),
        ("parameters", Some(format::count(n_params))),
        ("context length", key("context_length")),
        ("embedding length", key("embedding_length")),
        ("quantization", Some(model.config.file_type.clone())),
    ];
    for (label, value) in rows {
        let value = value.unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(out, "    {label:<20}{value}");
    }
    if !model.params.is_empty() {
        out.push_str("\n  Parameters\n");
        out.push_str(&parameter_lines(&model.params, "    "));
    }
    if let Some(system) = &model.system {
        out.push_str("\n  System\n");
        out.push_str(&indented(system));
    }
    if !model.licenses.is_empty() {
        out.push_str("\n  License\n");
        for license in &model.licenses {
            out.push_str(&indented(license));
        }
    }
    out
}

/// A hyper-parameter, or "-" when absent.
fn scalar(m: &Metadata, key: &str) -> String {
    m.get(key).map_or_else(|| "-".to_owned(), format::value)
}

/// At most this many lines of a long text (a license) in the overview.
const MAX_TEXT_LINES: usize = 2;

/// The first lines of `text`, indented, with "..." when cut.
fn indented(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    for line in lines.by_ref().take(MAX_TEXT_LINES) {
        let _ = writeln!(out, "    {line}");
    }
    if lines.next().is_some() {
        out.push_str("    ...\n");
    }
    out
}

/// One line per value: `name  value`, strings quoted, a list's items each on
/// their own line.
fn parameter_lines(params: &Parameters, indent: &str) -> String {
    let mut out = String::new();
    for (name, value) in params.iter() {
        match value {
            ParamValue::Strings(items) => {
                for item in items {
                    let _ = writeln!(out, "{indent}{name:<20}{item:?}");
                }
            }
            scalar => {
                let _ = writeln!(out, "{indent}{name:<20}{scalar}");
            }
        }
    }
    out
}
