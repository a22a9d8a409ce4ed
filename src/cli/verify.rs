//! `cairn verify`: check the repository's structure and, optionally, data.

use cairn::checker::{self, DataSubset};

use crate::cli::{env, exit, output, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Also download, decrypt and re-hash every blob
    #[arg(long)]
    pub read_data: bool,
    /// Read only part of the data: N/M (slice N of M) or P% (random sample)
    #[arg(long, value_name = "N/M|P%", conflicts_with = "read_data")]
    pub read_data_subset: Option<DataSubset>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &GlobalArgs, args: &VerifyArgs) -> anyhow::Result<u8> {
    let repo = env::open(g)?;
    let subset = match (args.read_data, args.read_data_subset) {
        (true, _) => DataSubset::All,
        (false, Some(s)) => s,
        (false, None) => DataSubset::None,
    };
    let report = checker::verify(&repo, subset)?;
    if args.json {
        output::print_json(&report)?;
    } else {
        println!(
            "checked {} snapshots, {} trees, {} packs ({} read, {} blobs)",
            report.snapshots, report.trees, report.packs, report.packs_read, report.blobs_checked
        );
        for p in &report.problems {
            println!("error: {}: {}", p.object, p.message);
        }
        for a in &report.affected {
            println!("snapshot {} is damaged at:", &a.snapshot[..8]);
            for path in &a.paths {
                println!("  {path}");
            }
        }
        if !report.unreferenced_packs.is_empty() {
            println!(
                "note: {} packs are named by no index (a backup in progress, or left by an interrupted one; prune removes them)",
                report.unreferenced_packs.len()
            );
        }
        if report.is_clean() {
            println!("no errors were found");
        }
    }
    Ok(if report.is_clean() {
        exit::OK
    } else {
        exit::DAMAGED
    })
}
