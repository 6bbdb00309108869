//! One build, in stages, each in a file of its own:
//!
//! - here, the entry: read the build file, take the lock, load the project and the store; and
//!   `fast.rs`, the snapshot's fast path, which ends a build where nothing changed before the store
//!   is read, and saves the graph and the snapshot for the next;
//! - `targets.rs`: what `--targets` selects;
//! - `scan.rs`: the dirty check (file states, signatures, decisions, the prediction of what runs);
//! - `group.rs`: the group loop (plans, the scheduler, the runner, interrupts);
//! - `record.rs`: recording what finished, and failures (`append.rs` appends to the store);
//! - `report.rs`: what the build prints about tasks and how it ended.
//!
//! This thread owns all build state and all output; the runner's workers only run commands and
//! report back.
//!
//! Approach: a group's tasks are planned (constraints) and handed to a scheduler. Each task the
//! scheduler offers is decided at that moment: its signature over the current content of what it
//! reads is compared with the store's record (and its outputs with the recorded hashes), so a
//! rebuilt input with unchanged bytes lets its consumers skip (early cutoff). A task that runs is
//! recorded as soon as it finishes. A failure stops the starting of new tasks, or with keep-going
//! blocks only what depends on it, later groups included. A signal stops everything cleanly; the
//! loop never returns early while commands run.

use crate::constraints::PlanNode;
use crate::error::Error;
use crate::filestate::{Clock, Disk, FsClock, Hash, RealDisk};
use crate::generator::Expansion;
use crate::lock::BuildLock;
use crate::manifest::PostMode;
use crate::progress::Progress;
use crate::project::Project;
use crate::runner::{self, Commands, Runner};
use crate::snapshot::RecordOffsets;
use crate::stats;
use crate::trace;
use crate::store::Store;
use crate::ids::{FileId, TaskId};
use crate::load::{Loaded, Workspace};
use crossbeam_channel::Receiver;
use std::cell::OnceCell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

mod append;
mod cached;
mod carry;
mod expanded;
mod fast;
mod group;
mod includes;
mod options;
mod record;
mod remote;
mod report;
mod scan;
mod targets;
#[cfg(test)]
mod tests;

pub use crate::state::TaskState;
pub use fast::Settled;
use fast::{Look, Seeded, Seen, look};
use scan::{FileState, Prediction};
pub use cached::{max_size, parse_size};
pub use options::{BuildOptions, Slots};
use options::jobserver;
use crate::jobserver::Jobserver;

/// Builds the workspace's project. Returns the exit status.
pub fn build(
    ws: &Workspace,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
) -> Result<i32, Error> {
    build_settling(ws, opts, progress, signals, None)
}

/// What a build in watch mode learned of the files' contents.
#[derive(Debug)]
pub enum Settle {
    /// The snapshot showed every file as the last build left it: what was known then holds.
    Unchanged,
    /// The build went the whole way; what it knew when it ended with everything up to date, if
    /// it did.
    Now(Option<Settled>),
}

/// [`build`] for watch mode: also says what is known of the files' contents afterwards.
pub fn build_watched(
    ws: &Workspace,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
) -> Result<(i32, Settle), Error> {
    let mut settle = Settle::Now(None);
    let code = build_settling(ws, opts, progress, signals, Some(&mut settle))?;
    Ok((code, settle))
}

