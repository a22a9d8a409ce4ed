//! `cairn snapshot`: back up paths into a new snapshot.

use std::path::PathBuf;

use anyhow::{bail, Context};
use cairn::archiver::{self, SnapshotOptions};
use cairn::compress::Compression;
use cairn::repository::saver::SaverOptions;
use cairn::walker::filter::{Filter, FilterRule};
use cairn::walker::{self, Selection};

use crate::cli::{env, exit, output, progress_bar::TerminalProgress, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct SnapshotArgs {
    /// Files and directories to back up
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Include paths matching this shell pattern (duplicity semantics; rules
    /// are tried in the order given and the first match decides)
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Exclude paths matching this shell pattern
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read include patterns from a file (lines may start with "+ " or "- ")
    #[arg(long, value_name = "FILE")]
    pub include_filelist: Vec<PathBuf>,
    /// Read exclude patterns from a file
    #[arg(long, value_name = "FILE")]
    pub exclude_filelist: Vec<PathBuf>,
    /// Exclude paths matching this regular expression
    #[arg(long, value_name = "REGEX")]
    pub exclude_regexp: Vec<String>,
    /// Include paths matching this regular expression
    #[arg(long, value_name = "REGEX")]
    pub include_regexp: Vec<String>,
    /// Exclude directories that contain a file of this name
    #[arg(long, value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Exclude directories holding a valid CACHEDIR.TAG
    #[arg(long)]
    pub exclude_caches: bool,
    /// Stay on the file systems of the given paths
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Skip files larger than SIZE (e.g. 500M, 2G)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub exclude_larger_than: Option<u64>,
    /// Host name to record [default: this machine's]
    #[arg(long)]
    pub host: Option<String>,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Record this time instead of now ("YYYY-MM-DD HH:MM:SS", local time)
    #[arg(long)]
    pub time: Option<String>,
    /// Compare against this snapshot instead of the latest one of the same
    /// host and paths
    #[arg(long)]
    pub parent: Option<String>,
    /// Read every file, ignoring the parent snapshot
    #[arg(long)]
    pub force: bool,
    /// Compression: off, auto or a zstd level 1-22
    #[arg(long, default_value = "auto")]
    pub compression: Compression,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// Builds the filter and applies duplicity's sanity checks: every glob must
/// be able to match something below a source path, and a list that ends
/// in an include is refused (it would include everything anyway).
fn checked_filter(rules: &[FilterRule], paths: &[PathBuf]) -> anyhow::Result<Filter> {
    use std::os::unix::ffi::OsStrExt;
    let usage =
        |e: cairn::walker::filter::FilterError| cairn::Error::InvalidArgument(e.to_string());
    let filter = Filter::new(rules).map_err(usage)?;
    let roots: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| std::path::absolute(p).ok())
        .collect();
    let roots: Vec<&[u8]> = roots.iter().map(|p| p.as_os_str().as_bytes()).collect();
    filter.check_roots(&roots).map_err(usage)?;
    filter.check_last_rule_excludes().map_err(usage)?;
    Ok(filter)
}

/// Parses `123`, `10k`, `500M`, `2G`, `1T` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_lowercase() {
                'b' => 1,
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                _ => return Err(format!("invalid size {text:?}: unknown unit {c:?}")),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size {text:?}"))?;
    if value.is_nan() || value < 0.0 {
        return Err(format!("invalid size {text:?}"));
    }
    Ok((value * mult as f64) as u64)
}

/// A rule kind's constructor, from a pattern or a filelist's text.
type MakeRule = fn(String) -> FilterRule;

/// The filter rules in the order they were given on the command line, which
/// is what decides under duplicity's first-match semantics.
fn ordered_rules(
    args: &SnapshotArgs,
    matches: &clap::ArgMatches,
) -> anyhow::Result<(Vec<FilterRule>, Vec<String>)> {
    let mut indexed: Vec<(usize, FilterRule, String)> = Vec::new();
    let indices = |id: &str| -> Vec<usize> {
        matches
            .indices_of(id)
            .map(|i| i.collect())
            .unwrap_or_default()
    };
    let patterns: [(&str, &[String], MakeRule); 4] = [
        ("include", &args.include, FilterRule::Include),
        ("exclude", &args.exclude, FilterRule::Exclude),
        (
            "include_regexp",
            &args.include_regexp,
            FilterRule::IncludeRegexp,
        ),
        (
            "exclude_regexp",
            &args.exclude_regexp,
            FilterRule::ExcludeRegexp,
        ),
    ];
    for (id, values, rule) in patterns {
        let flag = id.replace('_', "-");
        for (i, p) in indices(id).into_iter().zip(values) {
            indexed.push((i, rule(p.clone()), format!("--{flag}={p}")));
        }
    }
    let filelists: [(&str, &[PathBuf], MakeRule); 2] = [
        (
            "include_filelist",
            &args.include_filelist,
            FilterRule::IncludeFilelist,
        ),
        (
            "exclude_filelist",
            &args.exclude_filelist,
            FilterRule::ExcludeFilelist,
        ),
    ];
    for (id, files, rule) in filelists {
        let flag = id.replace('_', "-");
        for (i, f) in indices(id).into_iter().zip(files) {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading {} {}", id.replace('_', " "), f.display()))?;
            indexed.push((i, rule(text), format!("--{flag}={}", f.display())));
        }
    }
    indexed.sort_by_key(|(i, _, _)| *i);
    Ok(indexed
        .into_iter()
        .map(|(_, rule, text)| (rule, text))
        .unzip())
}

fn parse_time(text: &str) -> anyhow::Result<chrono::DateTime<chrono::FixedOffset>> {
    use chrono::TimeZone;
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t);
    }
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .with_context(|| format!("invalid --time {text:?}: use \"YYYY-MM-DD HH:MM:SS\""))?;
    match chrono::Local.from_local_datetime(&naive).earliest() {
        Some(t) => Ok(t.fixed_offset()),
        None => bail!("--time {text:?} does not exist in the local time zone"),
    }
}

