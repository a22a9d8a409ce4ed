//! Which snapshots `forget` removes: snapshots are grouped (by host and
//! paths by default), the retention policy is applied to each group, and
//! the result is a plan the caller shows and then carries out. Pure: the
//! caller lists snapshots and deletes them.

use chrono::Local;
use serde::Serialize;

use crate::id::SnapshotId;
use crate::retention::{GroupBy, GroupKey, RetentionPolicy, SnapshotInfo};
use crate::snapshot::Snapshot;

/// Which snapshots are considered at all (`--host`, `--tag`, `--path`).
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub hosts: Vec<String>,
    pub tags: Vec<String>,
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && (self.tags.is_empty() || s.tags.iter().any(|t| self.tags.contains(t)))
            && self.paths.iter().all(|p| s.paths.contains(p))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotVerdict {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupPlan {
    pub group: GroupKey,
    pub snapshots: Vec<SnapshotVerdict>,
}

/// The whole decision: what stays, what goes, and why.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetPlan {
    pub groups: Vec<GroupPlan>,
}

impl ForgetPlan {
    pub fn to_remove(&self) -> Vec<SnapshotId> {
        self.groups
            .iter()
            .flat_map(|g| g.snapshots.iter())
            .filter(|s| !s.keep)
            .filter_map(|s| s.id.parse().ok())
            .collect()
    }
}

fn verdict(id: &SnapshotId, s: &Snapshot, keep: bool, reasons: Vec<String>) -> SnapshotVerdict {
    SnapshotVerdict {
        id: id.to_hex(),
        short_id: id.short(),
        time: s.time.to_rfc3339(),
        hostname: s.hostname.clone(),
        paths: s.paths.clone(),
        tags: s.tags.clone(),
        keep,
        reasons,
    }
}

/// Applies `policy` to every group of the snapshots `filter` selects.
pub fn plan(
    snapshots: &[(SnapshotId, Snapshot)],
    policy: &RetentionPolicy,
    group_by: GroupBy,
    filter: &SnapshotFilter,
) -> ForgetPlan {
    let mut groups: std::collections::BTreeMap<GroupKey, Vec<&(SnapshotId, Snapshot)>> =
        std::collections::BTreeMap::new();
    for entry in snapshots.iter().filter(|(_, s)| filter.matches(s)) {
        let key = group_by.key(&entry.1.hostname, &entry.1.paths, &entry.1.tags);
        groups.entry(key).or_default().push(entry);
    }
    let mut out = Vec::new();
    for (key, members) in groups {
        let ids: Vec<String> = members.iter().map(|(id, _)| id.to_hex()).collect();
        let infos: Vec<SnapshotInfo> = members
            .iter()
            .zip(&ids)
            .map(|((_, s), id)| SnapshotInfo {
                id,
                time: s.time.with_timezone(&Local).fixed_offset(),
                tags: &s.tags,
            })
            .collect();
        let verdicts = policy.apply(&infos);
        let snapshots = verdicts
            .into_iter()
            .filter_map(|v| {
                let (id, s) = members.iter().find(|(id, _)| id.to_hex() == v.id)?;
                Some(verdict(id, s, v.keep, v.reasons))
            })
            .collect();
        out.push(GroupPlan {
            group: key,
            snapshots,
        });
    }
    ForgetPlan { groups: out }
}

/// A plan that removes exactly the given snapshots.
pub fn plan_ids(snapshots: &[(SnapshotId, Snapshot)], remove: &[SnapshotId]) -> ForgetPlan {
    let chosen = snapshots
        .iter()
        .filter(|(id, _)| remove.contains(id))
        .map(|(id, s)| verdict(id, s, false, Vec::new()))
        .collect();
    ForgetPlan {
        groups: vec![GroupPlan {
            group: GroupKey::default(),
            snapshots: chosen,
        }],
    }
}
