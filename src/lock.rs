//! The build lock: an OS file lock on `<out>/.kiln/lock`, so that two kiln processes never work on
//! one build directory at once. The second waits (saying so) or, with `--no-wait`, gives up. The
//! lock dies with its holders, so a killed kiln never leaves a stale lock; commands inherit its
//! descriptor, so a kiln killed with -9 is still waited for until its orphaned commands end.

use crossbeam_channel::Receiver;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;
use std::time::Duration;

pub struct BuildLock {
    /// Held open: the lock lasts as long as this descriptor (and its inherited copies).
    _file: File,
}

/// How acquiring the lock ended, when it did not succeed.
#[derive(Debug)]
pub enum LockError {
    /// Another kiln holds it and waiting was not wanted.
    Busy,
    /// A signal arrived while waiting.
    Interrupted(i32),
    Io(io::Error),
}

impl BuildLock {
    /// Takes the lock at `path`. When it is held, calls `waiting` once and waits, unless `wait` is
    /// false; a signal on `signals` ends the wait.
    pub fn acquire(
        path: &Path,
        wait: bool,
        signals: Option<&Receiver<i32>>,
        waiting: impl FnOnce(),
    ) -> Result<BuildLock, LockError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(LockError::Io)?;
        let mut told = Some(waiting);
        loop {
            match file.try_lock() {
                Ok(()) => {
                    // Commands inherit the descriptor (it is not close-on-exec), so the lock is
                    // held until the last of them ends, even if kiln itself is killed.
                    rustix::io::fcntl_setfd(&file, rustix::io::FdFlags::empty())
                        .map_err(|e| LockError::Io(e.into()))?;
                    return Ok(BuildLock { _file: file });
                }
                Err(TryLockError::WouldBlock) => {
                    if !wait {
                        return Err(LockError::Busy);
                    }
                    if let Some(tell) = told.take() {
                        tell();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = BuildLock::acquire(&path, true, None, || {}).unwrap();
        assert!(matches!(
            BuildLock::acquire(&path, false, None, || {}),
            Err(LockError::Busy)
        ));
        drop(first);
        assert!(BuildLock::acquire(&path, false, None, || {}).is_ok());
    }
}
