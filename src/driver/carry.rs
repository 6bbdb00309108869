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
    let old_records = snapshot.records();
    stats::mark("carry: read");
    let old_tasks = previous.task_count();
    let by_key: HashMap<&[u8], usize> = (0..old_tasks)
        .map(|o| (previous.digests(o).0, o))
        .collect();

    // Tasks: matched by key; up to date if the definition is the same (files are looked at below).
    let digests = graph_cache::task_digests(graph);
    let tasks = graph.tasks().len();
    // By old task: the new graph has its key with the same definition; the new task with its key.
    let mut kept = vec![false; old_tasks];
    let mut new_task = vec![u32::MAX; old_tasks];
    let mut same = vec![false; tasks];
    let mut records = RecordOffsets {
        tasks: Vec::with_capacity(tasks),
        files: Vec::new(),
    };
    for (t, d) in digests.chunks_exact(DIGESTS).enumerate() {
        let (key, definition) = d.split_at(DIGESTS / 2);
        let Some(&o) = by_key.get(key) else {
            records.tasks.push(None);
            continue;
        };
        kept[o] = previous.digests(o).1 == definition;
        same[t] = kept[o] && snapshot.clean[o];
        new_task[o] = t as u32;
        records.tasks.push(old_records.tasks[o]);
    }
    drop(by_key);
    // The records of tasks that are gone or changed may name outputs the graph no longer has.
    let stale = (0..old_tasks)
        .filter(|&o| !kept[o])
        .filter_map(|o| Some((old_records.tasks[o]?, previous.digests(o).0.try_into().ok()?)))
        .collect();
    // A matched task's implicit dependencies, read from the snapshot one list at a time and
    // named by the new graph's ids (the files join it as they would from the store).
    let mut implicit: Vec<Vec<FileId>> = vec![Vec::new(); tasks];
    let mut new_of_old: Vec<Option<FileId>> = vec![None; previous.file_count()];
    snapshot.each_implicit(|o, ids| {
        let Some(&t) = new_task.get(o).filter(|&&t| t != u32::MAX) else {
            return;
        };
        implicit[t as usize] = ids
            .iter()
            .map(|f| {
                *new_of_old[f.index()].get_or_insert_with(|| graph.file(previous.path(f.index())))
            })
            .collect();
    })?;
    drop(new_of_old);
    stats::mark("carry: tasks");
    // Files: matched by path, through the new graph's index.
    let files = graph.file_count();
    let mut old: Vec<Option<usize>> = vec![None; files];
    for o in 0..previous.file_count() {
        if let Some(f) = graph.lookup(previous.path(o)) {
            old[f.index()] = Some(o);
        }
    }
    let ids: Vec<usize> = (0..files).collect();
    let stats: Vec<Option<Stat>> =
        filestate::stat_all(root, &ids, |&f| graph.path(FileId(f as u32)));
    stats::mark("carry: stat");
    records.files = old
        .iter()
        .map(|o| o.and_then(|o| old_records.files[o]))
        .collect();
    let (recorded_at, clean) = super::fast::vouch(
        graph,
        &stats,
        |f| old[f].map_or(FileMark::Unknown, |o| snapshot.mark(o)),
        &implicit,
        |t| same[t],
    );
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
