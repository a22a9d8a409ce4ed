//! Shared output helpers: byte sizes, times, the statistics block and
//! error chains.

use cairn::snapshot::Summary;

/// `3239446764 (3.02 GB)` style, as duplicity prints sizes.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else if value >= 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

fn human_duration(secs: f64) -> String {
    let whole = secs as u64;
    let (h, m) = (whole / 3600, (whole % 3600) / 60);
    let s = secs - (h * 3600 + m * 60) as f64;
    match (h, m) {
        (0, 0) => format!("{s:.2} seconds"),
        (0, _) => format!("{m} minutes {s:.2} seconds"),
        _ => format!("{h} hours {m} minutes {s:.2} seconds"),
    }
}

fn stamp(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => format!(
            "{}.{:02} ({})",
            t.timestamp(),
            t.timestamp_subsec_millis() / 10,
            t.format("%a %b %e %H:%M:%S %Y")
        ),
        Err(_) => rfc3339.to_string(),
    }
}

/// The statistics block duplicity users know, with cairn's own lines for
/// what deduplication adds.
pub fn statistics_block(s: &Summary) -> String {
    let line = |name: &str, v: u64| format!("{name} {v} ({})\n", human_bytes(v));
    let mut out = String::new();
    out.push_str("--------------[ Backup Statistics ]--------------\n");
    out.push_str(&format!("StartTime {}\n", stamp(&s.start_time)));
    out.push_str(&format!("EndTime {}\n", stamp(&s.end_time)));
    out.push_str(&format!(
        "ElapsedTime {:.2} ({})\n",
        s.duration_secs,
        human_duration(s.duration_secs)
    ));
    out.push_str(&format!("SourceFiles {}\n", s.source_entries));
    out.push_str(&line("SourceFileSize", s.source_bytes));
    out.push_str(&format!("NewFiles {}\n", s.files_new));
    out.push_str(&line("NewFileSize", s.new_bytes));
    out.push_str(&format!("DeletedFiles {}\n", s.files_deleted));
    out.push_str(&line("DeletedFileSize", s.deleted_bytes));
    out.push_str(&format!("ChangedFiles {}\n", s.files_changed));
    out.push_str(&line("ChangedFileSize", s.changed_bytes));
    out.push_str(&format!("UnchangedFiles {}\n", s.files_unchanged));
    out.push_str(&format!(
        "Directories new {}, changed {}, unchanged {}, deleted {}\n",
        s.dirs_new, s.dirs_changed, s.dirs_unchanged, s.dirs_deleted
    ));
    out.push_str(&line("RawBytesRead", s.read_bytes));
    out.push_str(&format!("NewBlobs {}\n", s.blobs_added));
    out.push_str(&line("NewBlobPlainSize", s.added_plain_bytes));
    out.push_str(&line("TotalDestinationSizeChange", s.added_stored_bytes));
    out.push_str(&line("UploadedBytes", s.uploaded_bytes));
    out.push_str(&format!("Errors {}\n", s.errors));
    out.push_str("-------------------------------------------------\n");
    out
}

/// `cause: inner cause: ...`, skipping repeats.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Local time for tables.
pub fn local_time(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_duplicity() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(189_457), "185 KB");
        assert_eq!(human_bytes(3_239_446_764), "3.02 GB");
        assert_eq!(human_bytes(176_144_101), "168 MB");
    }
}
