//! `cairn repair index|snapshots`: make a damaged repository usable again.
//! Neither ever deletes a pack.

use cairn::checker::repair;

use crate::cli::{env, exit, output, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct RepairArgs {
    #[command(subcommand)]
    pub what: RepairWhat,
}

#[derive(clap::Subcommand, Debug)]
pub enum RepairWhat {
    /// Rebuild the index files from the pack headers
    Index {
        #[arg(long)]
        json: bool,
    },
    /// Rewrite snapshots without the files whose data is lost
    Snapshots {
        /// Show what would change, change nothing
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Also read all data to find damaged blobs (not only missing ones)
        #[arg(long)]
        read_data: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(g: &GlobalArgs, args: &RepairArgs) -> anyhow::Result<u8> {
    let repo = env::open(g)?;
    match &args.what {
        RepairWhat::Index { json } => {
            let stats = repair::repair_index(&repo)?;
            if *json {
                output::print_json(&stats)?;
            } else {
                println!(
                    "indexed {} packs ({} blobs), replaced {} index files",
                    stats.packs_indexed, stats.blobs_indexed, stats.index_files_replaced
                );
                for p in &stats.packs_unreadable {
                    println!("unreadable pack, left in place: {p}");
                }
            }
        }
        RepairWhat::Snapshots {
            dry_run,
            read_data,
            json,
        } => {
            let damaged = repair::damaged_blobs(&repo, *read_data)?;
            let report = repair::repair_snapshots(&repo, &damaged, *dry_run)?;
            if *json {
                output::print_json(&report)?;
            } else {
                for r in &report.repaired {
                    let to = r
                        .new_id
                        .as_deref()
                        .map_or("(dry run)".to_string(), |n| n[..8].to_string());
                    println!("snapshot {} -> {to}", &r.old_id[..8]);
                    for f in &r.dropped_files {
                        println!("  dropped {f}");
                    }
                    for d in &r.lost_directories {
                        println!("  lost directory {d}");
                    }
                }
                let verb = if *dry_run { "would repair" } else { "repaired" };
                println!(
                    "{verb} {} of {} snapshots",
                    report.repaired.len(),
                    report.snapshots_checked
                );
            }
        }
    }
    Ok(exit::OK)
}
