//! `hearth list`: the models in the store, most recently modified first, in
//! `ollama list`'s columns.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use store::ModelEntry;

/// Arguments of `hearth list` (none).
#[derive(Debug, clap::Args)]
pub struct ListArgs {}

/// Prints the table.
pub fn run(_args: &ListArgs) -> anyhow::Result<()> {
    let entries = match super::client::Client::detect() {
        Some(client) => super::remote::list(&client)?,
        None => crate::builtin::open_store()?.list()?,
    };
    let out = table(&entries, SystemTime::now());
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing to stdout")
}

/// NAME, ID (12 hex digits of the manifest digest), SIZE, MODIFIED.
fn table(entries: &[ModelEntry], now: SystemTime) -> String {
    let rows: Vec<[String; 4]> = entries
        .iter()
        .map(|e| {
            let age = now.duration_since(e.modified).unwrap_or(Duration::ZERO);
            [
                e.name.display_short(),
                e.digest.hex()[..12].to_owned(),
                human_bytes(e.size),
                format!("{} ago", human_duration(age)),
            ]
        })
        .collect();
    let header = ["NAME", "ID", "SIZE", "MODIFIED"];
    let width = |col: usize| {
        rows.iter()
            .map(|r| r[col].len())
            .chain([header[col].len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    let mut out = String::new();
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let _ = writeln!(
            out,
            "{:<w0$}    {:<w1$}    {:<w2$}    {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
    }
    out
}

/// Bytes in decimal units as `ollama list` prints them (ollama format/bytes.go
/// `HumanBytes`): "4.7 GB", "274 MB", "12 KB", "512 B".
pub(super) fn human_bytes(n: u64) -> String {
    const UNITS: [(f64, &str); 4] = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")];
    for (scale, unit) in UNITS {
        let value = n as f64 / scale;
        if value >= 1.0 {
            return if value >= 10.0 || value == value.trunc() {
                format!("{} {unit}", value as u64)
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{n} B")
}

/// An age in words (ollama format/time.go `humanDuration`): "Less than a
/// second", "5 seconds", "About a minute", "3 hours", "2 weeks".
fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    match seconds {
        0 => return "Less than a second".to_owned(),
        1 => return "1 second".to_owned(),
        2..60 => return format!("{seconds} seconds"),
        _ => {}
    }
    let minutes = seconds / 60;
    match minutes {
        1 => return "About a minute".to_owned(),
        2..60 => return format!("{minutes} minutes"),
        _ => {}
    }
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    match hours {
        1 => "About an hour".to_owned(),
        2..48 => format!("{hours} hours"),
        48..336 => format!("{} days", hours / 24),
        336..1440 => format!("{} weeks", hours / 24 / 7),
        1440..17520 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{Digest, ModelName};

    #[test]
    fn bytes_like_ollama() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12_345), "12 KB");
        assert_eq!(human_bytes(2_000_000_000), "2 GB");
        assert_eq!(human_bytes(4_661_224_676), "4.7 GB");
        assert_eq!(human_bytes(274_302_450), "274 MB");
    }

    #[test]
    fn durations_like_ollama() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(45)), "45 seconds");
        assert_eq!(human_duration(s(90)), "About a minute");
        assert_eq!(human_duration(s(150)), "2 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
        assert_eq!(human_duration(s(21 * 86400)), "3 weeks");
        assert_eq!(human_duration(s(90 * 86400)), "3 months");
        assert_eq!(human_duration(s(800 * 86400)), "2 years");
    }

    #[test]
    fn table_columns() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let entry = ModelEntry {
            name: ModelName::parse("llama3.2").unwrap(),
            digest: Digest::of(b""),
            size: 2_019_393_189,
            modified: now - Duration::from_secs(120),
        };
        let out = table(&[entry], now);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "NAME               ID              SIZE      MODIFIED"
        );
        assert_eq!(
            lines[1],
            "llama3.2:latest    e3b0c44298fc    2.0 GB    2 minutes ago"
        );
    }
}
