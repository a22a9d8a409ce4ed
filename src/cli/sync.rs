//! `cairn sync`: mirror this repository to another location, or back.

use cairn::sync;

use crate::cli::{env, exit, output, progress_bar::TerminalProgress, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// Copy this repository to LOCATION (e.g. mega:/Backups/host)
    #[arg(
        long,
        value_name = "LOCATION",
        conflicts_with = "from",
        required_unless_present = "from"
    )]
    pub to: Option<String>,
    /// Copy the repository at LOCATION into this one
    #[arg(long, value_name = "LOCATION")]
    pub from: Option<String>,
    /// Remove objects the source no longer has (after a prune)
    #[arg(long)]
    pub delete: bool,
    /// Print statistics as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &GlobalArgs, args: &SyncArgs) -> anyhow::Result<u8> {
    let here = env::backend(g)?;
    let (from, to) = match (&args.to, &args.from) {
        (Some(to), _) => (here, env::backend_at(g, to)?),
        (None, Some(from)) => (env::backend_at(g, from)?, here),
        (None, None) => {
            return Err(cairn::Error::InvalidArgument("give --to or --from".into()).into())
        }
    };
    let progress = TerminalProgress::new(g.quiet, None);
    let stats = sync::sync(from.as_ref(), to.as_ref(), args.delete, &progress);
    progress.finish();
    let stats = stats?;
    if args.json {
        output::print_json(&stats)?;
    } else if !g.quiet {
        println!(
            "{} -> {}: copied {} objects ({}), {} already present, deleted {}",
            from.location(),
            to.location(),
            stats.objects_copied,
            output::human_bytes(stats.bytes_copied),
            stats.objects_present,
            stats.objects_deleted
        );
    }
    Ok(exit::OK)
}
