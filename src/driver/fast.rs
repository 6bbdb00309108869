//! The snapshot's fast path: with the graph from the graph cache and the snapshot of how the last
//! build ended, every file's stat decides which tasks are known to be up to date, and a build
//! where nothing changed ends before the store is read. At the end of a build, the graph and the
//! snapshot are saved for the next.

use super::{Build, TaskState};
use crate::filestate::{self, MISSING, Stat};
use crate::manifest::PostMode;
use crate::snapshot::{self, FileMark, RecordOffsets, Snapshot};
use crate::stats;
use crate::ids::FileId;

/// What a build that ended with everything up to date knew of its files' contents: by absolute
/// path, the hash of each (absent files as [`MISSING`]). Watch mode keeps it between builds.
#[derive(Debug, Default)]
pub struct Settled {
    pub files: std::collections::HashMap<std::path::PathBuf, crate::filestate::Hash>,
}

/// What the snapshot of the last build tells a build whose graph came from the cache (or, carried,
/// one whose build file changed: see [`super::carry`]).
pub(super) struct Seeded {
    /// Every graph file's stat, taken at the start of this build.
    pub(super) stats: Vec<Option<Stat>>,
    /// By task: known to be up to date.
    pub(super) clean: Vec<bool>,
    /// By file: when its hash was taken, if it is as the snapshot knew it.
    pub(super) recorded_at: Vec<i64>,
    /// By task: the implicit dependencies its record names.
    pub(super) implicit: Vec<Vec<FileId>>,
    /// Where each task's and file's record is in the store.
    pub(super) records: RecordOffsets,
    /// `None` when the last build ran with this very graph (and removed what was stale then);
    /// else, when the seed was carried across a build-file edit, the records that may name
    /// outputs the graph no longer has (tasks gone or changed): where each is in the store, with
    /// the digest of its key.
    pub(super) stale: Option<Vec<(usize, [u8; 16])>>,
}

/// What a snapshot vouches for, given every file's stat now and `mark`, what the snapshot knew
/// of each file: by file, since when its hash is known (`i64::MIN` unless it is as the snapshot
/// knew it); by task, whether it is up to date: it was then (`was_clean`), and none of its files
/// (inputs, manual and implicit dependencies, outputs, depfile) has changed.
pub(super) fn vouch(
    graph: &crate::graph::Graph,
    stats: &[Option<Stat>],
    mark: impl Fn(usize) -> FileMark,
    implicit: &[Vec<FileId>],
    was_clean: impl Fn(usize) -> bool,
) -> (Vec<i64>, Vec<bool>) {
    let (unchanged, recorded_at): (Vec<bool>, Vec<i64>) = stats
        .iter()
        .enumerate()
        .map(|(f, stat)| match mark(f) {
            m if !m.unchanged(stat.as_ref()) => (false, i64::MIN),
            FileMark::Present { recorded_at, .. } => (true, recorded_at),
            _ => (true, i64::MIN),
        })
        .unzip();
    let clean = graph
        .task_ids()
        .map(|t| {
            let task = graph.task(t);
            was_clean(t.index())
                && task
                    .reads()
                    .chain(implicit.get(t.index()).into_iter().flatten().copied())
                    .chain(task.outputs.iter().copied())
                    .chain(task.depfile)
                    .all(|f| unchanged[f.index()])
        })
        .collect();
    (recorded_at, clean)
}

/// What the snapshot of the last build says, with every file's stat now.
pub(super) struct Seen {
    pub(super) snapshot: Snapshot,
    pub(super) stats: Vec<Option<Stat>>,
}

pub(super) enum Look {
    /// Every task was up to date, the store is as it was, and no file has changed.
    UpToDate,
    /// Something changed, or some task was not up to date: the tasks must be looked at.
    Seen(Seen),
    /// No snapshot of this graph, or the store has changed since.
    Unknown,
}

/// Compares every file of the cached graph with the snapshot of the last build.
pub(super) fn look(cache: &crate::graph_cache::Opened, state_dir: &std::path::Path) -> Look {
    let files = cache.file_count();
    let Some(snapshot) = Snapshot::load(&state_dir.join("snapshot"), &cache.id, files) else {
        return Look::Unknown;
    };
    stats::mark("load snapshot");
    if snapshot.store.is_none() || snapshot::store_mark(&state_dir.join("store")) != snapshot.store
    {
        return Look::Unknown;
    }
    let ids: Vec<usize> = (0..files).collect();
    let stats = filestate::stat_all(&cache.root, &ids, |&i| cache.path(i));
    stats::mark("stat");
    if snapshot.all_clean
        && stats
            .iter()
            .enumerate()
            .all(|(i, s)| snapshot.mark(i).unchanged(s.as_ref()))
    {
        return Look::UpToDate;
    }
    Look::Seen(Seen { snapshot, stats })
}

