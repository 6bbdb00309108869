//! The runner: worker threads that run command chains through `sh -c` in the project root, each
//! command in a process group of its own, stdout and stderr captured together through one pipe. It
//! knows nothing of the graph: a [`Job`] is commands and paths, and a [`Finished`] says how the
//! commands ended, what they printed, and the stats (and, after success, the hashes) of the paths
//! the job named, taken on the worker so that hashing outputs is spread over the cores.
//!
//! Commands start through posix_spawn (no per-spawn hook in the child), which costs the same
//! whatever kiln's own size. A command with no shell syntax starts its program directly
//! (`direct.rs`), as the shell would have; others run through `/bin/sh -c`. A command longer
//! than the kernel accepts as one argument runs from a script file instead.
//! Output beyond a memory limit goes to a log file, keeping the tail in memory. [`Runner::signal`]
//! forwards a signal to every running process group, and commands not yet started are not started.

use crate::depfile;
use crate::filestate::{self, Clock, Hash, Stat};
use command::{Killed, OutputBuf, kill_group, run_command};
use crossbeam_channel::{Receiver, Sender, unbounded};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Commands longer than this run from a script file (Linux takes at most 128 KiB as one argument).
mod command;
pub(crate) mod direct;
#[cfg(test)]
mod tests;

/// One task's work, as the runner sees it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The caller's handle for this job.
    pub id: usize,
    /// Run in order; all must succeed.
    pub commands: Vec<String>,
    /// Stat afterwards, and hash after success.
    pub outputs: Vec<PathBuf>,
    /// Stat afterwards, to see whether they changed while the commands ran; those flagged are
    /// hashed too (inputs whose hash nobody needed before the run).
    pub watch: Vec<(PathBuf, bool)>,
    /// Read and parse after success.
    pub depfile: Option<PathBuf>,
    /// Note when the commands started, though there is no depfile: implicit dependencies come
    /// from elsewhere (a scan) and may be first seen after the run.
    pub timed: bool,
    /// How to run it on the remote engine (or find it in its cache), when the build has one.
    pub remote: Option<Box<crate::remote::Spec>>,
}

/// How a job's commands ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// Command `command` (0-based) exited with a non-zero status.
    Failed {
        command: usize,
        code: i32,
    },
    /// Command `command` was killed by a signal.
    Signaled {
        command: usize,
        signal: i32,
    },
    /// Command `command` could not be run at all.
    Error {
        command: usize,
        message: String,
    },
    /// The task's commands ran past the time limit, and command `command`, still running, was
    /// killed with its process group (processes that left the group are not reached).
    TimedOut {
        command: usize,
    },
    /// Not started: the build was stopping.
    NotStarted,
}

/// What the commands printed: all of it, or the tail with the rest in a log file.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub text: Vec<u8>,
    pub total: u64,
    pub log: Option<PathBuf>,
}

/// A finished job.
#[derive(Debug)]
pub struct Finished {
    pub id: usize,
    pub exit: Exit,
    pub output: Output,
    pub duration: Duration,
    /// When the job started (its commands ran from here for `duration`), and which worker
    /// thread ran it (0-based; one job at a time each).
    pub start: Instant,
    pub worker: usize,
    /// The file system's time before the first command started and after the last ended.
    pub started_at: i64,
    pub ended_at: i64,
    /// Each output's stat, and its hash after success.
    pub outputs: Vec<Option<(Stat, Option<Hash>)>>,
    pub watch: Vec<Option<(Stat, Option<Hash>)>>,
    /// The depfile's prerequisites, or why they could not be read.
    pub depfile: Option<Result<Vec<String>, String>>,
    /// What the remote engine did with the job.
    pub remote: RemoteNote,
}

/// How a job went with the remote engine.
#[derive(Debug, Default)]
pub struct RemoteNote {
    /// Its result came from the remote cache: its outputs were fetched, nothing ran.
    pub cached: bool,
    /// It ran on the engine.
    pub executed: bool,
    /// The engine's first trouble in this build, to show once.
    pub warning: Option<String>,
}

/// What every job shares.
pub struct Config {
    /// Where commands run: the project root.
    pub cwd: PathBuf,
    /// For script files of long commands.
    pub scratch: PathBuf,
    pub clock: Option<Arc<dyn Clock>>,
    /// Output kept in memory per job before it spills to a log file in `logs`.
    pub memory_limit: usize,
    pub logs: PathBuf,
    /// How long one job's commands may run before they are killed (`--timeout`).
    pub timeout: Option<Duration>,
    /// Environment values set for every command, over kiln's own.
    pub env: Vec<(String, String)>,
    /// The remote engine or cache jobs with a [`Job::remote`] go to first.
    pub remote: Option<Arc<crate::remote::Remote>>,
    /// With a remote engine, at most this many jobs run locally at once (the workers count
    /// remote slots); 0: no bound but the workers'.
    pub local_slots: usize,
}

