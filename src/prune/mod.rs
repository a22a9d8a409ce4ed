//! `prune`: reclaim the space of data no snapshot references, without
//! stopping backups. The protocol (format-spec section 10):
//!
//! 1. Mark every blob reachable from the snapshots (in an on-disk set, so
//!    memory does not grow with the repository).
//! 2. Packs with no used blob, and packs whose unused share is worth
//!    repacking, become *obsolete*: their used blobs are copied into new
//!    packs, an `obsolete/` marker records them (with their entries), and a
//!    new index file supersedes every old one without them. Readers still
//!    find blobs in obsolete packs; writers never dedup against them.
//! 3. Packs of markers older than the grace period, and older than the start
//!    of every live snapshot run, are deleted, unless a snapshot written
//!    meanwhile uses a blob found only there: then the pack is put back
//!    into the index ("resurrected").
//!
//! A prune killed at any point leaves a repository that verifies: every
//! step writes before it deletes, and running prune again completes the job.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId};
use crate::index::cache::IndexCache;
use crate::index::{IndexFile, IndexedPack};
use crate::pack::PackWriter;
use crate::repository::marker::ObsoleteMarker;
use crate::repository::Repository;
use crate::tree::NodeKind;

/// Runs that started less than this after a marking still count as older.
const RUN_MARGIN_MINUTES: i64 = 10;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Share of the repository that may stay unused (0.05 = 5%).
    pub max_unused: f64,
    /// How long obsolete packs are kept before deletion.
    pub grace: chrono::Duration,
    /// Delete at once, skipping the grace period (no other writer may run).
    pub instant: bool,
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: 0.05,
            grace: chrono::Duration::hours(24),
            instant: false,
            dry_run: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneStats {
    pub packs_total: u64,
    pub bytes_total: u64,
    pub blobs_used: u64,
    pub packs_unused: u64,
    pub packs_repacked: u64,
    pub bytes_marked_obsolete: u64,
    pub packs_deleted: u64,
    pub bytes_deleted: u64,
    pub packs_resurrected: u64,
    pub packs_waiting: u64,
    pub bytes_unused_after: u64,
}

/// The blobs the remaining snapshots use, kept on disk.
struct MarkSet {
    db: IndexCache,
    count: u64,
}

impl MarkSet {
    fn new() -> Result<MarkSet> {
        let db = IndexCache::open_private().map_err(|e| Error::Cache {
            path: std::path::PathBuf::new(),
            message: e.message,
        })?;
        Ok(MarkSet { db, count: 0 })
    }

    fn err(e: crate::index::cache::CacheError) -> Error {
        Error::Cache {
            path: std::path::PathBuf::new(),
            message: e.message,
        }
    }

    /// Adds the blob; false if it was there already.
    fn insert(&mut self, kind: BlobKind, id: &BlobId) -> Result<bool> {
        if self.db.contains(kind, id).map_err(Self::err)? {
            return Ok(false);
        }
        let entry = crate::pack::PackEntry {
            kind,
            id: *id,
            offset: 0,
            length: 0,
            plain_length: 0,
        };
        self.db
            .merge(None, &[(PackId([0; 32]), &[entry][..])])
            .map_err(Self::err)?;
        self.count += 1;
        Ok(true)
    }

    fn contains(&self, kind: BlobKind, id: &BlobId) -> Result<bool> {
        self.db.contains(kind, id).map_err(Self::err)
    }
}

/// Walks every snapshot's trees; a tree seen before is not walked again.
fn mark_used(repo: &Repository) -> Result<MarkSet> {
    let mut marks = MarkSet::new()?;
    for (_, snap) in repo.list_snapshots()? {
        let mut stack = vec![snap.tree];
        while let Some(tree_id) = stack.pop() {
            if !marks.insert(BlobKind::Tree, &tree_id)? {
                continue;
            }
            let tree = repo.load_tree(&tree_id)?;
            for node in &tree.nodes {
                if node.kind == NodeKind::Dir {
                    if let Some(sub) = node.subtree {
                        stack.push(sub);
                    }
                }
                for c in &node.content {
                    marks.insert(BlobKind::Data, &c.0)?;
                }
            }
        }
    }
    Ok(marks)
}

/// The live index: packs named by index files that nothing supersedes.
fn live_index(repo: &Repository) -> Result<(Vec<IndexId>, Vec<IndexedPack>)> {
    let ids = repo.list_index_files()?;
    let mut files = Vec::new();
    let mut superseded = HashSet::new();
    for id in &ids {
        let file = repo.load_index_file(id)?;
        superseded.extend(file.supersedes.iter().copied());
        files.push((*id, file));
    }
    let mut seen = HashSet::new();
    let mut packs = Vec::new();
    for (id, file) in files {
        if superseded.contains(&id) {
            continue;
        }
        for pack in file.packs {
            if seen.insert(pack.id) {
                packs.push(pack);
            }
        }
    }
    Ok((ids, packs))
}

