//! `hearth ps`: the models a running server has loaded, in `ollama ps`'s
//! columns. Without a server nothing is loaded, and the table is empty.

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;
use serde_json::Value;

use super::client::Client;
use super::list::human_bytes;

/// Arguments of `hearth ps` (none).
#[derive(Debug, clap::Args)]
pub struct PsArgs {}

/// Prints the table.
pub fn run(_args: &PsArgs) -> anyhow::Result<()> {
    let models = match Client::detect() {
        Some(client) => client.get("/api/ps")?["models"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let out = table(&models, jiff::Timestamp::now());
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing to stdout")
}

/// NAME, ID, SIZE, PROCESSOR, CONTEXT, UNTIL.
fn table(models: &[Value], now: jiff::Timestamp) -> String {
    let rows: Vec<[String; 6]> = models
        .iter()
        .map(|m| {
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            let id: String = text("digest").chars().take(12).collect();
            let until = match text("expires_at").parse::<jiff::Timestamp>() {
                Ok(t) => until(t.duration_since(now).as_secs()),
                Err(_) => "unknown".to_owned(),
            };
            [
                text("name"),
                id,
                human_bytes(m["size"].as_u64().unwrap_or(0)),
                "100% CPU".to_owned(),
                m["context_length"].as_u64().unwrap_or(0).to_string(),
                until,
            ]
        })
        .collect();
    let header = ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"];
    let widths: Vec<usize> = (0..5)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        for (c, w) in widths.iter().enumerate() {
            let _ = write!(out, "{:<w$}    ", row[c]);
        }
        let _ = writeln!(out, "{}", row[5]);
    }
    out
}

/// When a model unloads, relative to now: `4 minutes from now`, `Stopping...`
/// once past, `Forever` for keep_alive < 0 (shown as a far-off time).
fn until(secs: i64) -> String {
    const YEAR: i64 = 365 * 86400;
    match secs {
        s if s > 50 * YEAR => "Forever".to_owned(),
        s if s <= 0 => "Stopping...".to_owned(),
        s if s < 60 => "Less than a minute from now".to_owned(),
        s if s < 3600 => plural(s / 60, "minute"),
        s if s < 86400 => plural(s / 3600, "hour"),
        s => plural(s / 86400, "day"),
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit} from now")
    } else {
        format!("{n} {unit}s from now")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_loaded_model() {
        let now: jiff::Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let models = [serde_json::json!({
            "name": "tiny:latest", "digest": "0123456789abcdef0123", "size": 3 << 20,
            "context_length": 256, "expires_at": "2025-01-01T00:04:30Z",
        })];
        let out = table(&models, now);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{out}");
        assert!(lines[1].starts_with("tiny:latest    0123456789ab"), "{out}");
        assert!(
            lines[1].contains("100% CPU") && lines[1].contains("256"),
            "{out}"
        );
        assert!(lines[1].ends_with("4 minutes from now"), "{out}");
        assert_eq!(table(&[], now).lines().count(), 1);
    }

    #[test]
    fn until_reads_like_ollama() {
        assert_eq!(until(30), "Less than a minute from now");
        assert_eq!(until(60), "1 minute from now");
        assert_eq!(until(7200), "2 hours from now");
        assert_eq!(until(-5), "Stopping...");
        assert_eq!(until(100 * 365 * 86400), "Forever");
    }
}