struct Shared {
    config: Config,
    /// Programs found along `PATH` once, for commands started without a shell.
    programs: Mutex<HashMap<String, Option<PathBuf>>>,
    groups: Mutex<HashMap<usize, i32>>,
    /// The signal passed on to running commands, once one was: nothing more starts.
    stopping: AtomicI32,
    /// Jobs running locally, against `Config::local_slots`.
    local: (Mutex<usize>, std::sync::Condvar),
}

/// What the build loop needs of whatever runs its commands (ninja's CommandRunner): start a job,
/// wait for one to finish (or for a signal, or a deadline), pass a signal on to the running ones.
/// [`Runner`] runs real processes; tests drive the loop with a fake.
pub trait Commands {
    /// Starts `job` at once: the caller hands out no more jobs than may run.
    fn start(&mut self, job: Job);
    /// Waits for a job to finish, a signal, a message on `slot` (a job slot may be free), or
    /// `deadline`.
    fn wait(
        &mut self,
        signals: &Receiver<i32>,
        slot: &Receiver<()>,
        deadline: Option<Instant>,
    ) -> Wake;
    /// Sends `signal` to every running job; jobs given after this do not start.
    fn signal(&mut self, signal: rustix::process::Signal);
}

/// What ended a [`Commands::wait`].
#[derive(Debug)]
pub enum Wake {
    Finished(Box<Finished>),
    Signal(i32),
    /// A job slot may be free.
    Slot,
    Deadline,
    /// Nothing more will finish (the runner is gone).
    Closed,
}

impl Commands for Runner {
    fn start(&mut self, job: Job) {
        Runner::start(self, job);
    }

    fn wait(
        &mut self,
        signals: &Receiver<i32>,
        slot: &Receiver<()>,
        deadline: Option<Instant>,
    ) -> Wake {
        let timeout = deadline.map_or(crossbeam_channel::never(), crossbeam_channel::at);
        crossbeam_channel::select! {
            recv(self.results) -> finished => match finished {
                Ok(f) => Wake::Finished(Box::new(f)),
                Err(_) => Wake::Closed,
            },
            recv(signals) -> sig => match sig {
                Ok(sig) => Wake::Signal(sig),
                Err(_) => Wake::Closed,
            },
            recv(slot) -> _ => Wake::Slot,
            recv(timeout) -> _ => Wake::Deadline,
        }
    }

    fn signal(&mut self, signal: rustix::process::Signal) {
        Runner::signal(self, signal);
    }
}