/// Per pack: (bytes of blobs in use, bytes of blobs not in use). Only the
/// first copy of a blob counts as used; header bytes count as neither.
fn usage(packs: &[IndexedPack], marks: &MarkSet) -> Result<HashMap<PackId, (u64, u64)>> {
    let mut counted: HashSet<(BlobKind, BlobId)> = HashSet::new();
    let mut usage = HashMap::new();
    for pack in packs {
        let (mut used, mut unused) = (0, 0);
        for e in &pack.blobs {
            if marks.contains(e.kind, &e.id)? && counted.insert((e.kind, e.id)) {
                used += u64::from(e.length);
            } else {
                unused += u64::from(e.length);
            }
        }
        usage.insert(pack.id, (used, unused));
    }
    Ok(usage)
}

/// Chooses packs to retire: all unused ones, then the emptiest partly used
/// ones until the unused share is at most `max_unused`.
fn choose(
    packs: &[IndexedPack],
    usage: &HashMap<PackId, (u64, u64)>,
    max_unused: f64,
    stats: &mut PruneStats,
) -> HashSet<PackId> {
    let total: u64 = packs.iter().map(|p| p.size_bytes).sum();
    let mut unused_total: u64 = packs.iter().map(|p| usage[&p.id].1).sum();
    let mut retire = HashSet::new();
    for p in packs.iter().filter(|p| usage[&p.id].0 == 0) {
        retire.insert(p.id);
        unused_total -= usage[&p.id].1;
        stats.packs_unused += 1;
    }
    let mut partial: Vec<&IndexedPack> = packs
        .iter()
        .filter(|p| usage[&p.id].0 > 0 && usage[&p.id].1 > 0)
        .collect();
    // Emptiest first: most unused bytes per used byte.
    partial.sort_by_key(|p| {
        let (used, unused) = usage[&p.id];
        std::cmp::Reverse(unused * 1000 / used.max(1))
    });
    let allowed = (total as f64 * max_unused) as u64;
    for p in partial {
        if unused_total <= allowed {
            break;
        }
        retire.insert(p.id);
        unused_total -= usage[&p.id].1;
        stats.packs_repacked += 1;
    }
    stats.bytes_unused_after = unused_total;
    retire
}

/// Copies the used blobs of the retired packs into new packs, sealed bytes
/// as they are (no decryption needed, ids stay valid).
fn repack(
    repo: &Repository,
    retired: &[&IndexedPack],
    marks: &MarkSet,
    keep_elsewhere: &HashSet<(BlobKind, BlobId)>,
) -> Result<Vec<IndexedPack>> {
    let target = u64::from(repo.config().pack_target_bytes);
    let mut writers = [PackWriter::new(), PackWriter::new()];
    let mut done: HashSet<(BlobKind, BlobId)> = HashSet::new();
    let mut out = Vec::new();
    for pack in retired {
        let wanted: Vec<_> = pack
            .blobs
            .iter()
            .filter(|e| !keep_elsewhere.contains(&(e.kind, e.id)))
            .filter(|e| marks.contains(e.kind, &e.id).unwrap_or(true))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let bytes = repo.backend().read(&pack.id.object_name())?;
        for e in wanted {
            if !done.insert((e.kind, e.id)) {
                continue;
            }
            let range = e.offset as usize..(e.offset + u64::from(e.length)) as usize;
            let stored = bytes
                .get(range)
                .ok_or_else(|| Error::corrupt(pack.id.object_name(), "blob outside the pack"))?;
            let slot = usize::from(e.kind == BlobKind::Tree);
            writers[slot].add(e.kind, e.id, e.plain_length, stored.to_vec());
            if writers[slot].size_bytes() >= target {
                out.push(store(repo, std::mem::take(&mut writers[slot]))?);
            }
        }
    }
    for w in writers {
        if !w.is_empty() {
            out.push(store(repo, w)?);
        }
    }
    Ok(out)
}

fn store(repo: &Repository, writer: PackWriter) -> Result<IndexedPack> {
    let pack = writer.finish(repo.key());
    repo.backend().write(&pack.id.object_name(), &pack.bytes)?;
    Ok(IndexedPack {
        id: pack.id,
        size_bytes: pack.bytes.len() as u64,
        blobs: pack.entries,
    })
}

/// The earliest start of a run that is still alive.
fn oldest_live_run(
    repo: &Repository,
    now: DateTime<FixedOffset>,
) -> Result<Option<DateTime<FixedOffset>>> {
    Ok(repo
        .list_runs()?
        .into_iter()
        .filter(|(_, m)| !m.is_stale(now))
        .map(|(_, m)| m.started)
        .min())
}

