//! `cairn prune`: reclaim the space of unreferenced data.

use cairn::prune::{self, PruneOptions, PruneStats};

use crate::cli::{env, exit, output, GlobalArgs};

/// How prune reclaims space; shared by `prune` and `forget --prune`.
#[derive(clap::Args, Debug, Clone)]
pub struct PruneFlags {
    /// Share of the repository that may stay unused, in percent
    #[arg(long, default_value_t = 5.0, value_name = "PERCENT")]
    pub max_unused: f64,
    /// Hours an obsolete pack is kept before deletion (protects concurrent backups)
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    pub grace_hours: i64,
    /// Delete at once, without grace period: only when no other process writes
    #[arg(long)]
    pub instant: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    pub flags: PruneFlags,
    /// Show what would be freed and repacked
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print statistics as JSON
    #[arg(long)]
    pub json: bool,
}

impl PruneFlags {
    pub fn options(&self, dry_run: bool) -> anyhow::Result<PruneOptions> {
        if !(0.0..=100.0).contains(&self.max_unused) || self.grace_hours < 0 {
            return Err(cairn::Error::InvalidArgument(
                "--max-unused must be 0-100 and --grace-hours >= 0".into(),
            )
            .into());
        }
        Ok(PruneOptions {
            max_unused: self.max_unused / 100.0,
            grace: chrono::Duration::hours(self.grace_hours),
            instant: self.instant,
            dry_run,
        })
    }
}

pub fn print_stats(stats: &PruneStats, dry_run: bool, json: bool) -> anyhow::Result<()> {
    if json {
        return output::print_json(stats);
    }
    let h = output::human_bytes;
    println!(
        "repository: {} packs, {}; {} blobs in use",
        stats.packs_total,
        h(stats.bytes_total),
        stats.blobs_used
    );
    let verb = if dry_run { "would mark" } else { "marked" };
    println!(
        "{verb} {} unused and {} repacked packs obsolete ({})",
        stats.packs_unused,
        stats.packs_repacked,
        h(stats.bytes_marked_obsolete)
    );
    println!(
        "deleted {} packs ({}), resurrected {}, {} still in their grace period",
        stats.packs_deleted,
        h(stats.bytes_deleted),
        stats.packs_resurrected,
        stats.packs_waiting
    );
    println!("unused space left: {}", h(stats.bytes_unused_after));
    if stats.stale_temporaries_removed > 0 {
        println!(
            "removed {} temporary files left by killed runs",
            stats.stale_temporaries_removed
        );
    }
    if stats.dead_runs_removed > 0 {
        println!(
            "removed {} run markers of dead processes",
            stats.dead_runs_removed
        );
    }
    Ok(())
}

pub fn run(g: &GlobalArgs, args: &PruneArgs) -> anyhow::Result<u8> {
    let options = args.flags.options(args.dry_run)?;
    let repo = env::open(g)?;
    let stats = prune::prune(&repo, &options)?;
    if args.json || !g.quiet {
        print_stats(&stats, args.dry_run, args.json)?;
    }
    Ok(exit::OK)
}
