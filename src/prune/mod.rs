//! `prune`: reclaim the space of data no snapshot references, without
//! stopping backups. The protocol (format-spec section 10):
//!
//! 1. Mark every blob reachable from the snapshots.
//! 2. Measure each live pack: bytes of blobs in use, bytes not. The first
//!    copy of a used blob *claims* it; later copies count as unused.
//! 3. Packs with no used blob, and packs whose unused share is worth
//!    repacking, become *obsolete*: the blobs they claim are copied into
//!    new packs, `obsolete/` markers record them (with their entries), and
//!    new index files replace the old ones (see `IndexWriter`). Readers
//!    still find blobs in obsolete packs; writers never dedup against them.
//! 4. Packs of markers older than the grace period, and older than the start
//!    of every live snapshot run, are deleted, unless a snapshot written
//!    meanwhile uses a blob found only there: then the pack is put back
//!    into the index ("resurrected").
//!
//! Memory does not grow with the number of blobs: the mark set and the
//! claims live in temporary on-disk tables, index files and markers are
//! read one at a time, and only per-pack figures stay in RAM.
//!
//! A prune killed at any point leaves a repository that verifies: every
//! step writes before it deletes, and running prune again completes the job.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::{BlobId, IndexId, PackId};
use crate::index::cache::IndexCache;
use crate::index::IndexedPack;
use crate::pack::PackEntry;
use crate::repository::index_writer::{IndexWriter, PackBatch};
use crate::repository::marker::ObsoleteMarker;
use crate::repository::staging::{self, StagedPack};
use crate::repository::Repository;
use crate::tree::NodeKind;

/// Runs that started less than this after a marking still count as older.
const RUN_MARGIN_MINUTES: i64 = 10;

/// A temporary file untouched for this long was left by a killed writer:
/// writing one object never takes that long.
const STALE_TEMPORARY_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

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
    /// Temporary files that killed writers left, removed.
    pub stale_temporaries_removed: u64,
    /// Run markers of dead processes (no heartbeat for 6 hours), removed.
    pub dead_runs_removed: u64,
}

/// A blob → pack table in a temporary RocksDB, so that prune's bookkeeping
/// stays on disk however many blobs the repository holds.
struct BlobTable {
    db: IndexCache,
    len: u64,
}

impl BlobTable {
    fn new() -> Result<BlobTable> {
        let db = IndexCache::open_private().map_err(Self::err)?;
        Ok(BlobTable { db, len: 0 })
    }

    fn err(e: crate::index::cache::CacheError) -> Error {
        Error::Cache {
            path: std::path::PathBuf::new(),
            message: e.message,
        }
    }

    fn get(&self, kind: BlobKind, id: &BlobId) -> Result<Option<PackId>> {
        Ok(self.db.lookup(kind, id).map_err(Self::err)?.map(|l| l.pack))
    }

    fn contains(&self, kind: BlobKind, id: &BlobId) -> Result<bool> {
        self.db.contains(kind, id).map_err(Self::err)
    }

