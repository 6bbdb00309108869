//! The dirty check, in the role of ninja's DependencyScan: every file's state (stat in parallel,
//! hash only what the store cannot vouch for), each task's signature, the decision whether it must
//! run and why, and the prediction of what will run before anything does.

use super::Build;
use super::append::file_record;
use crate::explain::Reason;
use crate::filestate::{self, Hash, MISSING, Recorded, Stat};
use crate::paths::absolute;
use crate::signature;
use crate::stats;
use crate::store::TaskView;
use crate::ids::{FileId, TaskId};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Decision {
    Skip,
    Run(Reason),
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FileState {
    pub(super) stat: Option<Stat>,
    pub(super) hash: Option<Hash>,
    /// The file system's time when `hash` was taken (for the racy-timestamp rule).
    pub(super) recorded_at: i64,
    pub(super) checked: bool,
}

/// What was learned before running: a decision valid while no producer of the task runs.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Prediction {
    Unknown,
    Decided(Decision),
    /// A producer is expected to run.
    Downstream,
}

impl Build<'_> {
    /// Stats every file not yet checked (in parallel) and hashes those whose recorded hash cannot
    /// be trusted; newly hashed files are recorded.
    pub(super) fn check_files(&mut self) {
        let n = self.expansion.graph.file_count();
        self.files.resize(n, FileState::default());
        let todo: Vec<FileId> = (0..n as u32)
            .map(FileId)
            .filter(|f| !self.files[f.index()].checked)
            .collect();
        let root = &self.project.root;
        let graph = &self.expansion.graph;
        let stats = match self.seeded.as_mut() {
            // Taken just before, for the snapshot: not again, and not kept twice.
            Some(seeded) if todo.len() == n && seeded.stats.len() == n => {
                std::mem::take(&mut seeded.stats)
            }
            Some(seeded) if todo.iter().all(|f| f.index() < seeded.stats.len()) => {
                todo.iter().map(|f| seeded.stats[f.index()]).collect()
            }
            _ => {
                let paths: Vec<&str> = todo.iter().map(|&f| graph.path(f)).collect();
                self.disk.stat_all(root, &paths)
            }
        };
        // Where each new file's record is: from the snapshot, or found in the store.
        self.rec.files.resize(n, None);
        for &f in &todo {
            self.rec.files[f.index()] = match &self.seeded {
                Some(s) => s.records.files.get(f.index()).copied().flatten(),
                None => self.store.file_offset(graph.path(f)),
            };
        }
        // What a decision may need: the files of tasks the store remembers that may run (with a
        // snapshot, those not known to be up to date and everything downstream of them). A task
        // with no record runs whatever its inputs hold; its worker hashes them after the run.
        stats::mark("check: offsets");
        self.maybe = self.may_run();
        stats::mark("check: may run");
        let mut needed = vec![false; n];
        for t in graph.task_ids() {
            if self.maybe[t.index()] && self.rec.tasks[t.index()].is_some() {
                let task = graph.task(t);
                for f in task
                    .reads()
                    .chain(self.implicit[t.index()].iter().copied())
                    .chain(task.outputs.iter().copied())
                    .chain(task.depfile)
                {
                    needed[f.index()] = true;
                }
            }
        }
        for (i, &f) in todo.iter().enumerate() {
            let seeded_at = match &self.seeded {
                Some(s) if !needed[f.index()] => s.recorded_at.get(f.index()).copied(),
                _ => None,
            };
            let recorded = match (stats[i], seeded_at) {
                (Some(stat), None) => self.recorded_file(f).filter(|r| r.trusted_for(&stat)),
                _ => None,
            };
            let state = &mut self.files[f.index()];
            state.checked = true;
            state.stat = stats[i];
            match (stats[i], seeded_at) {
                (None, _) => state.hash = Some(MISSING),
                // Nothing that may run reads it: its record is read only if asked for.
                (Some(_), Some(at)) => state.recorded_at = at,
                (Some(_), None) => {
                    if let Some(rec) = recorded {
                        state.hash = Some(rec.hash);
                        state.recorded_at = rec.recorded_at;
                    }
                }
            }
        }
        let to_hash: Vec<FileId> = (0..n as u32)
            .map(FileId)
            .filter(|f| {
                needed[f.index()]
                    && self.files[f.index()].stat.is_some()
                    && self.files[f.index()].hash.is_none()
            })
            .collect();
        // The file records are read, one here and one there across the store.
        self.store.release_pages();
        if to_hash.is_empty() {
            return;
        }
        let recorded_at = self.clock.as_ref().map_or(i64::MIN, |c| c.now());
        let disk = self.disk;
        let hashes = filestate::par_map(&to_hash, |&f| {
            disk.hash(&absolute(root, graph.path(f))).ok()
        });
        let mut records = Vec::new();
        for (&f, hash) in to_hash.iter().zip(hashes) {
            let state = &mut self.files[f.index()];
            match (hash, state.stat) {
                (Some(hash), Some(stat)) => {
                    state.hash = Some(hash);
                    state.recorded_at = recorded_at;
                    records.push(file_record(graph, f, stat, hash, recorded_at));
                }
                _ => {
                    // Unreadable: treat as missing, so that whatever reads it runs (and says why).
                    state.hash = Some(MISSING);
                }
            }
        }
        self.append(records);
    }

    /// The store's record of a task.
    pub(super) fn record(&self, t: TaskId) -> Option<TaskView<'_>> {
        let at = (*self.rec.tasks.get(t.index())?)?;
        self.store.task_at(at, self.expansion.graph.key(t))
    }

    /// The store's record of a file's hash.
    pub(super) fn recorded_file(&self, f: FileId) -> Option<Recorded> {
        let at = (*self.rec.files.get(f.index())?)?;
        self.store.file_at(at, self.expansion.graph.path(f))
    }

    pub(super) fn hash(&self, f: FileId) -> Hash {
        let Some(state) = self.files.get(f.index()) else {
            return MISSING;
        };
        match (state.hash, state.stat) {
            (Some(h), _) => h,
            // Not looked up yet (a build seeded by its snapshot looks up only what may run).
            (None, Some(stat)) => self
                .recorded_file(f)
                .filter(|r| r.trusted_for(&stat))
                .map_or(MISSING, |r| r.hash),
            (None, None) => MISSING,
        }
    }

    /// The files whose content a task's record covers as outputs: its outputs and its depfile.
    pub(super) fn recorded_outputs(&self, t: TaskId) -> Vec<FileId> {
        let task = self.expansion.graph.task(t);
        task.outputs.iter().copied().chain(task.depfile).collect()
    }

    pub(super) fn signature(&self, t: TaskId) -> Hash {
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        signature::signature(
            self.command_part[t.index()].get_or_init(|| signature::command_part(task)),
            task.reads().map(|f| (graph.path(f), self.hash(f))),
            self.implicit[t.index()]
                .iter()
                .map(|&f| (graph.path(f), self.hash(f))),
        )
    }

    /// Whether task `t` must run, judged on the files as they are now.
    pub(super) fn decide(&self, t: TaskId) -> Decision {
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        if task.always {
            return Decision::Run(Reason::Always);
        }
        let Some(rec) = self.record(t) else {
            return Decision::Run(Reason::New);
        };
        if rec.signature == MISSING {
            return Decision::Run(Reason::Untrusted);
        }
        if rec.signature == signature::FAILED {
            return Decision::Run(Reason::Failed);
        }
        let outputs = self.recorded_outputs(t);
        if outputs.len() != rec.output_count()
            || outputs
                .iter()
                .zip(rec.outputs())
                .any(|(&f, (p, _))| graph.path(f) != p)
        {
            return Decision::Run(Reason::OutputsChanged);
        }
        for (&f, (path, hash)) in outputs.iter().zip(rec.outputs()) {
            let now = self.hash(f);
            if now == MISSING {
                return Decision::Run(Reason::OutputMissing(path.to_string()));
            }
            if now != hash {
                return Decision::Run(Reason::OutputChanged(path.to_string()));
            }
        }
        if self.signature(t) == rec.signature {
            return Decision::Skip;
        }
        Decision::Run(self.what_changed(t, &rec))
    }

    /// The first difference between a task and its record, for saying why it runs. The record's
    /// details (commands, env values, input hashes) are read only here.
    pub(super) fn what_changed(&self, t: TaskId, view: &TaskView) -> Reason {
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        let Some(rec) = self.store.details(view) else {
            return Reason::InputsChanged;
        };
        let implicit_changed = || {
            self.implicit[t.index()]
                .iter()
                .zip(&rec.implicit)
                .find(|(f, hash)| self.hash(**f) != **hash)
                .map(|(&f, _)| Reason::ImplicitChanged(graph.path(f).to_string()))
        };
        // A changed env value is named before the command it changes.
        for (k, v) in task.env.iter() {
            let old = rec.env.iter().find(|(rk, _)| rk == k).map(|(_, rv)| rv);
            if old != Some(v) {
                return Reason::EnvChanged {
                    name: k.clone(),
                    old: old.cloned(),
                    new: v.clone(),
                };
            }
        }
        if task.commands != rec.commands {
            return Reason::CommandChanged {
                old: rec.commands.clone(),
                new: task.commands.clone(),
            };
        }
        let reads: Vec<FileId> = task.reads().collect();
        if reads.len() != rec.inputs.len() {
            return Reason::InputsChanged;
        }
        for (&f, (path, hash)) in reads.iter().zip(&rec.inputs) {
            if graph.path(f) != path {
                return Reason::InputsChanged;
            }
            if self.hash(f) != *hash {
                return Reason::InputChanged(path.clone());
            }
        }
        implicit_changed().unwrap_or(Reason::InputsChanged)
    }

    /// By task: whether it may run. Without a snapshot, every task; with one, those it does not
    /// know to be up to date and every task downstream of them.
    pub(super) fn may_run(&self) -> Vec<bool> {
        let n = self.expansion.graph.tasks().len();
        let Some(seeded) = &self.seeded else {
            return vec![true; n];
        };
        let mut maybe: Vec<bool> = (0..n)
            .map(|t| !seeded.clean.get(t).copied().unwrap_or(false))
            .collect();
        let mut stack: Vec<u32> = (0..n as u32).filter(|&t| maybe[t as usize]).collect();
        if stack.is_empty() {
            return maybe;
        }
        let mut edges: Vec<(u32, u32)> = Vec::new();
        for t in self.expansion.graph.task_ids() {
            self.each_producer(t, |p| edges.push((p.0, t.0)));
        }
        let first = by_producer(&mut edges, n);
        while let Some(t) = stack.pop() {
            for &(_, c) in &edges[first[t as usize]..first[t as usize + 1]] {
                if !std::mem::replace(&mut maybe[c as usize], true) {
                    stack.push(c);
                }
            }
        }
        maybe
    }

    /// Decides every new task as far as can be known before running anything, in dependency
    /// order, and counts those expected to run.
    pub(super) fn predict(&mut self, tasks: &[TaskId]) {
        // A task that cannot run is up to date, and so is everything upstream of it.
        let (tasks, skipped): (Vec<TaskId>, Vec<TaskId>) = tasks
            .iter()
            .partition(|t| self.maybe.get(t.index()).copied().unwrap_or(true));
        for t in skipped {
            self.prediction[t.index()] = Prediction::Decided(Decision::Skip);
        }
        crate::stats::count("tasks decided", tasks.len() as u64);
        let tasks = &tasks[..];
        // Dense, allocation-light: batch positions by task, producer -> consumer edges in one
        // sorted list, Kahn's algorithm over it.
        let mut local = vec![u32::MAX; self.expansion.graph.tasks().len()];
        for (i, &t) in tasks.iter().enumerate() {
            local[t.index()] = i as u32;
        }
        let mut pending = vec![0u32; tasks.len()];
        let mut edges: Vec<(u32, u32)> = Vec::new();
        for (i, &t) in tasks.iter().enumerate() {
            self.each_producer(t, |p| {
                let j = local[p.index()];
                if j != u32::MAX {
                    edges.push((j, i as u32));
                    pending[i] += 1;
                }
            });
        }
        let first = by_producer(&mut edges, tasks.len());
        let mut ready: Vec<u32> = (0..tasks.len() as u32)
            .filter(|&i| pending[i as usize] == 0)
            .collect();
        let mut visited = 0;
        while let Some(i) = ready.pop() {
            visited += 1;
            let t = tasks[i as usize];
            let mut downstream = false;
            self.each_producer(t, |p| {
                downstream |= matches!(
                    self.prediction[p.index()],
                    Prediction::Downstream | Prediction::Decided(Decision::Run(_))
                );
            });
            let known_clean = self
                .seeded
                .as_ref()
                .is_some_and(|s| s.clean.get(t.index()) == Some(&true));
            let prediction = if downstream {
                Prediction::Downstream
            } else if known_clean {
                Prediction::Decided(Decision::Skip)
            } else {
                Prediction::Decided(self.decide(t))
            };
            if prediction != Prediction::Decided(Decision::Skip) {
                self.expected += 1;
            }
            self.prediction[t.index()] = prediction;
            for &(_, c) in &edges[first[i as usize]..first[i as usize + 1]] {
                pending[c as usize] -= 1;
                if pending[c as usize] == 0 {
                    ready.push(c);
                }
            }
        }
        // A cycle through stale implicit dependencies leaves tasks unvisited: they will be decided
        // when they are reached.
        if visited < tasks.len() {
            for &t in tasks {
                if self.prediction[t.index()] == Prediction::Unknown {
                    self.prediction[t.index()] = Prediction::Downstream;
                    self.expected += 1;
                }
            }
        }
    }

    /// Calls `f` with the producer of every file `t` follows (reads, or runs after), declared or
    /// from its last depfile (a producer may come more than once).
    pub(super) fn each_producer(&self, t: TaskId, mut f: impl FnMut(TaskId)) {
        let graph = &self.expansion.graph;
        for file in graph
            .task(t)
            .follows()
            .chain(self.implicit[t.index()].iter().copied())
        {
            if let Some(p) = graph.producer(file)
                && p != t
            {
                f(p);
            }
        }
    }

    /// The decision for a task the scheduler offers now.
    pub(super) fn decide_now(&self, t: TaskId) -> Decision {
        let rebuilt = self.rebuilt_input(t);
        if let (true, Some(f)) = (self.opts.dry_run, rebuilt) {
            return Decision::Run(Reason::DependencyRebuilt(
                self.expansion.graph.path(f).to_string(),
            ));
        }
        match &self.prediction[t.index()] {
            Prediction::Decided(d) if rebuilt.is_none() => d.clone(),
            _ => self.decide(t),
        }
    }

    /// A file `t` reads (declared or from its last depfile) whose producer ran in this build.
    pub(super) fn rebuilt_input(&self, t: TaskId) -> Option<FileId> {
        let graph = &self.expansion.graph;
        graph
            .task(t)
            .reads()
            .chain(self.implicit[t.index()].iter().copied())
            .find(|&f| {
                graph
                    .producer(f)
                    .is_some_and(|p| p != t && self.ran[p.index()])
            })
    }
}

/// Sorts producer -> consumer `edges` (over `n` nodes) by producer and returns where each
/// producer's edges start: node `p`'s consumers are `edges[first[p]..first[p + 1]]`.
pub(super) fn by_producer(edges: &mut [(u32, u32)], n: usize) -> Vec<usize> {
    edges.sort_unstable();
    let mut first = vec![0usize; n + 1];
    for &(p, _) in edges.iter() {
        first[p as usize + 1] += 1;
    }
    for i in 0..n {
        first[i + 1] += first[i];
    }
    first
}
