//! The runner: worker threads that run command chains through `sh -c` in the project root, each
//! command in a process group of its own, stdout and stderr captured together through one pipe. It
//! knows nothing of the graph: a [`Job`] is commands and paths, and a [`Finished`] says how the
//! commands ended, what they printed, and the stats (and, after success, the hashes) of the paths
//! the job named, taken on the worker so that hashing outputs is spread over the cores.
//!
//! Commands start through posix_spawn (no per-spawn hook in the child), which costs the same
//! whatever kiln's own size. A command with no shell syntax starts its program directly
//! ([`crate::direct`]), as the shell would have; others run through `/bin/sh -c`. A command longer
//! than the kernel accepts as one argument runs from a script file instead.
//! Output beyond a memory limit goes to a log file, keeping the tail in memory. [`Runner::signal`]
//! forwards a signal to every running process group, and commands not yet started are not started.

use crate::depfile;
use crate::filestate::{self, Clock, Hash, Stat};
use crossbeam_channel::{Receiver, Sender, unbounded};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Commands longer than this run from a script file (Linux takes at most 128 KiB as one argument).
const ARG_LIMIT: usize = 100_000;

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
    /// The file system's time before the first command started and after the last ended.
    pub started_at: i64,
    pub ended_at: i64,
    /// Each output's stat, and its hash after success.
    pub outputs: Vec<Option<(Stat, Option<Hash>)>>,
    pub watch: Vec<Option<(Stat, Option<Hash>)>>,
    /// The depfile's prerequisites, or why they could not be read.
    pub depfile: Option<Result<Vec<String>, String>>,
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
}

struct Shared {
    config: Config,
    /// Programs found along `PATH` once, for commands started without a shell.
    programs: Mutex<HashMap<String, Option<PathBuf>>>,
    groups: Mutex<HashMap<usize, i32>>,
    /// The signal passed on to running commands, once one was: nothing more starts.
    stopping: AtomicI32,
}

/// What the build loop needs of whatever runs its commands (ninja's CommandRunner): start a job,
/// wait for one to finish (or for a signal, or a deadline), pass a signal on to the running ones.
/// [`Runner`] runs real processes; tests drive the loop with a fake.
pub trait Commands {
    /// Starts `job` at once: the caller hands out no more jobs than may run.
    fn start(&mut self, job: Job);
    /// Waits for a finished job, a signal on `signals`, or `deadline`.
    fn wait(&mut self, signals: &Receiver<i32>, deadline: Option<Instant>) -> Wake;
    /// Sends `signal` to every running job; jobs given after this do not start.
    fn signal(&mut self, signal: rustix::process::Signal);
}

/// What ended a [`Commands::wait`].
#[derive(Debug)]
pub enum Wake {
    Finished(Box<Finished>),
    Signal(i32),
    Deadline,
    /// Nothing more will finish (the runner is gone).
    Closed,
}

impl Commands for Runner {
    fn start(&mut self, job: Job) {
        Runner::start(self, job);
    }

