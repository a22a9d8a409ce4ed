//! `cairn restore`: write a snapshot (or part of it) into a directory.

use std::path::PathBuf;

use cairn::restorer::{self, RestoreOptions};
use cairn::walker::filter::{Filter, FilterRule};

use crate::cli::{env, exit, progress_bar::TerminalProgress, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// SNAPSHOT or SNAPSHOT:PATH (a path inside the snapshot)
    pub snapshot: String,
    /// Directory to restore into (created if missing)
    #[arg(short, long)]
    pub target: PathBuf,
    /// Restore only paths matching this pattern (snapshot paths; repeatable)
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Do not restore paths matching this pattern (repeatable)
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Restore into a non-empty target, replacing files of the same name
    #[arg(long)]
    pub overwrite: bool,
}

/// Excludes first (so an exclude always wins), then includes; when any
/// include is given, everything else is excluded.
fn restore_filter(args: &RestoreArgs) -> anyhow::Result<Option<Filter>> {
    if args.include.is_empty() && args.exclude.is_empty() {
        return Ok(None);
    }
    let mut rules: Vec<FilterRule> = args
        .exclude
        .iter()
        .cloned()
        .map(FilterRule::Exclude)
        .collect();
    rules.extend(args.include.iter().cloned().map(FilterRule::Include));
    if !args.include.is_empty() {
        rules.push(FilterRule::Exclude("**".to_string()));
    }
    Ok(Some(Filter::new(&rules).map_err(|e| {
        cairn::Error::InvalidArgument(e.to_string())
    })?))
}

pub fn run(g: &GlobalArgs, args: &RestoreArgs) -> anyhow::Result<u8> {
    let (spec, subpath) = match args.snapshot.split_once(':') {
        Some((s, p)) => (s.to_string(), Some(p.to_string())),
        None => (args.snapshot.clone(), None),
    };
    let filter = restore_filter(args)?;
    let repo = env::open(g)?;
    let (id, snap) = repo.resolve_snapshot(&spec)?;
    let total = snap.summary.as_ref().map(|s| s.source_bytes);
    let progress = TerminalProgress::new(g.quiet, total);
    let options = RestoreOptions {
        target: args.target.clone(),
        subpath,
        filter,
        overwrite: args.overwrite,
    };
    let stats = restorer::restore(&repo, &snap, &options, &progress);
    progress.finish();
    let stats = stats?;
    for e in &stats.errors {
        eprintln!("error: {}: {}", e.path.display(), e.message);
    }
    if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} directories, {} other, {} bytes",
            id.short(),
            args.target.display(),
            stats.files,
            stats.dirs,
            stats.other,
            stats.bytes
        );
    }
    if stats.errors.is_empty() {
        Ok(exit::OK)
    } else {
        eprintln!("cairn: restore finished with {} errors", stats.errors.len());
        Ok(exit::ERROR)
    }
}
