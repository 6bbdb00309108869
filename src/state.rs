//! The one task-state enum: where a task is in a build. Its final states are waf's; the three
//! before them are the scheduler's. The scheduler moves a task from `Waiting` to `Ready` to
//! `Running`; the build loop settles it in a final state, or the scheduler settles it `NotRun`
//! when a failure upstream (or a stop) means it never starts.

/// Where a task is in a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Some task it follows has not finished yet.
    Waiting,
    /// Everything it follows has finished: it may start.
    Ready,
    /// Handed out by the scheduler: being decided, or running.
    Running,
    /// Never started: it depends on a task that failed or did not run, or the build stopped
    /// first (waf's NOT_RUN).
    NotRun,
    /// Its commands succeeded without making a declared output (MISSING).
    Missing,
    /// A command exited non-zero, was killed, or ran past `--timeout` (CRASHED).
    Crashed,
    /// kiln could not run it: no shell, an unreadable depfile, an output directory through a
    /// symlink (EXCEPTION).
    Exception,
    /// Up to date: its signature and outputs match its record (SKIPPED).
    Skipped,
    /// It ran and made every declared output (SUCCESS).
    Success,
}

impl TaskState {
    /// Whether the task has ended, one way or another.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            TaskState::Waiting | TaskState::Ready | TaskState::Running
        )
    }

    /// Whether what depends on it may run: it ended up to date or made its outputs.
    pub fn is_ok(self) -> bool {
        matches!(self, TaskState::Skipped | TaskState::Success)
    }

}
