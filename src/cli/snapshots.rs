//! `cairn snapshots`: list snapshots as a table or JSON.

use crate::cli::{env, exit, output, GlobalArgs};

#[derive(clap::Args, Debug)]
pub struct SnapshotsArgs {
    /// Only snapshots of this host (repeatable)
    #[arg(long)]
    pub host: Vec<String>,
    /// Only snapshots with this tag (repeatable; any matches)
    #[arg(long)]
    pub tag: Vec<String>,
    /// Only snapshots that include this path (repeatable)
    #[arg(long)]
    pub path: Vec<String>,
    /// Print a JSON array
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &GlobalArgs, args: &SnapshotsArgs) -> anyhow::Result<u8> {
    let repo = env::open(g)?;
    let (all, damaged) = repo.list_snapshots_lossy()?;
    for e in &damaged {
        eprintln!("warning: {e} (run `cairn verify`)");
    }
    let list: Vec<_> = all
        .into_iter()
        .filter(|(_, s)| args.host.is_empty() || args.host.contains(&s.hostname))
        .filter(|(_, s)| args.tag.is_empty() || s.tags.iter().any(|t| args.tag.contains(t)))
        .filter(|(_, s)| args.path.iter().all(|p| s.paths.contains(p)))
        .collect();
    if args.json {
        let items: Vec<_> = list
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(),
                    "short_id": id.short(),
                    "time": s.time.to_rfc3339(),
                    "hostname": s.hostname,
                    "username": s.username,
                    "paths": s.paths,
                    "tags": s.tags,
                    "parent": s.parent,
                    "tree": s.tree.to_hex(),
                    "program_version": s.program_version,
                    "summary": s.summary,
                })
            })
            .collect();
        output::print_json(&items)?;
        return Ok(exit::OK);
    }
    println!(
        "{:<8}  {:<19}  {:<16}  {:<12}  paths",
        "id", "time", "host", "tags"
    );
    println!("{}", "-".repeat(72));
    for (id, s) in &list {
        println!(
            "{:<8}  {:<19}  {:<16}  {:<12}  {}",
            id.short(),
            output::local_time(&s.time),
            s.hostname,
            s.tags.join(","),
            s.paths.join(" ")
        );
    }
    println!("{} snapshots", list.len());
    Ok(exit::OK)
}