pub struct Runner {
    jobs: Option<Sender<Job>>,
    results: Receiver<Finished>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Runner {
    /// A runner with `jobs` worker threads. It runs every job it is given as soon as a worker is
    /// free: how many run at once, and whether more start after a failure, is the caller's to
    /// decide (it hands out no more jobs than it wants running).
    pub fn new(jobs: usize, config: Config) -> Runner {
        let jobs = jobs.max(1);
        let (job_tx, job_rx) = unbounded::<Job>();
        let (done_tx, done_rx) = unbounded::<Finished>();
        let shared = Arc::new(Shared {
            config,
            programs: Mutex::new(HashMap::new()),
            groups: Mutex::new(HashMap::new()),
            stopping: AtomicI32::new(0),
            local: (Mutex::new(0), std::sync::Condvar::new()),
        });
        let workers = (0..jobs)
            .map(|worker| {
                let (rx, tx, shared) = (job_rx.clone(), done_tx.clone(), shared.clone());
                std::thread::spawn(move || {
                    // Scratch space for reading output and hashing outputs, kept across jobs.
                    let mut buf = Vec::new();
                    for job in rx {
                        let finished = run_job(&shared, job, worker, &mut buf);
                        if tx.send(finished).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Runner {
            jobs: Some(job_tx),
            results: done_rx,
            shared,
            workers,
        }
    }

    /// Queues a job; it starts when a worker is free.
    pub fn start(&self, job: Job) {
        if let Some(tx) = &self.jobs {
            tx.send(job)
                .expect("runner workers are alive while the runner is");
        }
    }


    /// Sends `signal` to every running command's process group; commands not yet started will not
    /// start.
    pub fn signal(&self, signal: rustix::process::Signal) {
        self.shared
            .stopping
            .store(signal.as_raw(), Ordering::SeqCst);
        if let Some(remote) = &self.shared.config.remote {
            remote.cancel();
        }
        let groups = self.shared.groups.lock().unwrap_or_else(|e| e.into_inner());
        for &pgid in groups.values() {
            kill_group(pgid, signal);
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Shared {
    /// Where `program` is along `PATH`, looked up once per build (a search per command costs a
    /// failed exec for every directory before the right one).
    fn program(&self, program: &str) -> Option<PathBuf> {
        let mut programs = self.programs.lock().unwrap_or_else(|e| e.into_inner());
        programs
            .entry(program.to_string())
            .or_insert_with(|| std::env::var_os("PATH").and_then(|p| direct::resolve(program, &p)))
            .clone()
    }
}

/// The result of a job that never started.
fn not_started(id: usize, worker: usize) -> Finished {
    Finished {
        id,
        exit: Exit::NotStarted,
        output: Output::default(),
        duration: Duration::ZERO,
        start: Instant::now(),
        worker,
        started_at: 0,
        ended_at: 0,
        outputs: Vec::new(),
        watch: Vec::new(),
        depfile: None,
        remote: RemoteNote::default(),
    }
}

/// A local slot held while a job's commands run, where remote jobs share the workers.
struct LocalSlot<'a>(Option<&'a Shared>);

impl<'a> LocalSlot<'a> {
    fn take(shared: &'a Shared) -> LocalSlot<'a> {
        let limit = shared.config.local_slots;
        if limit == 0 {
            return LocalSlot(None);
        }
        let (count, freed) = &shared.local;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= limit {
            n = freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        LocalSlot(Some(shared))
    }
}

impl Drop for LocalSlot<'_> {
    fn drop(&mut self) {
        if let Some(shared) = self.0 {
            let (count, freed) = &shared.local;
            *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            freed.notify_one();
        }
    }
}

fn run_job(shared: &Shared, job: Job, worker: usize, buf: &mut Vec<u8>) -> Finished {
    let config = &shared.config;
    let clock = || config.clock.as_ref().map_or(0, |c| c.now());
    // Only implicit dependencies need the start time (a file first seen after the run).
    let started_at = if job.depfile.is_some() || job.timed {
        clock()
    } else {
        0
    };
    if shared.stopping.load(Ordering::SeqCst) != 0 {
        return not_started(job.id, worker);
    }
    let start = Instant::now();
    let deadline = config.timeout.map(|t| start + t);
    let log = config.logs.join(format!("task-{}.log", job.id));
    let mut output = OutputBuf::new(config.memory_limit, log);
    let mut exit = Exit::Success;
    let mut note = RemoteNote::default();
    let mut to_store = None;
    let mut local = true;
    if let (Some(remote), Some(spec)) = (&config.remote, &job.remote) {
        match remote.run(&job.commands, spec) {
            crate::remote::Outcome::Done {
                exit_code,
                output: printed,
                cached,
            } => {
                local = false;
                output.push(&printed);
                note.cached = cached;
                note.executed = !cached;
                if exit_code != 0 {
                    exit = Exit::Failed {
                        command: 0,
                        code: exit_code,
                    };
                }
            }
            crate::remote::Outcome::Local { warning, action } => {
                note.warning = warning;
                to_store = action;
            }
            crate::remote::Outcome::Interrupted => {
                local = false;
                exit = Exit::Signaled {
                    command: 0,
                    signal: shared.stopping.load(Ordering::SeqCst),
                };
            }
        }
    }
    let slot = local.then(|| LocalSlot::take(shared));
    for (i, command) in job.commands.iter().enumerate().filter(|_| local) {
        if shared.stopping.load(Ordering::SeqCst) != 0 {
            exit = if i == 0 {
                Exit::NotStarted
            } else {
                Exit::Signaled {
                    command: i,
                    signal: shared.stopping.load(Ordering::SeqCst),
                }
            };
            break;
        }
        match run_command(shared, job.id, i, command, &mut output, buf, deadline) {
            Ok((_, Killed::Yes)) => {
                exit = Exit::TimedOut { command: i };
                break;
            }
            Ok((status, Killed::No)) => {
                if let Some(signal) = status.signal() {
                    exit = Exit::Signaled { command: i, signal };
                    break;
                }
                let code = status.code().unwrap_or(-1);
                if code != 0 {
                    exit = Exit::Failed { command: i, code };
                    break;
                }
            }
            Err(e) => {
                exit = Exit::Error {
                    command: i,
                    message: e.to_string(),
                };
                break;
            }
        }
    }
    drop(slot);
    let duration = start.elapsed();
    let ended_at = clock();
    let success = exit == Exit::Success;
    if let (true, Some(action), Some(remote), Some(spec)) =
        (success, &to_store, &config.remote, &job.remote)
    {
        let warning = remote.store(action, &job.commands, spec, output.kept());
        note.warning = note.warning.or(warning);
    }
    // The stat of a file, and its hash where asked for.
    let mut look = |p: &std::path::Path, hash: bool| match hash {
        true => filestate::stat_and_hash(p, buf)
            .ok()
            .map(|(s, h)| (s, Some(h))),
        false => filestate::stat(p).map(|s| (s, None)),
    };
    let outputs = job.outputs.iter().map(|p| look(p, success)).collect();
    let watch = job.watch.iter().map(|(p, hash)| look(p, *hash)).collect();
    let depfile = match (&job.depfile, success) {
        (Some(path), true) => Some(match std::fs::read(path) {
            Ok(bytes) => depfile::parse(&bytes)
                .map_err(|e| format!("cannot parse depfile `{}`: {e}", path.display())),
            Err(e) => Err(format!(
                "the depfile `{}` was not written: {e}",
                path.display()
            )),
        }),
        _ => None,
    };
    Finished {
        id: job.id,
        exit,
        output: output.finish(),
        duration,
        start,
        worker,
        started_at,
        ended_at,
        outputs,
        watch,
        depfile,
        remote: note,
    }
}
