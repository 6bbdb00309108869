//! The build lock: an OS file lock on `<out>/.kiln/lock`, so that two kiln processes never work on
//! one build directory at once. The second waits (saying so) or, with `--no-wait`, gives up. The
//! lock dies with its holder, so a killed kiln never leaves a stale lock.
//!
//! Commands must not outlive the kiln that ran them unnoticed: while a build runs commands it also
//! locks `<out>/.kiln/running`, a file its commands inherit. A kiln that ends normally has reaped
//! its commands and removes that file, so a daemon a command left behind (a compiler server, a
//! `setsid` job) holds a lock on a file nobody looks at. A kiln killed with -9 leaves it behind,
//! held by its orphaned commands, and the next kiln waits for them before it starts anything.

use crate::error::Error;
use crate::progress::Progress;
use crossbeam_channel::Receiver;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file's name in kiln's state directory.
const LOCK: &str = "lock";
/// The file a build's commands inherit, locked while they may run.
const RUNNING: &str = "running";

pub struct BuildLock {
    /// Held open (close-on-exec): the lock lasts as long as this descriptor.
    _file: File,
    dir: PathBuf,
}

/// What a kiln that cannot take the lock at once waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Another kiln works in the build directory.
    Kiln,
    /// Commands a killed kiln left running.
    Orphans,
}

/// How acquiring the lock ended, when it did not succeed.
#[derive(Debug)]
pub enum LockError {
    /// Held, and waiting was not wanted.
    Busy(Holder),
    /// A signal arrived while waiting.
    Interrupted(i32),
    Io(io::Error),
}

/// Locks `file` exclusively, waiting unless `wait` is false; `tell` is called once, when it waits.
fn lock_file(
    file: &File,
    holder: Holder,
    wait: bool,
    signals: Option<&Receiver<i32>>,
    tell: &mut Option<impl FnOnce(Holder)>,
) -> Result<(), LockError> {
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {
                if !wait {
                    return Err(LockError::Busy(holder));
                }
                if let Some(tell) = tell.take() {
                    tell(holder);
                }
                if let Some(rx) = signals
                    && let Ok(sig) = rx.recv_timeout(Duration::from_millis(50))
                {
                    return Err(LockError::Interrupted(sig));
                } else if signals.is_none() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Err(TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
}

impl BuildLock {
    /// Takes the lock of the state directory `dir`, then waits for any commands a killed kiln left
    /// running there. When either is held, calls `waiting` once and waits, unless `wait` is false;
    /// a signal on `signals` ends the wait.
    pub fn acquire(
        dir: &Path,
        wait: bool,
        signals: Option<&Receiver<i32>>,
        waiting: impl FnOnce(Holder),
    ) -> Result<BuildLock, LockError> {
        let file = open(&dir.join(LOCK)).map_err(LockError::Io)?;
        let mut tell = Some(waiting);
        lock_file(&file, Holder::Kiln, wait, signals, &mut tell)?;
        let running = dir.join(RUNNING);
        match File::open(&running) {
            Ok(orphans) => {
                lock_file(&orphans, Holder::Orphans, wait, signals, &mut tell)?;
                // They have ended: the file is not needed any more.
                let _ = std::fs::remove_file(&running);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(LockError::Io(e)),
        }
        Ok(BuildLock {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// Locks the file the commands of this build inherit, until the returned guard is dropped
    /// (once every command has been reaped).
    pub fn for_commands(&self) -> io::Result<CommandsLock> {
        let path = self.dir.join(RUNNING);
        let file = open(&path)?;
        // Under the build lock, with any orphans waited for: it is free.
        lock_file(&file, Holder::Orphans, false, None, &mut None::<fn(Holder)>).map_err(|e| match e {
            LockError::Io(e) => e,
            _ => io::Error::other("the commands' lock is held by another process"),
        })?;
        // Commands inherit the descriptor (it is not close-on-exec), so the lock is held until the
        // last of them ends, even if kiln itself is killed.
        rustix::io::fcntl_setfd(&file, rustix::io::FdFlags::empty())?;
        Ok(CommandsLock { _file: file, path })
    }
}

/// The lock a build's commands inherit; dropping it removes the file, so that what the commands
/// left running holds a lock nobody waits for.
pub struct CommandsLock {
    _file: File,
    path: PathBuf,
}

impl Drop for CommandsLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Takes the lock of the build directory `out` (as the user names it) whose state is in
/// `state_dir`, saying what it waits for, or failing at once with `--no-wait` (`wait` false).
/// `Ok(Err(code))` when a signal ended the wait: the exit status to end with.
pub fn take(
    state_dir: &Path,
    out: &str,
    wait: bool,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
) -> Result<Result<BuildLock, i32>, Error> {
    let waiting = |holder| {
        progress.message(&match holder {
            Holder::Kiln => format!("waiting for another kiln working in {out}/ ..."),
            Holder::Orphans => {
                format!("waiting for commands that a killed kiln left running in {out}/ to end ...")
            }
        })
    };
    match BuildLock::acquire(state_dir, wait, Some(signals), waiting) {
        Ok(l) => Ok(Ok(l)),
        Err(LockError::Busy(Holder::Kiln)) => Err(Error::Refused(format!(
            "another kiln is working in {out}/ (and --no-wait was given)"
        ))),
        Err(LockError::Busy(Holder::Orphans)) => Err(Error::Refused(format!(
            "commands that a killed kiln left running in {out}/ have not ended (and --no-wait was given)"
        ))),
        Err(LockError::Interrupted(sig)) => Ok(Err(crate::interrupt::exit_status(sig))),
        Err(LockError::Io(e)) => Err(Error::io("cannot lock the build directory", e)),
    }
}

/// [`take`], where `state_dir` exists; `Ok(Ok(None))` where it does not (nothing to lock).
pub fn take_existing(
    state_dir: &Path,
    out: &str,
    wait: bool,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
) -> Result<Result<Option<BuildLock>, i32>, Error> {
    if !state_dir.is_dir() {
        return Ok(Ok(None));
    }
    Ok(take(state_dir, out, wait, progress, signals)?.map(Some))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = BuildLock::acquire(dir.path(), true, None, |_| {}).unwrap();
        assert!(matches!(
            BuildLock::acquire(dir.path(), false, None, |_| {}),
            Err(LockError::Busy(Holder::Kiln))
        ));
        drop(first);
        assert!(BuildLock::acquire(dir.path(), false, None, |_| {}).is_ok());
    }

    #[test]
    fn commands_left_by_a_killed_kiln_are_waited_for_and_a_finished_builds_are_not() {
        let dir = tempfile::tempdir().unwrap();
        // A kiln killed with -9 leaves the file behind, locked by its orphaned commands.
        let orphan = open(&dir.path().join(RUNNING)).unwrap();
        orphan.try_lock().unwrap();
        assert!(matches!(
            BuildLock::acquire(dir.path(), false, None, |_| {}),
            Err(LockError::Busy(Holder::Orphans))
        ));
        drop(orphan);
        let lock = BuildLock::acquire(dir.path(), false, None, |_| {}).unwrap();
        assert!(!dir.path().join(RUNNING).exists());
        // A build that ends normally removes the file: what its commands left holds nothing.
        let commands = lock.for_commands().unwrap();
        let daemon = commands._file.try_clone().unwrap();
        drop(commands);
        drop(lock);
        assert!(BuildLock::acquire(dir.path(), false, None, |_| {}).is_ok());
        drop(daemon);
    }
}
