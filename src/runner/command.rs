//! One command of a job: started directly or through `/bin/sh -c` (from a script file when too
//! long for one argument) in a process group of its own, its stdout and stderr read through one
//! pipe into an [`OutputBuf`] that spills to a log past a memory limit, killed with its group past
//! the job's deadline or when the build stops.

use super::{Output, Shared, direct};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Commands longer than this run from a script file (Linux takes at most 128 KiB as one argument).
const ARG_LIMIT: usize = 100_000;

/// Waits until `reader` has something to read (or has been closed), or `until` passes; whether it
/// is readable.
pub(super) fn readable_by(reader: &io::PipeReader, until: Instant) -> bool {
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

pub(super) fn kill_group(pgid: i32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

pub(super) fn signal_from_raw(raw: i32) -> rustix::process::Signal {
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

/// Whether a command was killed for running past the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Killed {
    Yes,
    No,
}

pub(super) fn run_command(
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
        let direct = direct::parse(command).and_then(|d| {
            let mut cmd = match shared.program(d.argv[0]) {
                Some(path) => Command::new(path),
                None => Command::new(d.argv[0]),
            };
            // The program sees its name as written, as under the shell.
            cmd.arg0(d.argv[0]);
            cmd.args(&d.argv[1..])
                .envs(config.env.iter().map(|(k, v)| (k, v)))
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
                .envs(config.env.iter().map(|(k, v)| (k, v)))
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
pub(super) struct OutputBuf {
    kept: VecDeque<u8>,
    total: u64,
    limit: usize,
    spilled: bool,
    log_path: PathBuf,
    log: Option<File>,
}

impl OutputBuf {
    pub(super) fn new(limit: usize, log_path: PathBuf) -> Self {
        OutputBuf {
            kept: VecDeque::new(),
            total: 0,
            limit,
            spilled: false,
            log_path,
            log: None,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
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

    /// What is kept in memory.
    pub(super) fn kept(&mut self) -> &[u8] {
        self.kept.make_contiguous()
    }

    pub(super) fn finish(self) -> Output {
        let log = self.log.is_some().then_some(self.log_path);
        Output {
            text: self.kept.into(),
            total: self.total,
            log,
        }
    }
}
