//! `hearth show PATH.gguf [--verbose]`: what a model file is, at a glance, and
//! with `--verbose` every metadata entry and tensor (like gguf-py's gguf_dump).
//! `hearth show NAME` shows a model of the store instead (show_model.rs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use gguf::{GgufModel, Metadata, TensorType, Value};

use super::{format, show_model};

/// Arguments of `hearth show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// A model in the store (`llama3.2`, `me/model:v1`), or a GGUF file, or any
    /// shard of a split model (NAME-00001-of-0000N.gguf).
    model: String,
    /// Also list every metadata entry and every tensor (files only).
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    pub(super) part: show_model::PartArgs,
}

/// Shows a file if `model` names one (or looks like a path), else a model of
/// the store.
pub fn run(args: &ShowArgs) -> anyhow::Result<()> {
    let path = Path::new(&args.model);
    if !super::model_arg::is_file(path) {
        return show_model::run(&args.model, &args.part);
    }
    if args.part.any() {
        anyhow::bail!(
            "--modelfile, --parameters, --template, --system and --license apply to models in the store, not to files"
        );
    }
    let model = GgufModel::open(path).map_err(|e| match e {
        // I/O errors already name the file.
        gguf::Error::Io { .. } => anyhow::Error::new(e),
        e => anyhow::Error::new(e).context(args.model.clone()),
    })?;
    let mut out = summary(&model);
    if args.verbose {
        out.push('\n');
        out.push_str(&metadata_listing(model.metadata()));
        out.push('\n');
        out.push_str(&tensor_listing(&model));
    }
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing to stdout")
}

/// The one-screen summary.
fn summary(model: &GgufModel) -> String {
    let m = model.metadata();
    let arch = m.opt_str("general.architecture").ok().flatten();
    let arch_key = |suffix: &str| format!("{}.{suffix}", arch.unwrap_or("?"));
    let n_params: u64 = model.tensors().map(|(_, t)| t.n_elements()).sum();

    let mut rows: Vec<(&str, String)> = Vec::new();
    rows.push((
        "architecture",
        arch.unwrap_or("unknown (no general.architecture)")
            .to_owned(),
    ));
    if let Ok(Some(name)) = m.opt_str("general.name") {
        rows.push(("name", name.to_owned()));
    }
    rows.push(("parameters", format::count(n_params)));
    rows.push(("file type", file_type(model, n_params)));
    rows.push(("context length", scalar(m, &arch_key("context_length"))));
    rows.push(("embedding length", scalar(m, &arch_key("embedding_length"))));
    rows.push(("layers", scalar(m, &arch_key("block_count"))));
    rows.push(("heads", per_layer(m, &arch_key("attention.head_count"))));
    rows.push((
        "kv heads",
        per_layer(m, &arch_key("attention.head_count_kv")),
    ));
    rows.push(("tokenizer", tokenizer(m)));
    let template = match m.get("tokenizer.chat_template") {
        Some(Value::String(t)) => format!("yes ({} bytes)", t.len()),
        Some(v) => format!("invalid ({})", v.type_name()),
        None => "no".to_owned(),
    };
    rows.push(("chat template", template));
    rows.push(("tensors", model.n_tensors().to_string()));
    let files = model.files();
    let version = files[0].version();
    let size = format::bytes(model.file_size());
    let file = match files.len() {
        1 => format!("{size}, GGUF v{version}"),
        n => format!("{size} in {n} shards, GGUF v{version}"),
    };
    rows.push(("file size", file));

    let mut out = String::new();
    for (label, value) in rows {
        let _ = writeln!(out, "  {label:<18}{value}");
    }
    out
}

/// `general.file_type` by llama.cpp's name, and the type holding most parameters.
fn file_type(model: &GgufModel, n_params: u64) -> String {
    let named = match model.metadata().opt_u32("general.file_type") {
        Ok(Some(id)) => match format::file_type_name(id) {
            Some(name) => name.to_owned(),
            None => format!("unknown file type {id}"),
        },
        Ok(None) => "not recorded".to_owned(),
        Err(e) => e.to_string(),
    };
    let mut by_type: BTreeMap<TensorType, u64> = BTreeMap::new();
    for (_, t) in model.tensors() {
        *by_type.entry(t.ty).or_default() += t.n_elements();
    }
    match by_type.into_iter().max_by_key(|&(_, n)| n) {
        Some((ty, n)) if n_params > 0 => {
            let share = 100.0 * n as f64 / n_params as f64;
            format!("{named} (mostly {ty}: {share:.0}% of parameters)")
        }
        _ => named,
    }
}

/// An integer hyper-parameter, or "-" when absent.
fn scalar(m: &Metadata, key: &str) -> String {
    match m.get(key) {
        None => "-".to_owned(),
        Some(v) => format::value(v),
    }
}

/// A count that may be one number or an array with one per layer.
fn per_layer(m: &Metadata, key: &str) -> String {
    let Some(Value::Array(a)) = m.get(key) else {
        return scalar(m, key);
    };
    let values: Option<Vec<i128>> = (0..a.len()).map(|i| a.integer_at(i)).collect();
    match values.as_deref() {
        Some([first, rest @ ..]) if rest.iter().all(|v| v == first) => first.to_string(),
        Some(values @ [_, ..]) => {
            let (min, max) = (
                values.iter().min().unwrap_or(&0),
                values.iter().max().unwrap_or(&0),
            );
            format!("{min}-{max} per layer ({} layers)", values.len())
        }
        _ => format::value(&Value::Array(a.clone())),
    }
}

/// `tokenizer.ggml.model` and the vocabulary size.
fn tokenizer(m: &Metadata) -> String {
    let kind = match m.get("tokenizer.ggml.model") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => format!("invalid ({})", v.type_name()),
        None => return "none".to_owned(),
    };
    match m.get_array("tokenizer.ggml.tokens") {
        Ok(tokens) => format!("{kind}, {} tokens", tokens.len()),
        Err(_) => format!("{kind}, no token list"),
    }
}

/// Every metadata entry: key, type, value.
fn metadata_listing(m: &Metadata) -> String {
    let key_width = m.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let types: Vec<String> = m.iter().map(|(_, v)| v.type_name()).collect();
    let type_width = types.iter().map(String::len).max().unwrap_or(0);
    let mut out = format!("metadata ({} entries)\n", m.len());
    for ((key, value), ty) in m.iter().zip(&types) {
        let _ = writeln!(
            out,
            "  {key:<key_width$}  {ty:<type_width$}  {}",
            format::value(value)
        );
    }
    out
}

/// Every tensor: index, name, type, shape (`ne[0]` first), byte offset within its
/// file's data section, and the shard for split models.
fn tensor_listing(model: &GgufModel) -> String {
    let split = model.files().len() > 1;
    let name_width = model
        .tensors()
        .map(|(_, t)| t.name.len())
        .max()
        .unwrap_or(0);
    let mut out = format!("tensors ({})\n", model.n_tensors());
    let shard_header = if split { "shard  " } else { "" };
    let _ = writeln!(
        out,
        "  {:>5}  {shard_header}{:<name_width$}  {:<7}  {:<22}  offset",
        "#", "name", "type", "shape"
    );
    for (i, (shard, t)) in model.tensors().enumerate() {
        let shape: Vec<String> = t.dims.iter().map(u64::to_string).collect();
        let shape = format!("[{}]", shape.join(", "));
        let shard = if split {
            format!("{:<5}  ", shard + 1)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  {i:>5}  {shard}{:<name_width$}  {:<7}  {shape:<22}  {}",
            t.name,
            t.ty.name(),
            t.offset
        );
    }
    out
}