fn build_settling(
    ws: &Workspace,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
    mut settle: Option<&mut Settle>,
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
            // A traced build goes the whole way, so that the trace shows every decision.
            if opts.targets.is_empty() && !opts.traced() {
                match look(c, &file.state_dir) {
                    Look::UpToDate => {
                        for w in &c.warnings {
                            progress.message(&format!("warning: {w}"));
                        }
                        stats::mark("decide");
                        finish_unchanged(progress, opts, started);
                        if let Some(s) = settle {
                            *s = Settle::Unchanged;
                        }
                        return Ok(0);
                    }
                    Look::Seen(s) => seen = Some(s),
                    Look::Unknown => {}
                }
            }
        }
        let loaded = ws.load_for_build(file, cached, opts.dry_run)?;
        let settle = settle.as_deref_mut();
        match build_loaded(loaded, lock, seen, opts, progress, signals, started, settle)? {
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
#[allow(clippy::too_many_arguments)]
fn build_loaded(
    loaded: Loaded,
    mut lock: Option<BuildLock>,
    seen: Option<Seen>,
    opts: &BuildOptions,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
    started: Instant,
    settle: Option<&mut Settle>,
) -> Result<Option<i32>, Error> {
    let Loaded {
        project: owned_project,
        mut expansion,
        from_cache,
        cache_key,
        messages,
    } = loaded;
    for m in &messages {
        progress.message(m);
    }
    let project = &owned_project;
    if project.is_empty() {
        progress.message(&format!(
            "nothing to do: {} declares no generators",
            project.sources.top().name
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
    for w in &expansion.warnings {
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
            let (recorded_at, clean) = fast::vouch(
                &expansion.graph,
                &stats,
                |f| snapshot.mark(f),
                &implicit,
                |t| snapshot.clean.get(t).copied().unwrap_or(false),
            );
            Some(Seeded {
                stats,
                recorded_at,
                clean,
                implicit,
                records: snapshot.records(),
                stale: None,
            })
        });
    // After a build-file edit, the last graph's snapshot vouches for the tasks the edit left.
    let mut task_digests = None;
    let seeded = match seeded {
        None if from_cache.is_none()
            && has_state
            && opts.targets.is_empty()
            && !opts.traced()
            && project.post == PostMode::AtOnce
            && expansion.complete() =>
        {
            let carried = carry::carry(&state_dir, &project.root, &mut expansion.graph);
            stats::mark("carry");
            carried.map(|(seed, digests)| {
                task_digests = Some(digests);
                seed
            })
        }
        seeded => seeded,
    };
    // (A carried seed goes on: the new graph and its snapshot are saved, stale outputs deleted.)
    if seeded
        .as_ref()
        .is_some_and(|s| s.stale.is_none() && s.clean.iter().all(|&c| c))
    {
        stats::mark("decide");
        finish_unchanged(progress, opts, started);
        if let Some(s) = settle {
            *s = Settle::Unchanged;
        }
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
    let clock: Option<Arc<dyn Clock>> = if opts.dry_run {
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

    let place = Place {
        disk: &RealDisk,
        clock,
        out_canon,
        state_dir,
    };
    let mut b = Build::new(project, opts, expansion, store, progress, place);
    b.graph_id = from_cache;
    b.cache_key = cache_key;
    b.seeded = seeded;
    b.task_digests = task_digests;
    b.settle_wanted = settle.is_some();
    // The commands inherit a lock of their own, given up when the build ends normally (after the
    // runner has reaped every command).
    let commands_lock = match &lock {
        Some(l) if !opts.dry_run => Some(
            l.for_commands()
                .map_err(|e| Error::io("cannot lock the build directory", e))?,
        ),
        _ => None,
    };
    b.jobserver = (!opts.dry_run)
        .then(|| jobserver(opts, b.progress))
        .flatten();
    b.caches = (!opts.dry_run).then(|| cached::open(opts, project, b.progress)).flatten();
    b.remote = (!opts.dry_run).then(|| remote::open(opts, project, b.progress)).flatten();
    let command_env = b
        .jobserver
        .as_ref()
        .and_then(|j| j.makeflags())
        .map(|flags| vec![("MAKEFLAGS".to_string(), flags.to_string())])
        .unwrap_or_default();
    let mut runner = (!opts.dry_run).then(|| {
        Runner::new(
            opts.jobs,
            runner::Config {
                cwd: project.root.clone(),
                scratch: b.state_dir.join("tmp"),
                clock: b.clock.clone(),
                memory_limit: 4 << 20,
                logs: b.state_dir.join("logs"),
                timeout: opts.timeout,
                env: command_env,
                remote: b.remote.clone(),
                // Under --remote, -j counts remote slots; local commands stay within the CPUs.
                // (Also when the engine could not be reached: -j was raised for it.)
                local_slots: match &opts.remote {
                    Some(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    None => 0,
                },
            },
        )
    });
    let result = b.run(
        runner.as_mut().map(|r| r as &mut dyn Commands),
        signals,
        first_lazy,
        started,
    );
    drop(runner);
    drop(commands_lock);
    // The store is written out while the lock is held; the large tables are freed on a thread of
    // their own, so that a finished build need not wait for that.
    if let Err(e) = b.store.flush_details() {
        b.progress
            .message(&format!("warning: cannot record kiln's state: {e}"));
    }
    stats::mark("save");
    b.log_cache();
    b.remote_stats();
    b.write_traces();
    let Build {
        expansion,
        store,
        files,
        implicit,
        rec,
        settled,
        ..
    } = b;
    if let Some(s) = settle {
        *s = Settle::Now(settled);
    }
    drop(lock);
    crate::drop_in_background((owned_project, expansion, store, files, implicit, rec));
    result
}

struct Build<'a> {
    project: &'a Project,
    opts: &'a BuildOptions,
    expansion: Expansion,
    store: Store,
    clock: Option<Arc<dyn Clock>>,
    /// The file system, as the build sees it.
    disk: &'a dyn Disk,
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
    /// By task: what the include scanner found this build (`scan = "c"`).
    scanned: Vec<Option<includes::Scanned>>,
    scanner: crate::includes::Scanner,
    /// `#include MACRO` lines already warned about.
    unresolved: HashSet<(String, String)>,
    /// Missing dependencies already reported, as (consumer, producer).
    missing_deps: HashSet<(TaskId, TaskId)>,
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
    /// Where tasks beyond the first take their slots (make's jobserver, or kiln's own, which the
    /// commands share); none in dry runs.
    jobserver: Option<Jobserver>,
    /// What the build did and when, for `--scheduler-trace`, `--trace` and `--timings`.
    recorder: Option<trace::Recorder>,
    /// The output caches, when the options name one (never in dry runs).
    caches: Option<cached::Caches>,
    /// The remote engine or Remote Execution API cache (never in dry runs), and the tasks
    /// whose results came from it.
    remote: Option<std::sync::Arc<crate::remote::Remote>>,
    remote_hits: u64,
    out_canon: PathBuf,
    state_dir: PathBuf,
    signal_count: usize,
    /// What to record in the graph cache at the end of the build.
    cache_key: Option<crate::graph_cache::Key>,
    /// The id of the graph cache the graph came from, if it came from the cache (and may prove
    /// stale).
    graph_id: Option<crate::graph_cache::GraphId>,
    /// From the snapshot of the last build.
    seeded: Option<Seeded>,
    /// The graph's task digests ([`crate::graph_cache::task_digests`]), where carrying the last
    /// build's snapshot took them.
    task_digests: Option<Vec<u8>>,
    /// Output directories made and checked in this build.
    checked_dirs: HashSet<String>,
    /// Watch mode wants to know the files' contents at the end: [`Build::settle`].
    settle_wanted: bool,
    settled: Option<Settled>,
}

/// Where a build runs: the seams it reads the file system and its clock through, the build
/// directory (canonical) and kiln's state directory in it.
struct Place<'a> {
    disk: &'a dyn Disk,
    /// None in a dry run, which records nothing.
    clock: Option<Arc<dyn Clock>>,
    out_canon: PathBuf,
    state_dir: PathBuf,
}

impl<'a> Build<'a> {
    /// A build of `project` as expanded so far, with nothing decided yet.
    fn new(
        project: &'a Project,
        opts: &'a BuildOptions,
        expansion: Expansion,
        store: Store,
        progress: &'a mut dyn Progress,
        place: Place<'a>,
    ) -> Build<'a> {
        let Place {
            disk,
            clock,
            out_canon,
            state_dir,
        } = place;
        Build {
            project,
            opts,
            expansion,
            store,
            clock,
            disk,
            progress,
            files: Vec::new(),
            command_part: Vec::new(),
            rec: RecordOffsets::default(),
            maybe: Vec::new(),
            implicit: Vec::new(),
            scanned: Vec::new(),
            scanner: crate::includes::Scanner::default(),
            unresolved: HashSet::new(),
            missing_deps: HashSet::new(),
            state: Vec::new(),
            prediction: Vec::new(),
            ran: Vec::new(),
            selected: None,
            poisoned: HashSet::new(),
            plans: vec![None; project.groups.len()],
            started_count: 0,
            spared: 0,
            expected: 0,
            failed: Vec::new(),
            not_run: 0,
            interrupted: None,
            interrupted_at: None,
            jobserver: None,
            recorder: opts.traced().then(trace::Recorder::new),
            caches: None,
            remote: None,
            remote_hits: 0,
            out_canon,
            state_dir,
            signal_count: 0,
            graph_id: None,
            cache_key: None,
            seeded: None,
            task_digests: None,
            checked_dirs: HashSet::new(),
            settle_wanted: false,
            settled: None,
        }
    }
}
