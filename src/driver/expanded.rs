//! What a build does with groups just expanded, before any of their tasks runs: the per-task
//! and per-file tables sized, implicit dependencies taken from the snapshot or the store, the
//! graph checked, files stated, stale outputs deleted, decisions predicted and plans made.

use super::scan::{Decision, FileState, Prediction};
use super::{Build, TaskState};
use crate::clean;
use crate::constraints::PlanNode;
use crate::error::Error;
use crate::filestate::MISSING;
use crate::ids::{FileId, GroupId, TaskId};
use crate::stats;
use crate::store::Record;
use crate::trace;
use std::cell::OnceCell;
use std::collections::HashMap;
use super::append::Slot;

impl Build<'_> {
    /// The implicit dependencies task `t`'s record names, as the graph's files (`by_store_id`
    /// remembers the graph's id of each store path id). None if a path is unreadable: the
    /// signature then differs from the record's, and the task runs.
    fn implicit_from_store(
        &mut self,
        t: TaskId,
        by_store_id: &mut Vec<Option<FileId>>,
    ) -> Vec<FileId> {
        let graph = &mut self.expansion.graph;
        let Some(view) = self.store.task(graph.key(t)) else {
            return Vec::new();
        };
        let mut ids = Vec::with_capacity(view.implicit_count());
        for sid in view.implicit_ids() {
            let i = sid as usize;
            if by_store_id.len() <= i {
                by_store_id.resize(i + 1, None);
            }
            let id = match by_store_id[i] {
                Some(id) => id,
                None => {
                    let Some(path) = self.store.path(sid) else {
                        return Vec::new();
                    };
                    *by_store_id[i].insert(graph.file(path))
                }
            };
            ids.push(id);
        }
        ids
    }

    /// Sizes the per-task and per-file tables, deletes stale outputs of the new groups, learns the
    /// new files' states, plans the groups and predicts what will run.
    /// Returns false when the graph came from the cache and names a source that no longer exists
    /// (nothing has been deleted yet: the build starts again from the build file).
    pub(super) fn after_expansion(&mut self, groups: &[GroupId]) -> Result<bool, Error> {
        let tasks = self.expansion.graph.tasks().len();
        let first_new = self.command_part.len();
        // The graph's id of each store path id met so far.
        let mut by_store_id: Vec<Option<FileId>> = Vec::new();
        for t in first_new..tasks {
            self.command_part.push(OnceCell::new());
            let key = self.expansion.graph.key(TaskId(t as u32));
            let at = match self.seeded.as_ref() {
                Some(s) => s.records.tasks.get(t).copied().flatten(),
                None => self.store.task_offset(key),
            };
            self.rec.tasks.push(at);
            // From the snapshot where it vouches for the store, else from the store.
            let ids = match self.seeded.as_mut().and_then(|s| s.implicit.get_mut(t)) {
                Some(ids) => std::mem::take(ids),
                None => self.implicit_from_store(TaskId(t as u32), &mut by_store_id),
            };
            self.implicit.push(ids);
            self.scanned.push(None);
            self.state.push(TaskState::NotRun);
            self.prediction.push(Prediction::Unknown);
            self.ran.push(false);
        }
        self.select_targets()?;
        // A build file just parsed is checked first (a cycle is an error, and errors come before
        // anything is deleted); a cached graph was checked when it was cached. A group none of
        // whose tasks is skipped below keeps the plan made here.
        let mut checked: HashMap<GroupId, (Vec<TaskId>, Vec<PlanNode>)> = HashMap::new();
        if self.graph_id.is_none() {
            for &g in groups {
                let tasks = self.group_tasks(g);
                let plan = self.plan(g, &tasks)?;
                checked.insert(g, (tasks, plan));
            }
        }
        stats::mark("check");
        self.check_files();
        stats::mark("check files");
        if self.graph_id.is_some() && self.missing_source() {
            return Ok(false);
        }
        // With a snapshot of this very graph, the last build removed what was stale then and the
        // store has not changed since; carried across an edit, it names the records to look at.
        match self.seeded.as_mut().map(|s| s.stale.take()) {
            None => self.delete_stale(groups, None),
            Some(Some(records)) => self.delete_stale(groups, Some(&records)),
            Some(None) => {}
        }
        let mut new_tasks = Vec::new();
        for &g in groups {
            new_tasks.extend(self.group_tasks(g));
        }
        self.predict(&new_tasks);
        stats::mark("decide");
        // The scheduler gets only what may run: a task known to be up to date, none of whose
        // producers will run, is skipped as it stands.
        for &g in groups {
            let (skipped, maybe): (Vec<TaskId>, Vec<TaskId>) = self
                .group_tasks(g)
                .into_iter()
                .partition(|t| self.prediction[t.index()] == Prediction::Decided(Decision::Skip));
            for t in skipped {
                self.explain(t, &Decision::Skip);
                self.note(t, trace::Decision::Skipped { cutoff: false });
                self.state[t.index()] = TaskState::Skipped;
            }
            // The headers of what may run, found before anything runs, order it.
            let scanned = self.scan_tasks(&maybe);
            let plan = match checked.remove(&g) {
                Some((all, plan)) if all == maybe && !scanned => plan,
                _ => self.plan(g, &maybe)?,
            };
            self.plans[g] = Some(plan);
        }
        // The decisions read their records: the store's pages need not stay resident for the run.
        self.store.release_pages();
        stats::mark("plan");
        self.progress.set_total(self.expected);
        Ok(true)
    }

    /// Deletes the stale outputs of these groups (see [`clean::delete_stale`]) and forgets the
    /// records of tasks that no longer exist: of every task record, or of those at these places
    /// in the store whose keys have these digests.
    pub(super) fn delete_stale(&mut self, groups: &[GroupId], only: Option<&[(usize, [u8; 16])]>) {
        let records: Box<dyn Iterator<Item = _>> = match only {
            None => Box::new(self.store.tasks()),
            Some(places) => Box::new(places.iter().filter_map(|(at, digest)| {
                self.store
                    .any_task_at(*at)
                    .filter(|v| crate::graph_cache::key_digest(v.key) == *digest)
            })),
        };
        let stale = clean::delete_stale(
            self.project,
            &self.expansion,
            records,
            groups,
            (!self.opts.dry_run).then_some(self.out_canon.as_path()),
            self.progress,
        );
        for p in &stale.deleted {
            if let Some(f) = self.expansion.graph.lookup(p)
                && let Some(state) = self.files.get_mut(f.index())
            {
                *state = FileState {
                    stat: None,
                    hash: Some(MISSING),
                    recorded_at: i64::MIN,
                    checked: true,
                };
            }
        }
        self.append(
            stale
                .forget
                .into_iter()
                .map(|k| (Slot::None, Record::Forget(k)))
                .collect(),
        );
    }
}