pub fn prune(repo: &Repository, options: &PruneOptions) -> Result<PruneStats> {
    let mut stats = PruneStats::default();
    let now = chrono::Local::now().fixed_offset();
    let marks = mark_used(repo)?;
    stats.blobs_used = marks.count;
    let (old_index_ids, live) = live_index(repo)?;
    stats.packs_total = live.len() as u64;
    stats.bytes_total = live.iter().map(|p| p.size_bytes).sum();
    let used = usage(&live, &marks)?;
    let retire = choose(&live, &used, options.max_unused, &mut stats);
    let markers = repo.list_obsolete()?;
    if options.dry_run {
        stats.bytes_marked_obsolete = live
            .iter()
            .filter(|p| retire.contains(&p.id))
            .map(|p| p.size_bytes)
            .sum();
        return Ok(stats);
    }

    let (keep, retired): (Vec<&IndexedPack>, Vec<&IndexedPack>) =
        live.iter().partition(|p| !retire.contains(&p.id));
    let kept_blobs: HashSet<(BlobKind, BlobId)> = keep
        .iter()
        .flat_map(|p| p.blobs.iter().map(|e| (e.kind, e.id)))
        .collect();
    let mut new_packs = repack(repo, &retired, &marks, &kept_blobs)?;

    // Earlier markers: delete what is old enough, resurrect what is used.
    let live_run = oldest_live_run(repo, now)?;
    let mut delete_packs: Vec<PackId> = Vec::new();
    let mut done_markers = Vec::new();
    // A marked pack that is still in the live index (a killed prune wrote
    // its marker but not its index) is handled by this run's own marker.
    let live_ids: HashSet<PackId> = live.iter().map(|p| p.id).collect();
    let mut decided: HashSet<PackId> = HashSet::new();
    let mut available = kept_blobs.clone();
    available.extend(
        new_packs
            .iter()
            .flat_map(|p| p.blobs.iter().map(|e| (e.kind, e.id))),
    );
    for (name, marker) in &markers {
        // A run that started before the marking (with a margin for the
        // moments between writing the marker and the new index) may still
        // refer to these packs through its old view of the index.
        let safe_after = marker.marked + chrono::Duration::minutes(RUN_MARGIN_MINUTES);
        let expired = options.instant
            || (now - marker.marked >= options.grace
                && live_run.is_none_or(|start| start > safe_after));
        if !expired {
            stats.packs_waiting += marker.packs.len() as u64;
            continue;
        }
        for pack in &marker.packs {
            // A pack can sit in two markers (a prune killed before it
            // removed the marker it superseded); decide about it once, or
            // the second marker would delete what the first resurrected.
            if live_ids.contains(&pack.id) || !decided.insert(pack.id) {
                continue;
            }
            let needed = pack.blobs.iter().any(|e| {
                !available.contains(&(e.kind, e.id))
                    && marks.contains(e.kind, &e.id).unwrap_or(true)
            });
            // A pack an interrupted prune already deleted cannot come back.
            let exists = needed && repo.backend().stat(&pack.id.object_name()).is_ok();
            if exists {
                available.extend(pack.blobs.iter().map(|e| (e.kind, e.id)));
                new_packs.push(pack.clone());
                stats.packs_resurrected += 1;
            } else if !needed {
                delete_packs.push(pack.id);
                stats.bytes_deleted += pack.size_bytes;
            }
        }
        done_markers.push(name.clone());
    }

    // Write before delete: the new marker, then the index that supersedes.
    let newly_obsolete: Vec<IndexedPack> = retired.iter().map(|p| (*p).clone()).collect();
    stats.bytes_marked_obsolete = newly_obsolete.iter().map(|p| p.size_bytes).sum();
    if options.instant {
        delete_packs.extend(newly_obsolete.iter().map(|p| p.id));
        stats.bytes_deleted += stats.bytes_marked_obsolete;
    } else if !newly_obsolete.is_empty() {
        repo.save_obsolete(&ObsoleteMarker {
            marked: chrono::Local::now().fixed_offset(),
            packs: newly_obsolete,
        })?;
    }
    let mut packs: Vec<IndexedPack> = keep.into_iter().cloned().collect();
    packs.extend(new_packs);
    let index = IndexFile {
        supersedes: old_index_ids.clone(),
        packs,
    };
    let new_index = repo.save_index_file(&index)?;
    for id in old_index_ids.iter().filter(|id| **id != new_index) {
        repo.backend().delete(&id.object_name())?;
    }
    for pack in &delete_packs {
        match repo.backend().delete(&pack.object_name()) {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => stats.packs_deleted += 1,
        }
    }
    for name in done_markers {
        repo.backend().delete(&name)?;
    }
    repo.sync_index()?;
    Ok(stats)
}