impl Build<'_> {
    /// Records the graph and how this build ended, for the next build (at-once projects only).
    pub(super) fn save_cache(&mut self) {
        if !self.opts.dry_run
            && let Err(e) = self.scanner.save()
        {
            self.progress
                .message(&format!("warning: cannot save the include scanner's cache: {e}"));
        }
        let Some(key) = self.cache_key.take() else {
            return;
        };
        if self.opts.dry_run || self.project.post != PostMode::AtOnce || !self.expansion.complete()
        {
            return;
        }
        let graph = &self.expansion.graph;
        let files: Vec<FileMark> = (0..graph.file_count())
            .map(|i| match self.files.get(i) {
                Some(s) if s.checked => match s.stat {
                    None => FileMark::Missing,
                    Some(stat) => FileMark::Present {
                        stat,
                        recorded_at: s.recorded_at,
                    },
                },
                _ => FileMark::Unknown,
            })
            .collect();
        let clean = self.clean_tasks();
        self.rec.files.resize(graph.file_count(), None);
        // The graph is written only when it was not read from the cache; the snapshot always.
        let id = match self.graph_id {
            Some(id) => Ok(id),
            None => crate::graph_cache::save(
                &self.state_dir.join("graph"),
                &key,
                self.project,
                &self.expansion,
                self.task_digests.as_deref(),
            ),
        };
        let saved = id.and_then(|id| {
            Snapshot::save(
                &self.state_dir.join("snapshot"),
                &id,
                snapshot::store_mark(&self.state_dir.join("store")),
                &files,
                &clean,
                &self.rec,
                &self.implicit,
            )
        });
        if let Err(e) = saved {
            self.progress
                .message(&format!("warning: cannot write kiln's graph cache: {e}"));
        }
        stats::mark("save cache");
    }

    /// By task: whether the next build (naming no target) would find it up to date.
    fn clean_tasks(&self) -> Vec<bool> {
        let graph = &self.expansion.graph;
        graph
            .task_ids()
            .map(|t| match self.state[t.index()] {
                _ if graph.task(t).always => false,
                // A build that names no target never builds a `default = false` generator: for
                // the next such build, whose snapshot this is, it is as good as up to date.
                _ if !self.is_selected(t) && self.opts.targets.is_empty() => true,
                TaskState::Skipped => true,
                TaskState::Success => self.record(t).is_some_and(|r| r.signature != MISSING),
                _ => false,
            })
            .collect()
    }

    /// For watch mode: when every task ended up to date, the content of every file of the graph
    /// as the build left it (absent files as [`MISSING`]); files whose content the build neither
    /// took nor can vouch for from the store are left out.
    pub(super) fn settle(&self) -> Option<Settled> {
        if self.opts.dry_run
            || !self.opts.targets.is_empty()
            || !self.expansion.complete()
            || !self.failed.is_empty()
            || self.interrupted.is_some()
            || !self.clean_tasks().iter().all(|&c| c)
        {
            return None;
        }
        let graph = &self.expansion.graph;
        let mut files = std::collections::HashMap::with_capacity(graph.file_count());
        for i in 0..graph.file_count() {
            let f = FileId(i as u32);
            let Some(state) = self.files.get(i).filter(|s| s.checked) else {
                continue;
            };
            let hash = match (state.stat, state.hash) {
                (None, _) => Some(MISSING),
                (Some(_), Some(h)) if h != MISSING => Some(h),
                // Not looked up (a build seeded by its snapshot reads only what may run).
                (Some(stat), None) => self
                    .recorded_file(f)
                    .filter(|r| r.trusted_for(&stat))
                    .map(|r| r.hash),
                (Some(_), Some(_)) => None,
            };
            if let Some(h) = hash {
                files.insert(self.project.root.join(graph.path(f)), h);
            }
        }
        Some(Settled { files })
    }

    /// Whether a task reads a file that no task makes and that does not exist: a source named by
    /// plain path that has gone since the graph was cached.
    pub(super) fn missing_source(&self) -> bool {
        let graph = &self.expansion.graph;
        graph.tasks().iter().flat_map(|t| t.reads()).any(|f| {
            graph.producer(f).is_none()
                && self
                    .files
                    .get(f.index())
                    .is_some_and(|s| s.checked && s.stat.is_none())
        })
    }
}
