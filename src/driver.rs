//! Drives one build: expand the generators, delete stale outputs, learn every file's state (stat in
//! parallel, hash only what the store cannot vouch for), predict what will run, then run the groups
//! in order. This thread owns all build state and all output; the runner's workers only run
//! commands and report back.
//!
//! Approach: a group's tasks are planned (constraints) and handed to a scheduler. Each task the
//! scheduler offers is decided at that moment: its signature over the current content of what it
//! reads is compared with the store's record (and its outputs with the recorded hashes), so a
//! rebuilt input with unchanged bytes lets its consumers skip (early cutoff). A task that runs is
//! recorded as soon as it finishes. A failure stops the starting of new tasks, or with keep-going
//! blocks only what depends on it, later groups included. A signal stops everything cleanly; the
//! loop never returns early while commands run.

use crate::clean;
use crate::constraints::{self, TaskFacts};
use crate::error::Error;
use crate::explain::Reason;
use crate::filestate::{self, FsClock, Hash, MISSING, Recorded, Stat};
use crate::generator::Expansion;
use crate::ids::{FileId, GroupId, TaskId};
use crate::interrupt;
use crate::lock::BuildLock;
use crate::manifest::PostMode;
use crate::paths;
use crate::paths::absolute;
use crate::progress::{Progress, TaskLine};
use crate::project::Project;
use crate::runner::{self, Exit, Finished, Job, Runner};
use crate::scheduler::{NodeId, PlanNode, Scheduler};
use crate::signature;
use crate::snapshot::{self, FileMark, RecordOffsets, Snapshot};
use crate::stats;
use crate::store::{Record, Store, TaskRecord, TaskView};
use crate::workspace::{Loaded, Workspace};
use crossbeam_channel::{Receiver, never, select};
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// How long commands may take to end after an interrupt is passed on before they are killed.
const KILL_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub jobs: usize,
    pub keep_going: bool,
    pub dry_run: bool,
    pub verbose: bool,
    /// Generator names or output paths; empty for everything.
    pub targets: Vec<String>,
    /// Do not wait for another kiln holding the lock.
    pub no_wait: bool,
    /// Print why each task that runs must run (on stdout).
    pub explain: bool,
    /// `kiln explain`: also say which tasks are up to date, and end with a verdict on stdout.
    pub explain_targets: bool,
    /// How long a task's commands may run before they are killed and the task fails.
    pub timeout: Option<std::time::Duration>,
}

/// The state a task ended in (waf's task states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Not decided yet, or never reached.
    NotRun,
    /// Exited 0 without making a declared output.
    Missing,
    /// A command failed or was killed.
    Crashed,
    /// kiln could not run it (no shell, an unreadable depfile, an output through a symlink).
    Exception,
    /// Up to date.
    Skipped,
    Success,
}

#[derive(Debug, Clone, PartialEq)]
enum Decision {
    Skip,
    Run(Reason),
}

#[derive(Debug, Clone, Copy, Default)]
struct FileState {
    stat: Option<Stat>,
    hash: Option<Hash>,
    /// The file system's time when `hash` was taken (for the racy-timestamp rule).
    recorded_at: i64,
    checked: bool,
}

/// What was learned before running: a decision valid while no producer of the task runs.
#[derive(Debug, Clone, PartialEq)]
enum Prediction {
    Unknown,
    Decided(Decision),
    /// A producer is expected to run.
    Downstream,
}

/// The store record of file `f`'s hash, and the file it is about.
fn file_record(
    graph: &crate::graph::Graph,
    f: FileId,
    stat: Stat,
    hash: Hash,
    recorded_at: i64,
) -> (Slot, Record) {
    let rec = Recorded {
        stat,
        hash,
        recorded_at,
    };
    (Slot::File(f), Record::File(graph.path(f).to_string(), rec))
}

/// Which task or file a record appended to the store is about.
enum Slot {
    Task(TaskId),
    Forget(TaskId),
    File(FileId),
    None,
}

/// What the snapshot of the last build tells a build whose graph came from the cache.
struct Seeded {
    /// Every graph file's stat, taken at the start of this build.
    stats: Vec<Option<Stat>>,
    /// By task: known to be up to date.
    clean: Vec<bool>,
    /// By file: when its hash was taken, if it is as the snapshot knew it.
    recorded_at: Vec<i64>,
    /// By task: the implicit dependencies its record names.
    implicit: Vec<Vec<FileId>>,
    /// Where each task's and file's record is in the store.
    records: RecordOffsets,
}

/// Builds the workspace's project. Returns the exit status.
pub fn build(
    ws: &Workspace,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
) -> Result<i32, Error> {
    let started = Instant::now();
    let mut fresh = false;
    loop {
        let file = ws.read_build_file()?;
        let cached = if fresh { None } else { ws.open_cache(&file) };
        let mut lock = None;
        let mut seen = None;
        if let Some(c) = &cached {
            // The cache lives in kiln's state directory: lock it, then see whether the snapshot
            // of the last build settles everything.
            lock = match lock_state(&file.state_dir, &c.out, opts, progress, signals)? {
                Ok(l) => Some(l),
                Err(code) => return Ok(code),
            };
            if opts.targets.is_empty() {
                match look(c, &file.state_dir) {
                    Look::UpToDate => {
                        for w in &c.warnings {
                            progress.message(&format!("warning: {w}"));
                        }
                        stats::mark("decide");
                        finish_unchanged(progress, opts, started);
                        return Ok(0);
                    }
                    Look::Seen(s) => seen = Some(s),
                    Look::Unknown => {}
                }
            }
        }
        let loaded = ws.load_for_build(file, cached, opts.dry_run)?;
        match build_loaded(loaded, lock, seen, opts, progress, signals, started)? {
            Some(code) => return Ok(code),
            // The cached graph names a source that is gone: parse the build file after all.
            None => fresh = true,
        }
    }
}

fn finish_unchanged(progress: &mut dyn Progress, opts: &BuildOptions, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    progress.done(&if opts.dry_run {
        format!("'build' dry run: 0 tasks would run ({secs:.3}s)")
    } else {
        format!("'build' finished successfully ({secs:.3}s)")
    });
}

/// What the snapshot of the last build says, with every file's stat now.
struct Seen {
    snapshot: Snapshot,
    stats: Vec<Option<Stat>>,
}

enum Look {
    /// Every task was up to date, the store is as it was, and no file has changed.
    UpToDate,
    /// Something changed, or some task was not up to date: the tasks must be looked at.
    Seen(Seen),
    /// No snapshot of this graph, or the store has changed since.
    Unknown,
}