    /// Records `pack` for every entry (replacing what was there).
    fn put(&mut self, pack: PackId, entries: &[PackEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.db.merge(None, &[(pack, entries)]).map_err(Self::err)?;
        self.len += entries.len() as u64;
        Ok(())
    }

    /// Adds a blob with no pack; false if it was there already.
    fn insert(&mut self, kind: BlobKind, id: &BlobId) -> Result<bool> {
        if self.contains(kind, id)? {
            return Ok(false);
        }
        let entry = PackEntry {
            kind,
            id: *id,
            offset: 0,
            length: 0,
            plain_length: 0,
        };
        self.put(PackId([0; 32]), &[entry])?;
        Ok(true)
    }
}

/// Walks every snapshot's trees; a tree seen before is not walked again.
fn mark_used(repo: &Repository) -> Result<BlobTable> {
    let mut marks = BlobTable::new()?;
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

/// Calls `f` once for every pack of `packs` as the live index files list
/// it, loading one file at a time. `pass` tells passes apart, so that a pack
/// listed twice is seen once without a set of its own.
fn for_each_live_pack(
    repo: &Repository,
    live: &[IndexId],
    packs: &Packs,
    pass: u8,
    mut f: impl FnMut(&PackUsage, IndexedPack) -> Result<()>,
) -> Result<()> {
    for id in live {
        for pack in repo.load_index_file(id)?.packs {
            match packs.get(&pack.id) {
                Some(state) if state.pass.get() != pass => {
                    state.pass.set(pass);
                    f(state, pack)?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// What prune knows about one live pack: 16 bytes beside the id. This map
/// is the only state that grows with the repository, and it grows with
/// packs, not blobs. (A pack never exceeds 1 GiB plus one blob, so u32
/// byte counts suffice; they saturate rather than wrap.)
#[derive(Debug, Clone)]
struct PackUsage {
    size: u32,
    /// Bytes of the blobs this pack claims.
    used: u32,
    /// Bytes of everything else (unused blobs and second copies).
    unused: u32,
    retire: bool,
    pass: std::cell::Cell<u8>,
}

type Packs = HashMap<PackId, PackUsage>;

fn retired(packs: &Packs, id: &PackId) -> bool {
    packs.get(id).is_some_and(|p| p.retire)
}

/// Measures every live pack and claims each used blob for its first copy.
/// Also returns how many second copies of used blobs were seen.
fn measure(
    repo: &Repository,
    live: &[IndexId],
    marks: &BlobTable,
    claims: &mut BlobTable,
) -> Result<(Packs, u64)> {
    let mut packs = Packs::new();
    let mut duplicates = 0;
    for id in live {
        for pack in repo.load_index_file(id)?.packs {
            if packs.contains_key(&pack.id) {
                continue;
            }
            let mut usage = PackUsage {
                size: u32::try_from(pack.size_bytes).unwrap_or(u32::MAX),
                used: 0,
                unused: 0,
                retire: false,
                pass: std::cell::Cell::new(0),
            };
            let mut mine: Vec<PackEntry> = Vec::new();
            let mut here = HashSet::new();
            for e in &pack.blobs {
                let used = marks.contains(e.kind, &e.id)?;
                if used && claims.get(e.kind, &e.id)?.is_none() && here.insert((e.kind, e.id)) {
                    usage.used = usage.used.saturating_add(e.length);
                    mine.push(*e);
                } else {
                    duplicates += u64::from(used);
                    usage.unused = usage.unused.saturating_add(e.length);
                }
            }
            claims.put(pack.id, &mine)?;
            packs.insert(pack.id, usage);
        }
    }
    Ok((packs, duplicates))
}

/// Chooses packs to retire: all unused ones, then the emptiest partly used
/// ones until the unused share is at most `max_unused`. Returns how many.
fn choose(packs: &mut Packs, max_unused: f64, stats: &mut PruneStats) -> usize {
    let total: u64 = packs.values().map(|p| u64::from(p.size)).sum();
    let mut unused_total: u64 = packs.values().map(|p| u64::from(p.unused)).sum();
    let mut count = 0;
    for p in packs.values_mut().filter(|p| p.used == 0) {
        p.retire = true;
        unused_total -= u64::from(p.unused);
        stats.packs_unused += 1;
        count += 1;
    }
    // Emptiest first: most unused bytes per used byte (ties by id, so the
    // choice does not depend on hash order).
    let mut partial: Vec<(u64, PackId)> = packs
        .iter()
        .filter(|(_, p)| p.used > 0 && p.unused > 0)
        .map(|(id, p)| (u64::from(p.unused) * 1000 / u64::from(p.used), *id))
        .collect();
    partial.sort_by_key(|(ratio, id)| (std::cmp::Reverse(*ratio), *id));
    let allowed = (total as f64 * max_unused) as u64;
    for (_, id) in partial {
        if unused_total <= allowed {
            break;
        }
        if let Some(p) = packs.get_mut(&id) {
            p.retire = true;
            unused_total -= u64::from(p.unused);
        }
        stats.packs_repacked += 1;
        count += 1;
    }
    stats.bytes_unused_after = unused_total;
    count
}

/// Moves the claim of a used blob from a retired pack to a kept pack that
/// also holds it, so repacking does not copy what survives anyway.
fn prefer_kept_copies(
    repo: &Repository,
    live: &[IndexId],
    packs: &Packs,
    marks: &BlobTable,
    claims: &mut BlobTable,
) -> Result<()> {
    for_each_live_pack(repo, live, packs, 1, |state, pack| {
        if state.retire {
            return Ok(());
        }
        let mut moved = Vec::new();
        for e in &pack.blobs {
            if marks.contains(e.kind, &e.id)? {
                if let Some(owner) = claims.get(e.kind, &e.id)? {
                    if owner != pack.id && retired(packs, &owner) {
                        moved.push(*e);
                    }
                }
            }
        }
        claims.put(pack.id, &moved)
    })
}

/// Copies the blobs a retired pack claims into new packs, sealed bytes as
/// they are (no decryption needed, ids stay valid). The new packs are
/// staged in local files, as a snapshot's are, so repacking holds no more
/// than one read window however large the repository's packs are.
struct Repacker<'r> {
    repo: &'r Repository,
    target: u64,
    staging_dir: PathBuf,
    /// The open pack for data blobs, and the one for trees.
    packs: [Option<StagedPack>; 2],
}

impl<'r> Repacker<'r> {
    fn new(repo: &'r Repository) -> Repacker<'r> {
        Repacker {
            repo,
            target: u64::from(repo.config().pack_target_bytes),
            staging_dir: repo.staging_dir(),
            packs: [None, None],
        }
    }

    fn copy(
        &mut self,
        pack: &IndexedPack,
        claims: &BlobTable,
        index: &mut IndexWriter,
    ) -> Result<()> {
        let mut wanted = Vec::new();
        let mut here = HashSet::new();
        for e in &pack.blobs {
            if claims.get(e.kind, &e.id)? == Some(pack.id) && here.insert((e.kind, e.id)) {
                wanted.push(e);
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let name = pack.id.object_name();
        if wanted
            .iter()
            .any(|e| e.offset + u64::from(e.length) > pack.size_bytes)
        {
            return Err(Error::corrupt(name, "blob outside the pack"));
        }
        wanted.sort_by_key(|e| e.offset);
        let span = |e: &&PackEntry| (e.offset, e.length);
        for (window, read) in self.repo.read_pack_windows(&pack.id, &wanted, span) {
            let mut read = read?;
            for e in window {
                let stored = read
                    .stored((e.offset, e.length))
                    .ok_or_else(|| Error::corrupt(&name, "read too short"))?;
                self.add(e, stored, index)?;
            }
        }
        Ok(())
    }

    fn add(&mut self, e: &PackEntry, stored: &[u8], index: &mut IndexWriter) -> Result<()> {
        let full = staging::append_to_open_pack(
            &mut self.packs[staging::pack_slot(e.kind)],
            &self.staging_dir,
            self.target,
            (e.kind, e.id, e.plain_length),
            stored,
        )?;
        if let Some(full) = full {
            index.add(self.store(full)?)?;
        }
        Ok(())
    }

    fn finish(mut self, index: &mut IndexWriter) -> Result<()> {
        for pack in std::mem::take(&mut self.packs).into_iter().flatten() {
            if !pack.is_empty() {
                index.add(self.store(pack)?)?;
            }
        }
        Ok(())
    }

    fn store(&self, pack: StagedPack) -> Result<IndexedPack> {
        let path = pack.path().to_path_buf();
        let finished = pack
            .finish(self.repo.key())
            .map_err(|err| Error::io(path, err))?;
        self.repo
            .backend()
            .store_file(&finished.id.object_name(), finished.path.path())?;
        Ok(IndexedPack {
            id: finished.id,
            size_bytes: finished.size_bytes,
            blobs: finished.entries,
        })
    }
}

/// Collects retired packs into obsolete markers of bounded size.
struct MarkerWriter<'r> {
    repo: &'r Repository,
    marked: DateTime<FixedOffset>,
    batch: PackBatch,
}

impl MarkerWriter<'_> {
    fn add(&mut self, pack: IndexedPack) -> Result<()> {
        match self.batch.push(pack) {
            Some(full) => self.write(full),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<()> {
        let rest = self.batch.take();
        self.write(rest)
    }

    fn write(&self, packs: Vec<IndexedPack>) -> Result<()> {
        if !packs.is_empty() {
            self.repo.save_obsolete(&ObsoleteMarker {
                marked: self.marked,
                packs,
            })?;
        }
        Ok(())
    }
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

/// What to do with the packs of earlier markers.
#[derive(Default)]
struct MarkerOutcome {
    delete: Vec<PackId>,
    done_markers: Vec<String>,
}

/// Settles the markers that existed when this prune started: deletes what
/// is old enough, resurrects into `index` what a snapshot still needs.
#[allow(clippy::too_many_arguments)]
fn settle_markers(
    repo: &Repository,
    names: &[String],
    live: &Packs,
    marks: &BlobTable,
    claims: &mut BlobTable,
    index: &mut IndexWriter,
    options: &PruneOptions,
    stats: &mut PruneStats,
) -> Result<MarkerOutcome> {
    let now = chrono::Local::now().fixed_offset();
    let live_run = oldest_live_run(repo, now)?;
    let mut outcome = MarkerOutcome::default();
    let mut decided: HashSet<PackId> = HashSet::new();
    for name in names {
        let marker = repo.load_obsolete(name)?;
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
        for pack in marker.packs {
            // A marked pack still in the live index (a killed prune wrote
            // its marker but not its index) is this run's business. A pack
            // in two markers (a prune killed before it removed the marker
            // it replaced) is decided once, or the second marker would
            // delete what the first resurrected.
            if live.contains_key(&pack.id) || !decided.insert(pack.id) {
                continue;
            }
            let mut needed = false;
            for e in &pack.blobs {
                if marks.contains(e.kind, &e.id)? && claims.get(e.kind, &e.id)?.is_none() {
                    needed = true;
                    break;
                }
            }
            if !needed {
                outcome.delete.push(pack.id);
                stats.bytes_deleted += pack.size_bytes;
            } else if repo.backend().stat(&pack.id.object_name()).is_ok() {
                // (An interrupted prune may already have deleted it; then
                // it cannot come back.)
                claims.put(pack.id, &pack.blobs)?;
                index.add(pack)?;
                stats.packs_resurrected += 1;
            }
        }
        outcome.done_markers.push(name.clone());
    }
    Ok(outcome)
}

pub fn prune(repo: &Repository, options: &PruneOptions) -> Result<PruneStats> {
    let mut stats = PruneStats::default();
    let marks = mark_used(repo)?;
    stats.blobs_used = marks.len;
    let (all_index, live_index) = repo.live_index_files()?;
    let mut claims = BlobTable::new()?;
    let (mut packs, duplicates) = measure(repo, &live_index, &marks, &mut claims)?;
    stats.packs_total = packs.len() as u64;
    stats.bytes_total = packs.values().map(|p| u64::from(p.size)).sum();
    let retiring = choose(&mut packs, options.max_unused, &mut stats);
    stats.bytes_marked_obsolete = packs
        .values()
        .filter(|p| p.retire)
        .map(|p| u64::from(p.size))
        .sum();
    if options.dry_run {
        return Ok(stats);
    }
    // Listed before this run writes its own markers.
    let marker_names = repo.obsolete_names()?;
    if duplicates > 0 && retiring > 0 {
        prefer_kept_copies(repo, &live_index, &packs, &marks, &mut claims)?;
    }

    // Write: new packs, markers and index files; nothing is deleted yet.
    let mut index = IndexWriter::new(repo);
    if retiring > 0 {
        rewrite_index(repo, &live_index, &packs, &claims, &mut index, options)?;
    }
    let outcome = settle_markers(
        repo,
        &marker_names,
        &packs,
        &marks,
        &mut claims,
        &mut index,
        options,
        &mut stats,
    )?;
    // With nothing retired the old files stay; only leftovers that another
    // file already supersedes go.
    let replaced: Vec<IndexId> = if retiring == 0 {
        all_index
            .iter()
            .copied()
            .filter(|id| !live_index.contains(id))
            .collect()
    } else {
        all_index
    };
    let superseding: &[IndexId] = if retiring == 0 { &[] } else { &replaced };
    let written = index.finish(superseding)?;

    // Delete: old index files, then packs, then the settled markers.
    IndexWriter::delete_superseded(repo, &replaced, &written)?;
    let mut delete = outcome.delete;
    if options.instant {
        delete.extend(packs.iter().filter(|(_, p)| p.retire).map(|(id, _)| *id));
        stats.bytes_deleted += stats.bytes_marked_obsolete;
    }
    drop(packs);
    for pack in &delete {
        match repo.backend().delete(&pack.object_name()) {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => stats.packs_deleted += 1,
        }
    }
    for name in outcome.done_markers {
        repo.backend().delete(&name)?;
    }
    let stale = repo
        .backend()
        .remove_stale_temporaries(STALE_TEMPORARY_AGE)?;
    stats.stale_temporaries_removed = stale as u64;
    stats.dead_runs_removed = remove_dead_runs(repo)?;
    repo.sync_index()?;
    Ok(stats)
}

/// Removes the run markers of processes that died without removing them
/// (killed, or their machine lost): every prune already ignores them, and
/// without this they would pile up, one per killed backup, each read and
/// decrypted by every prune. Their packs are not lost: the next snapshot
/// adopts packs no index names.
fn remove_dead_runs(repo: &Repository) -> Result<u64> {
    let now = chrono::Local::now().fixed_offset();
    let mut removed = 0;
    for (name, _) in repo.list_runs()?.iter().filter(|(_, m)| m.is_stale(now)) {
        match repo.backend().delete(name) {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => removed += 1,
        }
    }
    Ok(removed)
}

/// Writes the live index again without the retired packs: kept packs as
/// they are, the retired packs' claimed blobs in new packs, and (unless
/// `--instant`) markers naming the retired packs.
fn rewrite_index(
    repo: &Repository,
    live: &[IndexId],
    packs: &Packs,
    claims: &BlobTable,
    index: &mut IndexWriter,
    options: &PruneOptions,
) -> Result<()> {
    let mut repacker = Repacker::new(repo);
    let mut markers = MarkerWriter {
        repo,
        marked: chrono::Local::now().fixed_offset(),
        batch: PackBatch::default(),
    };
    for_each_live_pack(repo, live, packs, 2, |state, pack| {
        if !state.retire {
            return index.add(pack);
        }
        repacker.copy(&pack, claims, index)?;
        if !options.instant {
            markers.add(pack)?;
        }
        Ok(())
    })?;
    repacker.finish(index)?;
    markers.flush()
}