pub fn run(g: &GlobalArgs, args: &SnapshotArgs, matches: &clap::ArgMatches) -> anyhow::Result<u8> {
    let (rules, excludes) = ordered_rules(args, matches)?;
    let filter = if rules.is_empty() {
        None
    } else {
        Some(checked_filter(&rules, &args.paths)?)
    };
    let time = args.time.as_deref().map(parse_time).transpose()?;
    let selection = Selection {
        filter,
        exclude_if_present: args.exclude_if_present.clone(),
        exclude_caches: args.exclude_caches,
        one_file_system: args.one_file_system,
        exclude_larger_than: args.exclude_larger_than,
    };
    // Reads the first directories' inodes while the key is derived.
    let prefetch = archiver::warm_up(&args.paths, &selection);
    let repo = env::open(g)?;
    let parent = if args.force {
        Some(None)
    } else {
        match &args.parent {
            Some(spec) => Some(Some(repo.resolve_snapshot(spec)?.0)),
            None => None,
        }
    };
    let options = SnapshotOptions {
        paths: args.paths.clone(),
        selection,
        excludes,
        hostname: args.host.clone().unwrap_or_else(env::hostname),
        username: env::username(),
        tags: args.tags.clone(),
        time,
        parent,
        saver: SaverOptions {
            compression: args.compression,
            ..SaverOptions::default()
        },
        cut_scouts: None,
        prefetch: Some(prefetch),
    };
    let progress = TerminalProgress::new(g.quiet, None);
    let outcome = std::thread::scope(|scope| {
        if progress.is_visible() {
            // Size the job in the background, for an ETA; it only reads metadata.
            let (progress, options) = (&progress, &options);
            scope.spawn(move || {
                progress.set_total(walker::selected_file_bytes(
                    &options.paths,
                    &options.selection,
                ))
            });
        }
        archiver::snapshot(&repo, &options, &progress)
    });
    progress.finish();
    let outcome = outcome?;
    let summary = outcome.snapshot.summary.clone().unwrap_or_default();
    if args.json {
        output::print_json(&serde_json::json!({
            "snapshot_id": outcome.id.to_hex(),
            "short_id": outcome.id.short(),
            "parent": outcome.snapshot.parent,
            "summary": summary,
            "errors": outcome.errors.iter().map(|e| serde_json::json!({
                "path": e.path.display().to_string(), "message": e.message,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        print!("{}", output::statistics_block(&summary));
        println!("snapshot {} saved", outcome.id.short());
    }
    if outcome.errors.is_empty() {
        Ok(exit::OK)
    } else {
        eprintln!(
            "cairn: snapshot {} saved, but {} entries could not be read",
            outcome.id.short(),
            outcome.errors.len()
        );
        Ok(exit::PARTIAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("10k").unwrap(), 10240);
        assert_eq!(parse_size("1.5M").unwrap(), 1_572_864);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert!(parse_size("x").is_err());
        assert!(parse_size("5Q").is_err());
    }
}