/// Compares every file of the cached graph with the snapshot of the last build.
fn look(cache: &crate::cache::Opened, state_dir: &std::path::Path) -> Look {
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

/// Takes the build directory's lock, waiting (with a message) unless `--no-wait`. `Err(code)`
/// when a signal ended the wait.
fn lock_state(
    state_dir: &std::path::Path,
    out: &str,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
) -> Result<Result<BuildLock, i32>, Error> {
    crate::lock::take(state_dir, out, !opts.no_wait, progress, signals)
}

/// Builds a loaded project; `None` when its cached graph turned out to be stale.
fn build_loaded(
    loaded: Loaded,
    mut lock: Option<BuildLock>,
    seen: Option<Seen>,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
    started: Instant,
) -> Result<Option<i32>, Error> {
    let Loaded {
        project: owned_project,
        expansion: x,
        from_cache,
        cache_key,
    } = loaded;
    let project = &owned_project;
    if project.is_empty() {
        progress.message(&format!(
            "nothing to do: {} declares no generators",
            project.source.name
        ));
        progress.done(&format!(
            "'build' finished successfully ({:.3}s)",
            started.elapsed().as_secs_f64()
        ));
        return Ok(Some(0));
    }
    let groups = project.groups.len();
    let first_lazy = match project.post {
        PostMode::AtOnce => groups,
        PostMode::Lazy => 1,
    };
    for w in &x.warnings {
        progress.message(&format!("warning: {w}"));
    }

    // kiln's state: created, locked and loaded only once the build file is known to be good.
    let state_dir = project.state_dir();
    let out_abs = project.out_dir();
    // Never a directory kiln did not make: refused before anything runs or is deleted.
    crate::outdir::prepare(&out_abs, &project.out, opts.dry_run)?;
    let has_state = state_dir.is_dir();
    if lock.is_none() && (!opts.dry_run || has_state) {
        if !opts.dry_run {
            std::fs::create_dir_all(&state_dir)
                .map_err(|e| Error::io(format!("cannot create {}", state_dir.display()), e))?;
        }
        lock = match lock_state(&state_dir, &project.out, opts, progress, signals)? {
            Ok(l) => Some(l),
            Err(code) => return Ok(Some(code)),
        };
    }
    let store_path = state_dir.join("store");

    // The snapshot's way: with the store as the last build left it, every file's stat decides
    // which tasks are known to be up to date.
    let seeded = seen
        .filter(|s| from_cache == Some(s.snapshot.graph) && opts.targets.is_empty())
        .and_then(|Seen { snapshot, stats }| {
            let implicit = snapshot.implicit()?;
            let unchanged: Vec<bool> = stats
                .iter()
                .enumerate()
                .map(|(i, s)| snapshot.mark(i).unchanged(s.as_ref()))
                .collect();
            // A file as the snapshot knew it keeps the moment its hash was taken.
            let recorded_at: Vec<i64> = (0..stats.len())
                .map(|i| match snapshot.mark(i) {
                    FileMark::Present { recorded_at, .. } if unchanged[i] => recorded_at,
                    _ => i64::MIN,
                })
                .collect();
            let clean: Vec<bool> = x
                .graph
                .task_ids()
                .map(|t| {
                    let task = x.graph.task(t);
                    snapshot.clean.get(t.index()).copied().unwrap_or(false)
                        && task
                            .reads()
                            .chain(implicit.get(t.index()).into_iter().flatten().copied())
                            .chain(task.outputs.iter().copied())
                            .chain(task.depfile)
                            .all(|f| unchanged[f.index()])
                })
                .collect();
            Some(Seeded {
                stats,
                recorded_at,
                clean,
                implicit,
                records: snapshot.records(),
            })
        });
    if seeded.as_ref().is_some_and(|s| s.clean.iter().all(|&c| c)) {
        stats::mark("decide");
        finish_unchanged(progress, opts, started);
        return Ok(Some(0));
    }
    let unindexed = match &seeded {
        Some(_) if !opts.dry_run => Store::open_unindexed(&store_path),
        _ => None,
    };
    // Without the store the snapshot vouched for, the record offsets it gave mean nothing.
    let seeded = seeded.filter(|_| opts.dry_run || unindexed.is_some());
    let (store, warnings) = if let Some(store) = unindexed {
        (store, Vec::new())
    } else if !opts.dry_run {
        Store::open_or_reset(&store_path)
    } else if has_state {
        Store::open(&store_path, false).unwrap_or_else(|e| {
            (
                Store::empty(&store_path),
                vec![format!("kiln's state cannot be read ({e})")],
            )
        })
    } else {
        (Store::empty(&store_path), Vec::new())
    };
    for w in warnings {
        progress.message(&format!("warning: {w}"));
    }
    stats::mark("load store");
    let clock = if opts.dry_run {
        None
    } else {
        Some(Arc::new(FsClock::open(&state_dir.join("clock")).map_err(
            |e| Error::io("cannot open kiln's clock file", e),
        )?))
    };
    let out_canon = if opts.dry_run {
        out_abs.canonicalize().unwrap_or(out_abs.clone())
    } else {
        out_abs
            .canonicalize()
            .map_err(|e| Error::io(format!("cannot resolve {}", out_abs.display()), e))?
    };

    let mut b = Build {
        project,
        opts,
        x,
        store,
        clock,
        progress,
        files: Vec::new(),
        command_part: Vec::new(),
        rec: RecordOffsets::default(),
        maybe: Vec::new(),
        implicit: Vec::new(),
        state: Vec::new(),
        prediction: Vec::new(),
        ran: Vec::new(),
        selected: None,
        poisoned: HashSet::new(),
        plans: vec![None; groups],
        started_count: 0,
        spared: 0,
        expected: 0,
        failed: Vec::new(),
        not_run: 0,
        interrupted: None,
        interrupted_at: None,
        out_canon,
        state_dir,
        signal_count: 0,
        graph_id: from_cache,
        cache_key,
        seeded,
        checked_dirs: HashSet::new(),
    };
    // The commands inherit a lock of their own, given up when the build ends normally.
    let commands_lock = match &lock {
        Some(l) if !opts.dry_run => Some(
            l.for_commands()
                .map_err(|e| Error::io("cannot lock the build directory", e))?,
        ),
        _ => None,
    };
    let result = b.run(signals, first_lazy, started);
    drop(commands_lock);
    // The store is written out while the lock is held; the large tables are freed on a thread of
    // their own, so that a finished build need not wait for that.
    if let Err(e) = b.store.flush_details() {
        b.progress
            .message(&format!("warning: cannot record kiln's state: {e}"));
    }
    let Build {
        x,
        store,
        files,
        implicit,
        rec,
        ..
    } = b;
    drop(lock);
    crate::drop_in_background((owned_project, x, store, files, implicit, rec));
    result
}

struct Build<'a> {
    project: &'a Project,
    opts: &'a BuildOptions,
    x: Expansion,
    store: Store,
    clock: Option<Arc<FsClock>>,
    progress: &'a mut dyn Progress,
    files: Vec<FileState>,
    /// By task: the hash of its commands and env values, taken when first needed.
    command_part: Vec<OnceCell<Hash>>,
    /// Where each task's and each file's latest record is in the store.
    rec: RecordOffsets,
    /// By task: may run in this build (see [`Build::may_run`]).
    maybe: Vec<bool>,
    /// The implicit dependencies each task's record names.
    implicit: Vec<Vec<FileId>>,
    state: Vec<TaskState>,
    prediction: Vec<Prediction>,
    /// Tasks that ran (or, in a dry run, would run) in this build.
    ran: Vec<bool>,
    selected: Option<Vec<bool>>,
    /// Outputs of tasks that failed or did not run: their consumers do not run.
    poisoned: HashSet<FileId>,
    plans: Vec<Option<Vec<PlanNode>>>,
    /// Tasks started (in a dry run, that would start).
    started_count: usize,
    /// Tasks expected to run that early cutoff spared.
    spared: usize,
    /// Tasks expected to run, as far as known: the `N` of `[n/N]`.
    expected: usize,
    /// Tasks that failed, with why.
    failed: Vec<(TaskId, String)>,
    not_run: usize,
    interrupted: Option<i32>,
    interrupted_at: Option<Instant>,
    out_canon: PathBuf,
    state_dir: PathBuf,
    signal_count: usize,
    /// What to record in the graph cache at the end of the build.
    cache_key: Option<crate::cache::Key>,
    /// The id of the graph cache the graph came from, if it came from the cache (and may prove
    /// stale).
    graph_id: Option<crate::cache::GraphId>,
    /// From the snapshot of the last build.
    seeded: Option<Seeded>,
    /// Output directories made and checked in this build.
    checked_dirs: HashSet<String>,
}

