//! How much of a mapped file is resident: the measure behind releasing a
//! repacked tensor's pages (tests, diagnostics).

use std::path::Path;

/// Resident KiB of every mapping of the file at `path` in this process, from
/// `/proc/self/smaps` (Linux); `None` where that file cannot be read.
pub fn mapped_resident_kib(path: &Path) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut ours = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header line: range, perms, offset, dev, inode, path.
            ours = fields.nth(4).is_some_and(|p| Path::new(p) == path);
        } else if ours && first == "Rss:" {
            kib += fields.next()?.parse::<u64>().ok()?;
        }
    }
    Some(kib)
}
