//! The store commands and `run` through a running server's API (what
//! `ollama` does): each function is the server-side twin of a standalone
//! command, called by that command when [`Client::detect`] finds a server.

use std::io::{Read, Write};
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use store::{Digest, ModelEntry, ModelName, Modelfile};

use super::client::Client;

/// `hearth list`: the server's models as store entries.
pub fn list(client: &Client) -> anyhow::Result<Vec<ModelEntry>> {
    let tags = client.get("/api/tags")?;
    let mut entries = Vec::new();
    for m in tags["models"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let text = |k: &str| m[k].as_str().unwrap_or_default();
        let modified = text("modified_at")
            .parse::<jiff::Timestamp>()
            .map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
        entries.push(ModelEntry {
            name: ModelName::parse(text("name"))?,
            digest: Digest::parse(&format!("sha256:{}", text("digest")))?,
            size: m["size"].as_u64().unwrap_or(0),
            modified,
        });
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.modified));
    Ok(entries)
}

/// `hearth cp`.
pub fn copy(client: &Client, source: &str, destination: &str) -> anyhow::Result<()> {
    client.post(
        "/api/copy",
        &json!({"source": source, "destination": destination}),
    )?;
    Ok(())
}

/// `hearth rm` of one model.
pub fn delete(client: &Client, name: &str) -> anyhow::Result<()> {
    client.delete("/api/delete", &json!({ "model": name }))
}

/// One text field of `/api/show` (`modelfile`, `parameters`, `template`,
/// `system`, `license`).
pub fn show_field(client: &Client, name: &str, field: &str) -> anyhow::Result<String> {
    let show = client.post("/api/show", &json!({ "model": name }))?;
    Ok(show[field].as_str().unwrap_or_default().to_owned())
}

/// `ollama show`'s overview (Model, Parameters, System, License) from
/// `/api/show`, laid out as the standalone one; `indented` renders a text
/// section.
pub fn overview(
    client: &Client,
    name: &str,
    indented: fn(&str) -> String,
) -> anyhow::Result<String> {
    let show = client.post("/api/show", &json!({ "model": name }))?;
    let info = &show["model_info"];
    let arch = info["general.architecture"].as_str().unwrap_or_default();
    let scalar = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut out = String::from("  Model\n");
    let rows = [
        ("architecture", scalar(&info["general.architecture"])),
        ("parameters", scalar(&show["details"]["parameter_size"])),
        (
            "context length",
            scalar(&info[format!("{arch}.context_length")]),
        ),
        (
            "embedding length",
            scalar(&info[format!("{arch}.embedding_length")]),
        ),
        (
            "quantization",
            scalar(&show["details"]["quantization_level"]),
        ),
    ];
    for (label, value) in rows {
        out.push_str(&format!("    {label:<20}{value}\n"));
    }
    let parameters = text(&show["parameters"]);
    if !parameters.is_empty() {
        out.push_str("\n  Parameters\n");
        for line in parameters.lines() {
            let (name, value) = line.split_once(' ').unwrap_or((line, ""));
            out.push_str(&format!("    {name:<20}{}\n", value.trim()));
        }
    }
    let system = text(&show["system"]);
    if !system.is_empty() {
        out.push_str("\n  System\n");
        out.push_str(&indented(&system));
    }
    let license = text(&show["license"]);
    if !license.is_empty() {
        out.push_str("\n  License\n");
        out.push_str(&indented(&license));
    }
    Ok(out)
}

/// The SHA-256 of a file, read in chunks.
fn file_digest(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("sha256:{hex}"))
}

/// `hearth create`: uploads a FROM file as a blob (unless the server has it),
/// then sends the Modelfile as `/api/create`'s JSON, printing each status.
pub fn create(
    client: &Client,
    name: &str,
    modelfile: &Modelfile,
    base_dir: &Path,
) -> anyhow::Result<()> {
    let mut body = json!({ "model": name });
    let mut stderr = std::io::stderr().lock();
    // Resolved here as a standalone create would: a file goes up as a blob; a
    // directory or a missing path is the same error as without a server.
    match store::resolve_from(&modelfile.from, base_dir)? {
        store::Source::File(path) => {
            let _ = writeln!(stderr, "gathering model components");
            let digest = file_digest(&path)?;
            let _ = writeln!(stderr, "copying file {digest}");
            client.upload_blob(&digest, &path)?;
            let file_name = path
                .file_name()
                .map_or_else(|| "model.gguf".into(), |n| n.to_string_lossy());
            body["files"] = json!({ file_name: digest });
        }
        store::Source::Model(_) => body["from"] = json!(modelfile.from),
    }
    // Adapters go up as blobs too, named by their file names (Ollama's
    // client does the same).
    let mut adapters = serde_json::Map::new();
    for adapter in &modelfile.adapters {
        let path = store::resolve_adapter(adapter, base_dir)?;
        let digest =
            file_digest(&path).with_context(|| format!("ADAPTER {adapter}: {}", path.display()))?;
        let _ = writeln!(stderr, "copying file {digest}");
        client.upload_blob(&digest, &path)?;
        let file_name = path
            .file_name()
            .map_or_else(|| "adapter.gguf".into(), |n| n.to_string_lossy());
        adapters.insert(file_name.into_owned(), json!(digest.to_string()));
    }
    if !adapters.is_empty() {
        body["adapters"] = Value::Object(adapters);
    }
    if let Some(t) = &modelfile.template {
        body["template"] = json!(t);
    }
    if let Some(s) = &modelfile.system {
        body["system"] = json!(s);
    }
    if !modelfile.parameters.is_empty() {
        body["parameters"] = serde_json::from_slice(&modelfile.parameters.to_json())?;
    }
    if !modelfile.messages.is_empty() {
        body["messages"] = serde_json::to_value(&modelfile.messages)?;
    }
    if !modelfile.licenses.is_empty() {
        body["license"] = json!(modelfile.licenses);
    }
    if let Some(q) = &modelfile.quantize {
        body["quantize"] = json!(q);
    }
    let mut last = String::new();
    client.stream("/api/create", &body, &mut |line| {
        let status = line["status"].as_str().unwrap_or_default();
        if status != last {
            let _ = writeln!(stderr, "{status}");
            last = status.to_owned();
        }
        Ok(())
    })
}

/// `hearth pull` or `hearth push` through the server: streams `path`
/// (`/api/pull` or `/api/push`) and hands each progress object to `show`.
pub fn transfer(
    client: &Client,
    path: &str,
    name: &str,
    insecure: bool,
    show: &mut dyn FnMut(store::Progress),
) -> anyhow::Result<()> {
    let body = json!({ "model": name, "insecure": insecure, "stream": true });
    client.stream(path, &body, &mut |line| {
        show(store::Progress {
            status: line["status"].as_str().unwrap_or_default().to_owned(),
            digest: line["digest"].as_str().and_then(|d| Digest::parse(d).ok()),
            total: line["total"].as_u64(),
            completed: line["completed"].as_u64(),
        });
        Ok(())
    })
}