impl Build<'_> {
    fn run(
        &mut self,
        signals: &Receiver<i32>,
        first_lazy: usize,
        started: Instant,
    ) -> Result<Option<i32>, Error> {
        let groups = self.project.groups.len();
        let expanded: Vec<GroupId> = (0..first_lazy.min(groups)).collect();
        if !self.after_expansion(&expanded)? {
            return Ok(None);
        }
        let runner = (!self.opts.dry_run).then(|| {
            Runner::new(
                self.opts.jobs,
                runner::Config {
                    cwd: self.project.root.clone(),
                    scratch: self.state_dir.join("tmp"),
                    clock: self.clock.clone(),
                    memory_limit: 4 << 20,
                    logs: self.state_dir.join("logs"),
                    timeout: self.opts.timeout,
                },
            )
        });

        for g in 0..groups {
            if self.interrupted.is_some() || (!self.failed.is_empty() && !self.opts.keep_going) {
                self.count_unreached(g);
                continue;
            }
            if !self.x.expanded[g] {
                if let Err(e) = self.x.expand_group(self.project, g) {
                    if !self.opts.dry_run {
                        return Err(e);
                    }
                    // What the earlier groups would make is not there yet: the dry run ends.
                    self.progress.message(&format!(
                        "note: the dry run stops before group `{}`, which cannot be expanded until the earlier groups have run:\n{}",
                        self.project.groups[g].name,
                        e.to_string().trim_end()
                    ));
                    break;
                }
                for w in std::mem::take(&mut self.x.warnings) {
                    self.progress.message(&format!("warning: {w}"));
                }
                self.after_expansion(&[g])?;
            }
            self.run_group(g, runner.as_ref(), signals);
        }
        drop(runner);
        stats::mark("run");
        let code = self.summary(started);
        self.save_cache();
        Ok(Some(code))
    }

    /// Sizes the per-task and per-file tables, deletes stale outputs of the new groups, learns the
    /// new files' states, plans the groups and predicts what will run.
    /// Returns false when the graph came from the cache and names a source that no longer exists
    /// (nothing has been deleted yet: the build starts again from the build file).
    fn after_expansion(&mut self, groups: &[GroupId]) -> Result<bool, Error> {
        let tasks = self.x.graph.tasks().len();
        let first_new = self.command_part.len();
        for t in first_new..tasks {
            self.command_part.push(OnceCell::new());
            let key = self.x.graph.key(TaskId(t as u32));
            let at = match self.seeded.as_ref() {
                Some(s) => s.records.tasks.get(t).copied().flatten(),
                None => self.store.task_offset(key),
            };
            self.rec.tasks.push(at);
            // From the snapshot where it vouches for the store, else from the store.
            let ids = match self.seeded.as_mut().and_then(|s| s.implicit.get_mut(t)) {
                Some(ids) => std::mem::take(ids),
                None => {
                    let implicit: Vec<String> = self
                        .store
                        .task(self.x.graph.key(TaskId(t as u32)))
                        .map(|r| r.implicit().map(|(p, _)| p.to_string()).collect())
                        .unwrap_or_default();
                    implicit.iter().map(|p| self.x.graph.file(p)).collect()
                }
            };
            self.implicit.push(ids);
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
        // With a snapshot, the last build ran with this very graph and removed what was stale
        // then; the store has not changed since.
        if self.seeded.is_none() {
            self.delete_stale(groups);
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
                self.state[t.index()] = TaskState::Skipped;
            }
            let plan = match checked.remove(&g) {
                Some((all, plan)) if all == maybe => plan,
                _ => self.plan(g, &maybe)?,
            };
            self.plans[g] = Some(plan);
        }
        stats::mark("plan");
        self.progress.set_total(self.expected);
        Ok(true)
    }

    /// The scheduler's plan for `tasks` of group `g`.
    fn plan(&self, g: GroupId, tasks: &[TaskId]) -> Result<Vec<PlanNode>, Error> {
        let facts = TaskFacts {
            implicit: &|t| self.implicit[t.index()].clone(),
            weight: &|t| self.record(t).map_or(1, |r| r.duration_ms + 1),
            blocked: &|_| false,
        };
        constraints::plan_group(self.project, &self.x.graph, g, tasks, &facts)
    }

    /// Records the graph and how this build ended, for the next build (at-once projects only).
    fn save_cache(&mut self) {
        let Some(key) = self.cache_key.take() else {
            return;
        };
        if self.opts.dry_run || self.project.post != PostMode::AtOnce || !self.x.complete() {
            return;
        }
        let graph = &self.x.graph;
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
        let clean: Vec<bool> = graph
            .task_ids()
            .map(|t| match self.state[t.index()] {
                _ if graph.task(t).always => false,
                TaskState::Skipped => true,
                TaskState::Success => self.record(t).is_some_and(|r| r.signature != MISSING),
                _ => false,
            })
            .collect();
        self.rec.files.resize(graph.file_count(), None);
        // The graph is written only when it was not read from the cache; the snapshot always.
        let id = match self.graph_id {
            Some(id) => Ok(id),
            None => crate::cache::save(&self.state_dir.join("graph"), &key, self.project, &self.x),
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

    /// Whether a task reads a file that no task makes and that does not exist: a source named by
    /// plain path that has gone since the graph was cached.
    fn missing_source(&self) -> bool {
        let graph = &self.x.graph;
        graph.tasks().iter().flat_map(|t| t.reads()).any(|f| {
            graph.producer(f).is_none()
                && self
                    .files
                    .get(f.index())
                    .is_some_and(|s| s.checked && s.stat.is_none())
        })
    }

    /// The selected tasks of a group, in creation order.
    fn group_tasks(&self, g: GroupId) -> Vec<TaskId> {
        self.x
            .graph
            .task_ids()
            .filter(|t| self.x.graph.task(*t).group == g && self.is_selected(*t))
            .collect()
    }

    fn is_selected(&self, t: TaskId) -> bool {
        self.selected
            .as_ref()
            .is_none_or(|s| s.get(t.index()).copied().unwrap_or(false))
    }

    /// `--targets`: the named generators' or outputs' tasks and everything they need. Made again
    /// after every expansion of a lazy group, which may add tasks to the selection.
    fn select_targets(&mut self) -> Result<(), Error> {
        if self.opts.targets.is_empty() {
            return Ok(());
        }
        let project = self.project;
        let mut roots = Vec::new();
        let mut last_group = 0;
        for target in &self.opts.targets {
            if let Some(g) = project.gen_named(target) {
                last_group = last_group.max(project.gens[g].group);
                roots.push(Err(g));
                continue;
            }
            let path = paths::normalize(target);
            // An output path means its producer; a declared target of a group not expanded yet
            // means its generator.
            match self.x.graph.lookup(&path).and_then(|f| {
                self.x.graph.producer(f).map(Ok).or_else(|| {
                    self.x
                        .gen_outputs
                        .iter()
                        .position(|outs| outs.contains(&f))
                        .map(Err)
                })
            }) {
                Some(found) => {
                    let group = match found {
                        Err(g) => project.gens[g].group,
                        Ok(t) => self.x.graph.task(t).group,
                    };
                    last_group = last_group.max(group);
                    roots.push(found);
                }
                // It may be an output of a lazy group not expanded yet: everything before the
                // last group is built, and the selection is made again after each expansion.
                None if !self.x.complete() => last_group = project.groups.len() - 1,
                None => {
                    let names = project.gens.iter().map(|g| g.name.as_str());
                    let mut msg = format!(
                        "unknown target `{target}`: not a generator name nor an output kiln knows"
                    );
                    if let Some(close) = crate::error::did_you_mean(target, names) {
                        msg.push_str(&format!(" (did you mean `{close}`?)"));
                    }
                    return Err(Error::Usage(msg));
                }
            }
        }
        let mut selected = vec![false; self.x.graph.tasks().len()];
        let mut stack: Vec<TaskId> = Vec::new();
        for root in roots {
            match root {
                Err(g) => stack.extend(self.x.gen_tasks[g].iter().copied()),
                Ok(t) => stack.push(t),
            }
        }
        {
            // As waf does: groups before the last one named are built whole (they make what later
            // groups read without naming it: generated headers, files a lazy glob finds).
            stack.extend(
                self.x
                    .graph
                    .task_ids()
                    .filter(|&t| self.x.graph.task(t).group < last_group),
            );
        }
        while let Some(t) = stack.pop() {
            if std::mem::replace(&mut selected[t.index()], true) {
                continue;
            }
            // Declared inputs and the implicit dependencies recorded last time.
            self.each_producer(t, |p| stack.push(p));
        }
        self.selected = Some(selected);
        Ok(())
    }

    /// Stats every file not yet checked (in parallel) and hashes those whose recorded hash cannot
    /// be trusted; newly hashed files are recorded.
    fn check_files(&mut self) {
        let n = self.x.graph.file_count();
        self.files.resize(n, FileState::default());
        let todo: Vec<FileId> = (0..n as u32)
            .map(FileId)
            .filter(|f| !self.files[f.index()].checked)
            .collect();
        let root = &self.project.root;
        let graph = &self.x.graph;
        let stats = match &self.seeded {
            // Taken just before, for the snapshot: not again.
            Some(seeded) if todo.iter().all(|f| f.index() < seeded.stats.len()) => {
                todo.iter().map(|f| seeded.stats[f.index()]).collect()
            }
            _ => filestate::stat_all(root, &todo, |&f| graph.path(f)),
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
        if to_hash.is_empty() {
            return;
        }
        let recorded_at = self.clock.as_ref().map_or(i64::MIN, |c| c.now());
        let hashes = filestate::par_map(&to_hash, |&f| {
            filestate::hash_file(&absolute(root, graph.path(f))).ok()
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

    /// Appends records to the store, and notes where each task's and file's latest record is.
    fn append(&mut self, records: Vec<(Slot, Record)>) {
        if self.opts.dry_run {
            return;
        }
        let (slots, records): (Vec<Slot>, Vec<Record>) = records.into_iter().unzip();
        match self.store.append(records) {
            Ok(offsets) => {
                for (slot, at) in slots.into_iter().zip(offsets) {
                    match slot {
                        Slot::Task(t) => self.rec.tasks[t.index()] = Some(at),
                        Slot::Forget(t) => self.rec.tasks[t.index()] = None,
                        Slot::File(f) => {
                            if self.rec.files.len() <= f.index() {
                                self.rec.files.resize(f.index() + 1, None);
                            }
                            self.rec.files[f.index()] = Some(at);
                        }
                        Slot::None => {}
                    }
                }
            }
            Err(e) => self
                .progress
                .message(&format!("warning: cannot record kiln's state: {e}")),
        }
    }

    /// The store's record of a task.
    fn record(&self, t: TaskId) -> Option<TaskView<'_>> {
        let at = (*self.rec.tasks.get(t.index())?)?;
        self.store.task_at(at, self.x.graph.key(t))
    }

    /// The store's record of a file's hash.
    fn recorded_file(&self, f: FileId) -> Option<Recorded> {
        let at = (*self.rec.files.get(f.index())?)?;
        self.store.file_at(at, self.x.graph.path(f))
    }

    fn hash(&self, f: FileId) -> Hash {
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
    fn recorded_outputs(&self, t: TaskId) -> Vec<FileId> {
        let task = self.x.graph.task(t);
        task.outputs.iter().copied().chain(task.depfile).collect()
    }

    fn signature(&self, t: TaskId) -> Hash {
        let graph = &self.x.graph;
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
    fn decide(&self, t: TaskId) -> Decision {
        let graph = &self.x.graph;
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
    fn what_changed(&self, t: TaskId, view: &TaskView) -> Reason {
        let graph = &self.x.graph;
        let task = graph.task(t);
        let implicit_changed = || {
            self.implicit[t.index()]
                .iter()
                .zip(view.implicit())
                .find(|(f, (_, hash))| self.hash(**f) != *hash)
                .map(|(_, (path, _))| Reason::ImplicitChanged(path.to_string()))
        };
        let Some(rec) = self.store.details(view) else {
            return implicit_changed().unwrap_or(Reason::InputsChanged);
        };
        // A changed env value is named before the command it changes.
        for (k, v) in &task.env {
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
    fn may_run(&self) -> Vec<bool> {
        let n = self.x.graph.tasks().len();
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
        for t in self.x.graph.task_ids() {
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
    fn predict(&mut self, tasks: &[TaskId]) {
        // A task that cannot run is up to date, and so is everything upstream of it.
        let (tasks, skipped): (Vec<TaskId>, Vec<TaskId>) = tasks
            .iter()
            .partition(|t| self.maybe.get(t.index()).copied().unwrap_or(true));
        for t in skipped {
            self.prediction[t.index()] = Prediction::Decided(Decision::Skip);
        }
        let tasks = &tasks[..];
        // Dense, allocation-light: batch positions by task, producer -> consumer edges in one
        // sorted list, Kahn's algorithm over it.
        let mut local = vec![u32::MAX; self.x.graph.tasks().len()];
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

    /// Calls `f` with the producer of every file `t` reads, declared or from its last depfile
    /// (a producer may come more than once).
    fn each_producer(&self, t: TaskId, mut f: impl FnMut(TaskId)) {
        let graph = &self.x.graph;
        for file in graph
            .task(t)
            .reads()
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
    fn decide_now(&self, t: TaskId) -> Decision {
        let rebuilt = self.rebuilt_input(t);
        if let (true, Some(f)) = (self.opts.dry_run, rebuilt) {
            return Decision::Run(Reason::DependencyRebuilt(self.x.graph.path(f).to_string()));
        }
        match &self.prediction[t.index()] {
            Prediction::Decided(d) if rebuilt.is_none() => d.clone(),
            _ => self.decide(t),
        }
    }

    /// A file `t` reads (declared or from its last depfile) whose producer ran in this build.
    fn rebuilt_input(&self, t: TaskId) -> Option<FileId> {
        let graph = &self.x.graph;
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

    fn run_group(&mut self, g: GroupId, runner: Option<&Runner>, signals: &Receiver<i32>) {
        let Some(mut nodes) = self.plans[g].take() else {
            return;
        };
        for node in &mut nodes {
            if let Some(t) = node.task {
                let task = self.x.graph.task(t);
                node.blocked = task
                    .reads()
                    .chain(self.implicit[t.index()].iter().copied())
                    .any(|f| self.poisoned.contains(&f));
            }
        }
        let cap = self.project.groups[g]
            .jobs
            .map_or(self.opts.jobs, |j| j.min(self.opts.jobs));
        // The scheduler owns the limit: it hands the runner no more than `cap` jobs at once, and
        // none once a failure (without keep-going) or an interrupt has stopped it, so no task
        // starts after the failure that stops the build.
        let mut sched = Scheduler::new(nodes, cap, self.opts.keep_going);
        let mut running: HashMap<usize, NodeId> = HashMap::new();
        let no_results = never();
        let results = runner.map_or(&no_results, |r| r.results());
        loop {
            while self.interrupted.is_none() {
                // A signal that arrived while tasks were being decided starts nothing new.
                if let Ok(sig) = signals.try_recv() {
                    self.interrupt(sig, runner, &mut sched);
                    break;
                }
                let Some((node, t)) = sched.next_task() else {
                    break;
                };
                let decision = self.decide_now(t);
                self.explain(t, &decision);
                match decision {
                    Decision::Skip => {
                        if self.prediction[t.index()] != Prediction::Decided(Decision::Skip) {
                            // Counted as expected to run, spared by early cutoff: it counts as
                            // done (n jumps forward; N does not shrink).
                            self.spared += 1;
                            self.progress.finished(&[]);
                        }
                        self.state[t.index()] = TaskState::Skipped;
                        sched.finish(node, true);
                    }
                    Decision::Run(_) if self.opts.dry_run => {
                        self.announce(t);
                        self.ran[t.index()] = true;
                        self.state[t.index()] = TaskState::Success;
                        self.progress.finished(&[]);
                        sched.finish(node, true);
                    }
                    Decision::Run(_) => match self.prepare(t) {
                        Ok(job) => {
                            self.announce(t);
                            running.insert(t.index(), node);
                            runner.expect("a runner outside dry runs").start(job);
                        }
                        Err(message) => {
                            self.announce(t);
                            let failure =
                                Failure::new(TaskState::Exception, "could not run").detail(message);
                            self.fail(t, failure, &[]);
                            sched.finish(node, false);
                        }
                    },
                }
                if self.progress.broken() {
                    self.interrupt(interrupt::SIGPIPE, runner, &mut sched);
                }
            }
            if sched.is_done() {
                break;
            }
            // Commands still running a while after an interrupt (a background process ignoring
            // SIGINT, as non-interactive shells make them) are killed.
            let deadline = self
                .interrupted_at
                .map(|at| at + KILL_AFTER)
                .filter(|_| self.signal_count == 1);
            let timeout = deadline.map_or(never(), crossbeam_channel::at);
            select! {
                recv(results) -> finished => {
                    let Ok(finished) = finished else { break };
                    let node = running.remove(&finished.id).expect("a finished job was started");
                    let ok = self.finished(finished);
                    sched.finish(node, ok);
                }
                recv(signals) -> sig => {
                    if let Ok(sig) = sig {
                        self.interrupt(sig, runner, &mut sched);
                    }
                }
                recv(timeout) -> _ => {
                    let sig = self.interrupted.unwrap_or(signal_hook::consts::SIGTERM);
                    self.interrupt(sig, runner, &mut sched);
                }
            }
            if self.progress.broken() && self.interrupted.is_none() {
                self.interrupt(interrupt::SIGPIPE, runner, &mut sched);
            }
        }
        for t in sched.not_run().collect::<Vec<_>>() {
            self.state[t.index()] = TaskState::NotRun;
            self.poison(t);
            if self.prediction[t.index()] != Prediction::Decided(Decision::Skip) {
                self.not_run += 1;
            }
        }
    }

    /// With --explain, says why a task runs (and, for `kiln explain`, that it is up to date).
    fn explain(&mut self, t: TaskId, decision: &Decision) {
        let text = match decision {
            Decision::Run(reason) if self.opts.explain => reason.to_string(),
            Decision::Skip if self.opts.explain_targets => "up to date".to_string(),
            _ => return,
        };
        let graph = &self.x.graph;
        let task = graph.task(t);
        let name = if task.outputs.is_empty() {
            self.project.rules[task.rule].name.clone()
        } else {
            task.outputs
                .iter()
                .map(|&f| graph.path(f))
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.progress.report(&format!("explain: {name}: {text}"));
    }

    /// Counts the expected tasks of a group the build never reached.
    fn count_unreached(&mut self, g: GroupId) {
        for t in self.group_tasks(g) {
            if self.prediction[t.index()] != Prediction::Decided(Decision::Skip) {
                self.not_run += 1;
            }
        }
    }

    fn poison(&mut self, t: TaskId) {
        let outs = self.recorded_outputs(t);
        self.poisoned.extend(outs);
    }

    fn interrupt(&mut self, sig: i32, runner: Option<&Runner>, sched: &mut Scheduler) {
        self.signal_count += 1;
        sched.stop();
        if self.interrupted.is_none() {
            self.interrupted = Some(sig);
            self.interrupted_at = Some(Instant::now());
            if sig != interrupt::SIGPIPE {
                self.progress.message(&format!(
                    "interrupted by {}: stopping the running commands",
                    signal_name(sig)
                ));
            }
        }
        if let Some(r) = runner {
            let signal = match (self.signal_count, sig) {
                (1, signal_hook::consts::SIGINT) => rustix::process::Signal::INT,
                (1, signal_hook::consts::SIGHUP) => rustix::process::Signal::HUP,
                (1, _) => rustix::process::Signal::TERM,
                _ => rustix::process::Signal::KILL,
            };
            r.signal(signal);
        }
    }

    /// Prints the `[n/N]` line of a task that starts.
    fn announce(&mut self, t: TaskId) {
        self.started_count += 1;
        let n = self.started_count + self.spared;
        if n > self.expected {
            self.expected = n;
        }
        let line = task_line(self.project, &self.x.graph, t, self.opts.verbose);
        let commands = self
            .opts
            .verbose
            .then_some(self.x.graph.task(t).commands.as_slice());
        self.progress.started(n, self.expected, &line, commands);
    }

    /// Makes the parent directories of a task's outputs and builds its job.
    fn prepare(&mut self, t: TaskId) -> Result<Job, String> {
        let graph = &self.x.graph;
        let task = graph.task(t);
        let root = &self.project.root;
        let mut dirs: Vec<&str> = task
            .outputs
            .iter()
            .chain(&task.depfile)
            .map(|&f| paths::parent(graph.path(f)))
            .collect();
        dirs.sort_unstable();
        dirs.dedup();
        let allowed = if task.update_outputs {
            root.as_path()
        } else {
            self.out_canon.as_path()
        };
        for d in dirs {
            // Each directory is checked once a build; the check comes before anything is
            // created, so that a symlink out of the build directory gets nothing made through it.
            if self.checked_dirs.contains(d) {
                continue;
            }
            let abs = absolute(root, d);
            let mut existing = abs.as_path();
            while existing.symlink_metadata().is_err() {
                existing = existing.parent().unwrap_or(root);
            }
            let place = if task.update_outputs {
                "project"
            } else {
                "build directory"
            };
            for (at, create) in [(existing.to_path_buf(), true), (abs.clone(), false)] {
                let canon = at
                    .canonicalize()
                    .map_err(|e| format!("cannot resolve the directory `{d}`: {e}"))?;
                if !canon.starts_with(allowed) {
                    return Err(format!(
                        "the directory `{d}` resolves to {} through a symlink, outside the {place}; kiln will not write there",
                        canon.display()
                    ));
                }
                if create {
                    std::fs::create_dir_all(&abs)
                        .map_err(|e| format!("cannot create the directory `{d}`: {e}"))?;
                }
            }
            self.checked_dirs.insert(d.to_string());
        }
        // Inputs not hashed yet are hashed by the worker after the run (hot in the page cache).
        let watch = task
            .reads()
            .chain(self.implicit[t.index()].iter().copied())
            .map(|f| {
                let unhashed =
                    self.files[f.index()].stat.is_some() && self.files[f.index()].hash.is_none();
                (absolute(root, graph.path(f)), unhashed)
            })
            .collect();

        Ok(Job {
            id: t.index(),
            commands: task.commands.clone(),
            outputs: self
                .recorded_outputs(t)
                .iter()
                .map(|&f| absolute(root, graph.path(f)))
                .collect(),
            watch,
            depfile: task.depfile.map(|f| absolute(root, graph.path(f))),
        })
    }

    /// Handles a finished job; returns whether the task succeeded.
    fn finished(&mut self, f: Finished) -> bool {
        let t = TaskId(f.id as u32);
        // After an interrupt, any command that did not succeed was (or may have been) cut short,
        // even one that caught the signal and exited with a status of its own.
        let interrupted = self.interrupted.is_some() && f.exit != Exit::Success;
        if interrupted {
            self.discard_interrupted(t, &f);
            self.progress.finished(&f.output.text);
            return false;
        }
        match &f.exit {
            Exit::Success => {}
            Exit::Failed { command, code } => {
                let why = format!("exit status {code}");
                let failure = Failure::new(TaskState::Crashed, why).at(*command);
                self.fail(t, failure, &f.output_text());
                return false;
            }
            Exit::Signaled { command, signal } => {
                let why = format!("killed by {}", signal_name(*signal));
                let failure = Failure::new(TaskState::Crashed, why).at(*command);
                self.fail(t, failure, &f.output_text());
                return false;
            }
            Exit::Error { command, message } => {
                let failure = Failure::new(TaskState::Exception, "could not run")
                    .detail(message.clone())
                    .at(*command);
                self.fail(t, failure, &f.output_text());
                return false;
            }
            Exit::TimedOut { command } => {
                let limit = self.opts.timeout.map_or(0.0, |t| t.as_secs_f64());
                let why = format!("timed out after {limit}s");
                let failure = Failure::new(TaskState::Crashed, why).at(*command);
                self.fail(t, failure, &f.output_text());
                return false;
            }
            Exit::NotStarted => {
                self.fail(t, Failure::new(TaskState::NotRun, "not started"), &[]);
                return false;
            }
        }
        let graph = &self.x.graph;
        let task = graph.task(t);
        let outputs = self.recorded_outputs(t);
        // A declared output the command did not make fails the task.
        for (i, &o) in task.outputs.iter().enumerate() {
            if f.outputs[i].is_none() {
                let failure = Failure::new(TaskState::Missing, "output not made").detail(format!(
                    "the command succeeded but did not make the output `{}`",
                    graph.path(o)
                ));
                self.fail(t, failure, &f.output_text());
                return false;
            }
        }
        let implicit_paths = match &f.depfile {
            Some(Err(msg)) => {
                let failure = Failure::new(TaskState::Exception, "bad depfile").detail(msg.clone());
                self.fail(t, failure, &f.output_text());
                return false;
            }
            Some(Ok(deps)) => deps.clone(),
            None => Vec::new(),
        };
        self.progress.finished(&f.output_text());

        // Outputs as the worker found them.
        let mut records = Vec::new();
        for (i, &o) in outputs.iter().enumerate() {
            let state = &mut self.files[o.index()];
            state.checked = true;
            match f.outputs[i] {
                Some((stat, hash)) => {
                    state.stat = Some(stat);
                    state.hash = Some(hash.unwrap_or(MISSING));
                    state.recorded_at = if hash.is_some() { f.ended_at } else { i64::MIN };
                    if let Some(hash) = hash {
                        records.push(file_record(&self.x.graph, o, stat, hash, f.ended_at));
                    }
                }
                None => {
                    state.stat = None;
                    state.hash = Some(MISSING);
                }
            }
        }

        // Implicit dependencies from the depfile, as kiln paths.
        let own: HashSet<FileId> = self
            .x
            .graph
            .task(t)
            .reads()
            .chain(outputs.iter().copied())
            .collect();
        let mut implicit = Vec::new();
        for p in implicit_paths {
            let path = if p.starts_with('/') {
                paths::from_absolute(
                    &self.project.root,
                    std::path::Path::new(&paths::normalize(&p)),
                )
                .unwrap_or(p)
            } else {
                paths::normalize(&p)
            };
            let id = self.x.graph.file(&path);
            if !own.contains(&id) && !implicit.contains(&id) {
                implicit.push(id);
            }
        }
        self.files
            .resize(self.x.graph.file_count(), FileState::default());
        let first_seen: Vec<FileId> = implicit
            .iter()
            .copied()
            .filter(|i| !self.files[i.index()].checked)
            .collect();
        records.extend(self.learn(&implicit));

        // Did anything the task read change while it ran? Known files are compared with their
        // stat before the run. A file first seen in the depfile has no earlier stat: it counts as
        // changed if its mtime lies after the run started and no later than a fresh reading of
        // the clock taken after it was stat'ed (a file dated in the future tells nothing).
        let task = self.x.graph.task(t);
        let watched: Vec<FileId> = task
            .reads()
            .chain(self.implicit[t.index()].iter().copied())
            .collect();
        let mut changed = watched
            .iter()
            .zip(&f.watch)
            .find(|(w, now)| self.files[w.index()].stat != now.map(|(s, _)| s))
            .map(|(w, _)| *w);
        // Hashes the worker took of inputs nobody had hashed: kept if the file is as it was
        // before the run (otherwise the run is not trusted anyway).
        for (&w, now) in watched.iter().zip(&f.watch) {
            let state = &mut self.files[w.index()];
            if state.hash.is_none() {
                match *now {
                    Some((stat, Some(hash))) if state.stat == Some(stat) => {
                        state.hash = Some(hash);
                        state.recorded_at = f.ended_at;
                        records.push(file_record(&self.x.graph, w, stat, hash, f.ended_at));
                    }
                    _ => state.hash = Some(MISSING),
                }
            }
        }
        if changed.is_none() && !first_seen.is_empty() {
            let now = self.clock.as_ref().map_or(i64::MAX, |c| c.fresh());
            changed = first_seen
                .iter()
                .find(|i| {
                    self.files[i.index()]
                        .stat
                        .is_some_and(|s| s.mtime > f.started_at && s.mtime <= now)
                })
                .copied();
        }
        self.implicit[t.index()] = implicit;
        let graph = &self.x.graph;
        let signature = match changed {
            Some(c) => {
                self.progress.message(&format!(
                    "warning: `{}` changed while `{}` ran; it will run again next time",
                    graph.path(c),
                    graph.describe(t, &self.project.rules[task.rule].name)
                ));
                MISSING
            }
            None => self.signature(t),
        };
        let graph = &self.x.graph;
        let task = graph.task(t);
        let named = |ids: &mut dyn Iterator<Item = FileId>| -> Vec<(String, Hash)> {
            ids.map(|f| (graph.path(f).to_string(), self.hash(f)))
                .collect()
        };
        records.push((
            Slot::Task(t),
            Record::Task(TaskRecord {
                key: graph.key(t).to_string(),
                group: self.project.groups[task.group].name.clone(),
                signature,
                duration_ms: f.duration.as_millis() as u64,
                update_outputs: task.update_outputs,
                outputs: named(&mut outputs.iter().copied()),
                implicit: named(&mut self.implicit[t.index()].iter().copied()),
                inputs: named(&mut task.reads()),
                commands: task.commands.clone(),
                env: task.env.clone(),
            }),
        ));
        self.append(records);
        self.state[t.index()] = TaskState::Success;
        self.ran[t.index()] = true;
        true
    }

    /// States of files first seen now (implicit dependencies), hashed and recorded.
    fn learn(&mut self, ids: &[FileId]) -> Vec<(Slot, Record)> {
        let mut records = Vec::new();
        for &id in ids {
            if self.files[id.index()].checked {
                continue;
            }
            let abs = absolute(&self.project.root, self.x.graph.path(id));
            let stat = filestate::stat(&abs);
            let state = &mut self.files[id.index()];
            state.checked = true;
            state.stat = stat;
            state.hash = Some(MISSING);
            if let Some(stat) = stat {
                // A build seeded by its snapshot has no index of the store: a file new to the
                // graph is hashed rather than looked up.
                let trusted = match self.seeded {
                    Some(_) => None,
                    None => self
                        .store
                        .file(self.x.graph.path(id))
                        .filter(|r| r.trusted_for(&stat)),
                };
                let recorded_at = trusted.map_or_else(
                    || self.clock.as_ref().map_or(i64::MIN, |c| c.now()),
                    |r| r.recorded_at,
                );
                let hash = trusted
                    .map(|r| r.hash)
                    .or_else(|| filestate::hash_file(&abs).ok());
                let state = &mut self.files[id.index()];
                state.hash = Some(hash.unwrap_or(MISSING));
                state.recorded_at = recorded_at;
                if let (Some(hash), None) = (hash, trusted) {
                    records.push(file_record(&self.x.graph, id, stat, hash, recorded_at));
                }
            }
        }
        records
    }

    /// A task killed by an interrupt: outputs it changed are deleted, and it is never trusted.
    fn discard_interrupted(&mut self, t: TaskId, f: &Finished) {
        let outputs = self.recorded_outputs(t);
        let task = self.x.graph.task(t);
        let update = task.update_outputs;
        let key = self.x.graph.key(t).to_string();
        for (i, &o) in outputs.iter().enumerate() {
            let before = self.files[o.index()].stat;
            let after = f.outputs.get(i).copied().flatten().map(|(s, _)| s);
            if after.is_some() && after != before && !update {
                let path = self.x.graph.path(o).to_string();
                if let Err(e) = clean::remove_inside(&self.project.root, &self.out_canon, &path) {
                    self.progress
                        .message(&format!("warning: cannot delete `{path}`: {e}"));
                }
            }
        }
        self.state[t.index()] = TaskState::NotRun;
        self.not_run += 1;
        self.poison(t);
        self.append(vec![(Slot::Forget(t), Record::Forget(key))]);
    }

    /// Reports a failed task with why it failed, its commands and everything it printed; it is
    /// not recorded.
    fn fail(&mut self, t: TaskId, failure: Failure, output: &[u8]) {
        let task = self.x.graph.task(t);
        let mut text = format!(
            "error: task failed ({}): {}\n",
            failure.why,
            task_line(self.project, &self.x.graph, t, self.opts.verbose).render(false)
        );
        if let Some(detail) = &failure.detail {
            text.push_str(detail);
            text.push('\n');
        }
        let chain = task.commands.len();
        for (i, c) in task.commands.iter().enumerate() {
            if chain == 1 {
                text.push_str(&format!("command: {c}\n"));
            } else {
                let failed = if failure.command == Some(i) {
                    " (failed)"
                } else {
                    ""
                };
                text.push_str(&format!("command {} of {chain}{failed}: {c}\n", i + 1));
            }
        }
        self.progress.message(text.trim_end());
        self.progress.finished(output);
        self.state[t.index()] = failure.state;
        self.failed.push((t, failure.why));
        self.poison(t);
        // Recorded as failed, with a signature that never matches: it runs again next time
        // whatever its outputs look like, and `--explain` says why.
        let graph = &self.x.graph;
        let task = graph.task(t);
        let record = TaskRecord {
            key: graph.key(t).to_string(),
            group: self.project.groups[task.group].name.clone(),
            signature: signature::FAILED,
            duration_ms: 0,
            update_outputs: task.update_outputs,
            outputs: self
                .recorded_outputs(t)
                .iter()
                .map(|&f| (graph.path(f).to_string(), MISSING))
                .collect(),
            implicit: Vec::new(),
            inputs: Vec::new(),
            commands: task.commands.clone(),
            env: task.env.clone(),
        };
        self.append(vec![(Slot::Task(t), Record::Task(record))]);
    }

    /// Deletes outputs recorded for tasks the build file no longer has (or no longer declares),
    /// for the given groups (and records of groups that no longer exist).
    fn delete_stale(&mut self, groups: &[GroupId]) {
        let project = self.project;
        let graph = &self.x.graph;
        let group_names: HashSet<&str> = groups
            .iter()
            .map(|&g| project.groups[g].name.as_str())
            .collect();
        let first = groups.contains(&0);
        let known_group = |name: &str| project.groups.iter().any(|g| g.name == name);
        let keys: HashSet<&str> = graph.task_ids().map(|t| graph.key(t)).collect();
        let declared: HashSet<&str> = (0..graph.file_count() as u32)
            .map(FileId)
            .filter(|&f| graph.producer(f).is_some())
            .map(|f| graph.path(f))
            .chain(
                graph
                    .tasks()
                    .iter()
                    .filter_map(|t| t.depfile.map(|d| graph.path(d))),
            )
            .chain(self.x.gen_outputs.iter().flatten().map(|&f| graph.path(f)))
            .collect();
        let mut stale: Vec<String> = Vec::new();
        let mut forget: Vec<String> = Vec::new();
        for rec in self.store.tasks() {
            let relevant = group_names.contains(rec.group) || (first && !known_group(rec.group));
            if !relevant {
                continue;
            }
            if !keys.contains(rec.key) {
                forget.push(rec.key.to_string());
            }
            if rec.update_outputs {
                continue;
            }
            for (p, _) in rec.outputs() {
                if !declared.contains(p) && paths::is_within(p, &project.out) {
                    stale.push(p.to_string());
                }
            }
        }
        stale.sort();
        stale.dedup();
        let mut deleted = Vec::new();
        for p in stale {
            if self.opts.dry_run {
                if absolute(&project.root, &p).symlink_metadata().is_ok() {
                    self.progress
                        .message(&format!("would delete stale output {p}"));
                }
                continue;
            }
            match clean::remove_inside(&project.root, &self.out_canon, &p) {
                Ok(true) => {
                    self.progress.message(&format!("deleted stale output {p}"));
                    if let Some(f) = self.x.graph.lookup(&p)
                        && let Some(state) = self.files.get_mut(f.index())
                    {
                        *state = FileState {
                            stat: None,
                            hash: Some(MISSING),
                            recorded_at: i64::MIN,
                            checked: true,
                        };
                    }
                    deleted.push(p);
                }
                Ok(false) => {}
                Err(e) => self
                    .progress
                    .message(&format!("warning: cannot delete stale output `{p}`: {e}")),
            }
        }
        clean::remove_empty_dirs(&project.root, &project.out, &deleted);
        forget.sort();
        self.append(
            forget
                .into_iter()
                .map(|k| (Slot::None, Record::Forget(k)))
                .collect(),
        );
    }

    fn summary(&mut self, started: Instant) -> i32 {
        let secs = started.elapsed().as_secs_f64();
        let plural = |n: usize| if n == 1 { "task" } else { "tasks" };
        if let Some(sig) = self.interrupted {
            let text = format!(
                "'build' interrupted by {}: {} not run",
                signal_name(sig),
                self.not_run
            );
            self.progress.done(&text);
            return interrupt::exit_status(sig);
        }
        if !self.failed.is_empty() {
            if self.opts.keep_going || self.failed.len() > 1 {
                let failed = std::mem::take(&mut self.failed);
                for (t, why) in &failed {
                    let task = self.x.graph.task(*t);
                    let rule = &self.project.rules[task.rule].name;
                    self.progress.message(&format!(
                        "failed ({why}): {}",
                        self.x.graph.describe(*t, rule)
                    ));
                }
                self.failed = failed;
            }
            let n = self.failed.len();
            self.progress.done(&format!(
                "'build' failed: {n} {} failed, {} not run",
                plural(n),
                self.not_run
            ));
            return 1;
        }
        if self.opts.explain_targets {
            let n = self.started_count;
            let targets = self.opts.targets.join(", ");
            let verdict = if n == 0 {
                format!("{targets}: up to date")
            } else {
                format!("{targets}: not up to date: {n} {} would run", plural(n))
            };
            self.progress.report(&verdict);
        }
        if self.opts.dry_run {
            let n = self.started_count;
            self.progress.done(&format!(
                "'build' dry run: {n} {} would run ({secs:.3}s)",
                plural(n)
            ));
            return 0;
        }
        self.progress
            .done(&format!("'build' finished successfully ({secs:.3}s)"));
        0
    }
}

/// How a task failed, as its report says it.
struct Failure {
    state: TaskState,
    /// In a few words a user reads right: "exit status 1", "killed by SIGSEGV".
    why: String,
    /// A line more, where there is more to say.
    detail: Option<String>,
    /// Which command of the chain failed.
    command: Option<usize>,
}

impl Failure {
    fn new(state: TaskState, why: impl Into<String>) -> Failure {
        Failure {
            state,
            why: why.into(),
            detail: None,
            command: None,
        }
    }

    fn detail(mut self, detail: String) -> Failure {
        self.detail = Some(detail);
        self
    }

    fn at(mut self, command: usize) -> Failure {
        self.command = Some(command);
        self
    }
}

impl Finished {
    /// What the commands printed, with a note where it was cut.
    fn output_text(&self) -> Vec<u8> {
        match &self.output.log {
            None => self.output.text.clone(),
            Some(log) => {
                let mut text = format!(
                    "[output truncated: {} bytes in all; the whole output is in {}; its end follows]\n",
                    self.output.total,
                    log.display()
                )
                .into_bytes();
                text.extend_from_slice(&self.output.text);
                text
            }
        }
    }
}

/// Sorts producer -> consumer `edges` (over `n` nodes) by producer and returns where each
/// producer's edges start: node `p`'s consumers are `edges[first[p]..first[p + 1]]`.
fn by_producer(edges: &mut [(u32, u32)], n: usize) -> Vec<usize> {
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

/// How progress lines and failure reports name a task: with `all`, every input; otherwise at
/// most [`TaskLine::MAX_INPUTS`].
fn task_line<'a>(
    project: &'a Project,
    graph: &'a crate::graph::Graph,
    t: TaskId,
    all: bool,
) -> TaskLine<'a> {
    let task = graph.task(t);
    let rule = &project.rules[task.rule];
    TaskLine::new(
        &rule.name,
        rule.color,
        task.inputs.iter().map(|&f| graph.path(f)).collect(),
        task.outputs.iter().map(|&f| graph.path(f)).collect(),
        all,
    )
}

fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match usize::try_from(sig)
        .ok()
        .and_then(|n| NAMES.get(n.wrapping_sub(1)))
    {
        Some(name) => name.to_string(),
        None => format!("signal {sig}"),
    }
}

/// The task state's name as kiln prints it.
pub fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::NotRun => "not-run",
        TaskState::Missing => "missing",
        TaskState::Crashed => "crashed",
        TaskState::Exception => "exception",
        TaskState::Skipped => "skipped",
        TaskState::Success => "success",
    }
}
