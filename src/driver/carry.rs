//! The last build's snapshot carried across a change of the build file. The graph cache the
//! last build left still says which graph that was (its paths, and per task a digest of its key
//! and of its definition); while the store is as the snapshot saw it, a task of the new graph
//! with the same key and the same definition as a task that was up to date then, none of whose
//! files has changed since, is up to date now. Only what the edit changed is decided from the
//! store, as ninja, which reparses every time, decides every edge from its logs.

use super::fast::Seeded;
use crate::filestate::{self, Stat};
use crate::graph::Graph;
use crate::graph_cache::{self, DIGESTS};
use crate::ids::FileId;
use crate::snapshot::{self, FileMark, RecordOffsets, Snapshot};
use crate::stats;
use std::collections::HashMap;
use std::path::Path;

/// A seed for a graph just expanded from a changed build file, from the last graph's snapshot;
/// `None` when there is no such snapshot, or the store has changed since it was taken. Tasks are
/// matched by key and files by path; the implicit dependencies of a matched task's record join
/// the graph as they would from the store.
/// Also gives the graph's task digests, which it took, for the graph cache.
pub(super) fn carry(
    state_dir: &Path,
    root: &Path,
    graph: &mut Graph,
) -> Option<(Seeded, Vec<u8>)> {
    let previous = graph_cache::previous(&state_dir.join("graph"))?;
    let snapshot = Snapshot::load(
        &state_dir.join("snapshot"),
        &previous.id,
        previous.file_count(),
    )?;
    if snapshot.store.is_none()
        || snapshot::store_mark(&state_dir.join("store")) != snapshot.store
        || snapshot.clean.len() != previous.task_count()
    {
        return None;
    }
    let mut old_implicit = snapshot.implicit()?;
    let old_records = snapshot.records();
    stats::mark("carry: read");
    let by_key: HashMap<&[u8], usize> = (0..previous.task_count())
        .map(|o| (previous.digests(o).0, o))
        .collect();

    // Tasks: matched by key; up to date if the definition is the same (files are looked at below).
    let digests = graph_cache::task_digests(graph);
    let tasks = graph.tasks().len();
    // By old task: the new graph has its key, with the same definition.
    let mut kept = vec![false; previous.task_count()];
    let mut same = vec![false; tasks];
    let mut implicit = Vec::with_capacity(tasks);
    let mut records = RecordOffsets {
        tasks: Vec::with_capacity(tasks),
        files: Vec::new(),
    };
    let mut new_of_old: Vec<Option<FileId>> = vec![None; previous.file_count()];
    for (t, d) in digests.chunks_exact(DIGESTS).enumerate() {
        let (key, definition) = d.split_at(DIGESTS / 2);
        let Some(&o) = by_key.get(key) else {
            implicit.push(Vec::new());
            records.tasks.push(None);
            continue;
        };
        kept[o] = previous.digests(o).1 == definition;
        same[t] = kept[o] && snapshot.clean[o];
        // Keys are unique: each old list is taken once, and its ids renamed where they lie.
        let mut ids = std::mem::take(&mut old_implicit[o]);
        for f in &mut ids {
            *f = *new_of_old[f.index()].get_or_insert_with(|| graph.file(previous.path(f.index())));
        }
        implicit.push(ids);
        records.tasks.push(old_records.tasks[o]);
    }
    // The records of tasks that are gone or changed may name outputs the graph no longer has.
    let stale = (0..previous.task_count())
        .filter(|&o| !kept[o])
        .filter_map(|o| Some((old_records.tasks[o]?, previous.digests(o).0.try_into().ok()?)))
        .collect();

    drop(old_implicit);
    stats::mark("carry: tasks");
    // Files: matched by path.
    let files = graph.file_count();
    let old_of: HashMap<&str, usize> = (0..previous.file_count())
        .map(|o| (previous.path(o), o))
        .collect();
    let old: Vec<Option<usize>> = (0..files)
        .map(|f| old_of.get(graph.path(FileId(f as u32))).copied())
        .collect();
    let ids: Vec<usize> = (0..files).collect();
    let stats: Vec<Option<Stat>> =
        filestate::stat_all(root, &ids, |&f| graph.path(FileId(f as u32)));
    stats::mark("carry: stat");
    // By file: as the snapshot knew it, and then since when its hash is known.
    let (unchanged, recorded_at): (Vec<bool>, Vec<i64>) = (0..files)
        .map(|f| {
            let mark = old[f].map_or(FileMark::Unknown, |o| snapshot.mark(o));
            match mark {
                _ if !mark.unchanged(stats[f].as_ref()) => (false, i64::MIN),
                FileMark::Present { recorded_at, .. } => (true, recorded_at),
                _ => (true, i64::MIN),
            }
        })
        .unzip();
    records.files = old
        .iter()
        .map(|o| o.and_then(|o| old_records.files[o]))
        .collect();
    let clean: Vec<bool> = graph
        .task_ids()
        .map(|t| {
            let task = graph.task(t);
            same[t.index()]
                && task
                    .reads()
                    .chain(implicit[t.index()].iter().copied())
                    .chain(task.outputs.iter().copied())
                    .chain(task.depfile)
                    .all(|f| unchanged[f.index()])
        })
        .collect();
    stats::count(
        "tasks vouched for",
        clean.iter().filter(|&&c| c).count() as u64,
    );
    let seed = Seeded {
        stats,
        recorded_at,
        clean,
        implicit,
        records,
        stale: Some(stale),
    };
    Some((seed, digests))
}
