//! `cairn forget`: remove snapshots by retention policy or by id.

use cairn::forget::{self, SnapshotFilter};
use cairn::retention::{self, Duration, GroupBy, RetentionPolicy};

use crate::cli::prune::PruneFlags;
use crate::cli::{env, exit, output, GlobalArgs};

fn keep_count(s: &str) -> Result<u32, String> {
    retention::parse_keep_count(s).map_err(|e| e.to_string())
}

#[derive(clap::Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to remove explicitly (ids or prefixes); no policy needed
    pub ids: Vec<String>,
    /// Keep the N newest snapshots (-1: all)
    #[arg(long, value_name = "N", value_parser = keep_count, allow_hyphen_values = true)]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours
    #[arg(long, value_name = "N", value_parser = keep_count, allow_hyphen_values = true)]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days
    #[arg(long, value_name = "N", value_parser = keep_count, allow_hyphen_values = true)]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks
    #[arg(long, value_name = "N", value_parser = keep_count, allow_hyphen_values = true)]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months
    #[arg(long, value_name = "N", value_parser = keep_count, allow_hyphen_values = true)]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years
    #[arg(long, value_name = "N", value_parser = keep_count, allow_hyphen_values = true)]
    pub keep_yearly: Option<u32>,
    /// Keep all snapshots within this duration of the newest (e.g. 1y2m3d4h)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<Duration>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<Duration>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<Duration>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<Duration>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<Duration>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_yearly: Option<Duration>,
    /// Keep snapshots with all of these tags (comma-separated; repeatable)
    #[arg(long, value_name = "TAGS")]
    pub keep_tag: Vec<String>,
    /// Group snapshots by these fields before applying the policy
    #[arg(long, default_value = "host,paths")]
    pub group_by: GroupBy,
    /// Only consider snapshots of this host (repeatable)
    #[arg(long)]
    pub host: Vec<String>,
    /// Only consider snapshots with this tag (repeatable)
    #[arg(long)]
    pub tag: Vec<String>,
    /// Only consider snapshots of this path (repeatable)
    #[arg(long)]
    pub path: Vec<String>,
    /// Show what would be removed, remove nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print the plan as JSON
    #[arg(long)]
    pub json: bool,
    /// Run prune afterwards
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_flags: PruneFlags,
}

impl ForgetArgs {
    fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within,
            keep_within_hourly: self.keep_within_hourly,
            keep_within_daily: self.keep_within_daily,
            keep_within_weekly: self.keep_within_weekly,
            keep_within_monthly: self.keep_within_monthly,
            keep_within_yearly: self.keep_within_yearly,
            keep_tags: self
                .keep_tag
                .iter()
                .map(|t| retention::parse_tag_set(t))
                .collect(),
        }
    }
}

pub fn run(g: &GlobalArgs, args: &ForgetArgs) -> anyhow::Result<u8> {
    let policy = args.policy();
    if args.ids.is_empty() && policy.is_empty() {
        return Err(cairn::Error::InvalidArgument(
            "no policy given: name snapshots or use --keep-* options (refusing to remove everything)".into(),
        )
        .into());
    }
    let repo = env::open(g)?;
    let snapshots = repo.list_snapshots()?;
    let plan = if args.ids.is_empty() {
        let filter = SnapshotFilter {
            hosts: args.host.clone(),
            tags: args.tag.clone(),
            paths: args.path.clone(),
        };
        forget::plan(&snapshots, &policy, args.group_by, &filter)
    } else {
        let mut ids = Vec::new();
        for spec in &args.ids {
            ids.push(repo.resolve_snapshot(spec)?.0);
        }
        forget::plan_ids(&snapshots, &ids)
    };
    if args.json {
        output::print_json(&plan)?;
    } else {
        print_plan(&plan);
    }
    let remove = plan.to_remove();
    if args.dry_run {
        if !args.json {
            println!("would remove {} snapshots (dry run)", remove.len());
        }
        return Ok(exit::OK);
    }
    for id in &remove {
        repo.remove_snapshot(id)?;
    }
    if !args.json && !g.quiet {
        println!("removed {} snapshots", remove.len());
    }
    if args.prune {
        let stats = cairn::prune::prune(&repo, &args.prune_flags.options(false)?)?;
        crate::cli::prune::print_stats(&stats, false, args.json)?;
    }
    Ok(exit::OK)
}

fn print_plan(plan: &forget::ForgetPlan) {
    for group in &plan.groups {
        println!("group: {}", group.group);
        println!("  {:<8}  {:<25}  {:<6}  reasons", "id", "time", "action");
        for s in &group.snapshots {
            let time = chrono::DateTime::parse_from_rfc3339(&s.time)
                .map(|t| output::local_time(&t))
                .unwrap_or_else(|_| s.time.clone());
            let action = if s.keep { "keep" } else { "remove" };
            println!(
                "  {:<8}  {:<25}  {:<6}  {}",
                s.short_id,
                time,
                action,
                s.reasons.join(", ")
            );
        }
    }
}