    fn wait(&mut self, signals: &Receiver<i32>, deadline: Option<Instant>) -> Wake {
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
        });
        let workers = (0..jobs)
            .map(|_| {
                let (rx, tx, shared) = (job_rx.clone(), done_tx.clone(), shared.clone());
                std::thread::spawn(move || {
                    // Scratch space for reading output and hashing outputs, kept across jobs.
                    let mut buf = Vec::new();
                    for job in rx {
                        let finished = run_job(&shared, job, &mut buf);
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

    /// Finished jobs, in the order they finished.
    pub fn results(&self) -> &Receiver<Finished> {
        &self.results
    }

    /// Sends `signal` to every running command's process group; commands not yet started will not
    /// start.
    pub fn signal(&self, signal: rustix::process::Signal) {
        self.shared
            .stopping
            .store(signal.as_raw(), Ordering::SeqCst);
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
            .or_insert_with(|| {
                std::env::var_os("PATH").and_then(|p| crate::direct::resolve(program, &p))
            })
            .clone()
    }
}

/// The result of a job that never started.
fn not_started(id: usize) -> Finished {
    Finished {
        id,
        exit: Exit::NotStarted,
        output: Output::default(),
        duration: Duration::ZERO,
        started_at: 0,
        ended_at: 0,
        outputs: Vec::new(),
        watch: Vec::new(),
        depfile: None,
    }
}

/// Waits until `reader` has something to read (or has been closed), or `until` passes; whether it
/// is readable.
fn readable_by(reader: &io::PipeReader, until: Instant) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let left = until.saturating_duration_since(Instant::now());
    let timeout = Timespec {
        tv_sec: left.as_secs() as i64,
        tv_nsec: i64::from(left.subsec_nanos()),
    };
    let mut fds = [PollFd::new(reader, PollFlags::IN)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(n) => n > 0,
        // Interrupted: look again.
        Err(_) => false,
    }
}

fn kill_group(pgid: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

fn signal_from_raw(raw: i32) -> rustix::process::Signal {
    use rustix::process::Signal;
    [
        Signal::INT,
        Signal::TERM,
        Signal::HUP,
        Signal::KILL,
        Signal::PIPE,
    ]
    .into_iter()
    .find(|s| s.as_raw() == raw)
    .unwrap_or(Signal::TERM)
}

fn run_job(shared: &Shared, job: Job, buf: &mut Vec<u8>) -> Finished {
    let config = &shared.config;
    let clock = || config.clock.as_ref().map_or(0, |c| c.now());
    // Only what a depfile reports needs the start time (a file first seen there).
    let started_at = if job.depfile.is_some() { clock() } else { 0 };
    if shared.stopping.load(Ordering::SeqCst) != 0 {
        return not_started(job.id);
    }
    let start = Instant::now();
    let deadline = config.timeout.map(|t| start + t);
    let log = config.logs.join(format!("task-{}.log", job.id));
    let mut output = OutputBuf::new(config.memory_limit, log);
    let mut exit = Exit::Success;
    for (i, command) in job.commands.iter().enumerate() {
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
    let duration = start.elapsed();
    let ended_at = clock();
    let success = exit == Exit::Success;
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
        started_at,
        ended_at,
        outputs,
        watch,
        depfile,
    }
}

/// Whether a command was killed for running past the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killed {
    Yes,
    No,
}

fn run_command(
    shared: &Shared,
    id: usize,
    index: usize,
    command: &str,
    output: &mut OutputBuf,
    buf: &mut Vec<u8>,
    deadline: Option<Instant>,
) -> io::Result<(std::process::ExitStatus, Killed)> {
    let config = &shared.config;
    let mut script = None;
    let (reader, mut child) = {
        let (reader, writer) = io::pipe()?;
        let direct = crate::direct::parse(command).and_then(|d| {
            let mut cmd = match shared.program(d.argv[0]) {
                Some(path) => Command::new(path),
                None => Command::new(d.argv[0]),
            };
            // The program sees its name as written, as under the shell.
            cmd.arg0(d.argv[0]);
            cmd.args(&d.argv[1..])
                .current_dir(&config.cwd)
                .stdin(Stdio::null())
                .stderr(writer.try_clone().ok()?)
                .process_group(0);
            match d.stdout {
                // Opened as the shell would (mode 0666 less the umask, no close-on-exec in the
                // child); if it cannot be, the shell says why.
                Some((file, append)) => {
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .append(append)
                        .truncate(!append)
                        .open(config.cwd.join(file))
                        .ok()?;
                    cmd.stdout(f);
                }
                None => {
                    cmd.stdout(writer.try_clone().ok()?);
                }
            }
            // A program that cannot be started (not found, not executable, a script without
            // `#!`) is left to the shell, which says so in its words or runs the script.
            cmd.spawn().ok()
        });
        if let Some(child) = direct {
            drop(writer);
            (reader, Ok(child))
        } else {
            let mut cmd = Command::new("/bin/sh");
            if command.len() > ARG_LIMIT {
                std::fs::create_dir_all(&config.scratch)?;
                let path = config
                    .scratch
                    .join(format!("cmd-{}-{id}-{index}.sh", std::process::id()));
                std::fs::write(&path, command)?;
                cmd.arg(&path);
                script = Some(path);
            } else {
                cmd.arg("-c").arg(command);
            }
            cmd.current_dir(&config.cwd)
                .stdin(Stdio::null())
                .stdout(writer.try_clone()?)
                .stderr(writer)
                .process_group(0);
            let child = cmd.spawn();
            // `cmd` is dropped here, closing this process's copies of the pipe's write end.
            (reader, child)
        }
    };
    let result = (|| {
        let child = child
            .as_mut()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start /bin/sh: {e}")))?;
        let pgid = child.id() as i32;
        shared
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, pgid);
        let stopping = shared.stopping.load(Ordering::SeqCst);
        if stopping != 0 {
            kill_group(pgid, signal_from_raw(stopping));
        }
        let mut reader = reader;
        buf.resize(64 * 1024, 0);
        let mut killed_at = None;
        loop {
            if let Some(deadline) = deadline {
                // Past the deadline the group is killed; a process that left the group and
                // still holds the pipe gets a second before kiln stops listening.
                let now = Instant::now();
                let wait_until = match killed_at {
                    None if now >= deadline => {
                        kill_group(pgid, rustix::process::Signal::KILL);
                        killed_at = Some(now);
                        continue;
                    }
                    None => deadline,
                    Some(at) if now >= at + Duration::from_secs(1) => break,
                    Some(at) => at + Duration::from_secs(1),
                };
                if !readable_by(&reader, wait_until) {
                    continue;
                }
            }
            match reader.read(buf) {
                Ok(0) => break,
                Ok(n) => output.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // The output can end before the command does (it closed or redirected its stdout and
        // stderr): the deadline still holds until the process has exited.
        if let (Some(deadline), None) = (deadline, killed_at) {
            while matches!(child.try_wait(), Ok(None)) {
                let now = Instant::now();
                if now >= deadline {
                    kill_group(pgid, rustix::process::Signal::KILL);
                    killed_at = Some(now);
                    break;
                }
                std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
            }
        }
        let status = child.wait();
        shared
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let killed = if killed_at.is_some() {
            Killed::Yes
        } else {
            Killed::No
        };
        status.map(|s| (s, killed))
    })();
    if let Some(path) = script {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Output kept in memory up to a limit; past it, everything goes to a log file and only the tail
/// stays in memory.
struct OutputBuf {
    kept: VecDeque<u8>,
    total: u64,
    limit: usize,
    spilled: bool,
    log_path: PathBuf,
    log: Option<File>,
}

impl OutputBuf {
    fn new(limit: usize, log_path: PathBuf) -> Self {
        OutputBuf {
            kept: VecDeque::new(),
            total: 0,
            limit,
            spilled: false,
            log_path,
            log: None,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if !self.spilled && self.kept.len() + bytes.len() <= self.limit {
            self.kept.extend(bytes);
            return;
        }
        if !self.spilled {
            self.spilled = true;
            let _ = self.log_path.parent().map(std::fs::create_dir_all);
            self.log = File::create(&self.log_path).ok();
            if let Some(f) = &mut self.log {
                let _ = f.write_all(self.kept.make_contiguous());
            }
        }
        if let Some(f) = &mut self.log {
            let _ = f.write_all(bytes);
        }
        self.kept.extend(bytes);
        let keep = (self.limit / 4).max(1024);
        if self.kept.len() > keep {
            let extra = self.kept.len() - keep;
            self.kept.drain(..extra);
        }
    }

    fn finish(self) -> Output {
        let log = self.log.is_some().then_some(self.log_path);
        Output {
            text: self.kept.into(),
            total: self.total,
            log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    fn runner(dir: &Path, limit: usize) -> Runner {
        Runner::new(
            2,
            Config {
                cwd: dir.to_path_buf(),
                scratch: dir.join("tmp"),
                clock: None,
                memory_limit: limit,
                logs: dir.join("logs"),
                timeout: None,
            },
        )
    }

    fn job(id: usize, commands: &[&str], dir: &Path) -> Job {
        Job {
            id,
            commands: commands.iter().map(|s| s.to_string()).collect(),
            outputs: vec![dir.join("out")],
            watch: vec![],
            depfile: None,
        }
    }

    #[test]
    fn runs_a_chain_and_captures_both_streams_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path(), 1 << 20);
        r.start(job(
            1,
            &["echo one; echo two >&2", "printf x > out"],
            dir.path(),
        ));
        let f = r.results().recv().unwrap();
        assert_eq!(f.exit, Exit::Success);
        assert_eq!(String::from_utf8_lossy(&f.output.text), "one\ntwo\n");
        let (stat, hash) = f.outputs[0].unwrap();
        assert_eq!(stat.size, 1);
        assert!(hash.is_some());
    }

    #[test]
    fn a_failing_command_stops_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path(), 1 << 20);
        r.start(job(1, &["echo bad; exit 3", "touch out"], dir.path()));
        let f = r.results().recv().unwrap();
        assert_eq!(
            f.exit,
            Exit::Failed {
                command: 0,
                code: 3
            }
        );
        assert!(f.outputs[0].is_none());
    }

    #[test]
    fn long_commands_run_from_a_script() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path(), 1 << 20);
        let long = format!("printf %s {} > out", "y".repeat(300_000));
        r.start(job(1, &[&long], dir.path()));
        let f = r.results().recv().unwrap();
        assert_eq!(
            f.exit,
            Exit::Success,
            "{}",
            String::from_utf8_lossy(&f.output.text)
        );
        assert_eq!(f.outputs[0].unwrap().0.size, 300_000);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn large_output_spills_to_a_log_and_keeps_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path(), 64 * 1024);
        r.start(job(1, &["seq 1 200000"], dir.path()));
        let f = r.results().recv().unwrap();
        let log = f.output.log.clone().expect("a log file");
        assert_eq!(std::fs::metadata(&log).unwrap().len(), f.output.total);
        assert!(f.output.text.len() <= 16 * 1024 + 64 * 1024);
        assert!(String::from_utf8_lossy(&f.output.text).ends_with("199999\n200000\n"));
    }

    #[test]
    fn plain_commands_behave_as_under_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a"), "A\n").unwrap();
        std::fs::write(d.join("b"), "B\n").unwrap();
        let r = runner(d, 1 << 20);
        let run = |commands: &[&str]| {
            r.start(job(1, commands, d));
            r.results().recv().unwrap()
        };
        // A redirection truncates, `>>` appends, stderr still reaches kiln.
        let f = run(&["cat a b > out", "cat a >> out", "cat missing-file"]);
        assert_eq!(std::fs::read_to_string(d.join("out")).unwrap(), "A\nB\nA\n");
        assert_eq!(
            f.exit,
            Exit::Failed {
                command: 2,
                code: 1
            }
        );
        assert!(String::from_utf8_lossy(&f.output.text).contains("missing-file"));
        // A program that is not there: the shell's message and status.
        let f = run(&["no-such-program-kiln x"]);
        assert_eq!(
            f.exit,
            Exit::Failed {
                command: 0,
                code: 127
            }
        );
        assert!(String::from_utf8_lossy(&f.output.text).contains("not found"));
        // A script without `#!` runs as a shell script, as the shell would run it.
        std::fs::write(d.join("script"), "echo from-script > out\n").unwrap();
        std::fs::set_permissions(
            d.join("script"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        assert_eq!(run(&["./script"]).exit, Exit::Success);
        assert_eq!(
            std::fs::read_to_string(d.join("out")).unwrap(),
            "from-script\n"
        );
        // A redirection into a directory that does not exist: the shell reports it.
        let f = run(&["cat a > no/such/dir/out"]);
        assert!(
            matches!(f.exit, Exit::Failed { command: 0, .. }),
            "{:?}",
            f.exit
        );
        assert!(!String::from_utf8_lossy(&f.output.text).is_empty());
    }

    /// Whether process `pid` is still running (a zombie waiting to be reaped is not).
    fn running(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).is_ok_and(|s| {
            s.rsplit(") ")
                .next()
                .is_some_and(|rest| !rest.starts_with('Z'))
        })
    }

    fn timeout_runner(dir: &Path, limit: Duration) -> Runner {
        Runner::new(
            1,
            Config {
                cwd: dir.to_path_buf(),
                scratch: dir.join("tmp"),
                clock: None,
                memory_limit: 1 << 20,
                logs: dir.join("logs"),
                timeout: Some(limit),
            },
        )
    }

    #[test]
    fn a_command_past_the_time_limit_is_killed_with_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let r = timeout_runner(dir.path(), Duration::from_millis(300));
        let t = Instant::now();
        r.start(job(
            1,
            &["echo before", "sleep 30 & echo $! > bg.pid; sleep 30; wait"],
            dir.path(),
        ));
        let f = r.results().recv().unwrap();
        assert_eq!(f.exit, Exit::TimedOut { command: 1 });
        // Killed at the deadline, not after the second kiln gives a process that left the group.
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(String::from_utf8_lossy(&f.output.text), "before\n");
        let bg = std::fs::read_to_string(dir.path().join("bg.pid")).unwrap();
        let gone = Instant::now() + Duration::from_secs(2);
        while running(&bg) && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !running(&bg),
            "the background child {bg} outlived the timeout"
        );
        // A quick command is not affected.
        r.start(job(2, &["echo quick"], dir.path()));
        assert_eq!(r.results().recv().unwrap().exit, Exit::Success);
    }

    #[test]
    fn the_time_limit_holds_after_a_command_closes_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let r = timeout_runner(dir.path(), Duration::from_millis(300));
        let t = Instant::now();
        r.start(job(1, &["exec >/dev/null 2>&1; sleep 30"], dir.path()));
        assert_eq!(
            r.results().recv().unwrap().exit,
            Exit::TimedOut { command: 0 }
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // One that closes its output and ends in time keeps its own exit status.
        r.start(job(
            2,
            &["exec >/dev/null 2>&1; sleep 0.05; exit 3"],
            dir.path(),
        ));
        assert_eq!(
            r.results().recv().unwrap().exit,
            Exit::Failed {
                command: 0,
                code: 3
            }
        );
    }

    #[test]
    fn signal_reaches_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let r = runner(dir.path(), 1 << 20);
        r.start(job(1, &["sleep 30 & sleep 30; wait"], dir.path()));
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        r.signal(rustix::process::Signal::TERM);
        let f = r.results().recv().unwrap();
        assert!(
            matches!(f.exit, Exit::Signaled { signal: 15, .. }),
            "{:?}",
            f.exit
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
