//! What a build did, and when, for the people who look at it afterwards: every scheduler decision
//! (`--scheduler-trace`, as SCons' Taskmaster trace), every task's interval on the worker that ran
//! it and kiln's phases (`--trace`, a Chrome trace; `--timings`, a page). A [`Recorder`] takes
//! them as the build goes, stamped with the time; the writers turn it into files at the end.

use crate::ids::TaskId;
use crate::progress::Color;
use crate::state::TaskState;
use std::time::{Duration, Instant, SystemTime};

pub mod chrome;
pub mod scheduler;
pub mod timings;

/// What a trace or the timings page shows of a task.
pub struct TaskInfo {
    /// Its progress line, `rule: inputs -> outputs`.
    pub label: String,
    pub rule: String,
    /// Its rule's `color`, if the build file gives one.
    pub color: Option<Color>,
    pub commands: Vec<String>,
}

/// A scheduler decision about a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ready,
    Started,
    /// A dry run would run it.
    WouldRun,
    /// Up to date: `cutoff` when it was expected to run and its inputs came back unchanged.
    Skipped { cutoff: bool },
    Finished(TaskState),
    BlockedBy(TaskId),
    NotRun,
}

/// A task's run: when it started and ended, and on which worker.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub task: TaskId,
    pub lane: usize,
    pub start: Instant,
    pub end: Instant,
    /// Whether its commands succeeded.
    pub ok: bool,
}

/// What a build did, as it went.
#[derive(Debug)]
pub struct Recorder {
    /// Time zero of the trace, and the wall clock then.
    pub origin: Instant,
    pub origin_wall: SystemTime,
    pub decisions: Vec<(Instant, TaskId, Decision)>,
    pub spans: Vec<Span>,
}

impl Recorder {
    /// A recorder whose time zero is the process's clock start (`-d stats`' marks), or now.
    pub fn new() -> Recorder {
        let now = Instant::now();
        let origin = crate::stats::spans().0.unwrap_or(now).min(now);
        Recorder {
            origin,
            origin_wall: SystemTime::now() - now.duration_since(origin),
            decisions: Vec::new(),
            spans: Vec::new(),
        }
    }

    pub fn decide(&mut self, task: TaskId, decision: Decision) {
        self.decisions.push((Instant::now(), task, decision));
    }

    pub fn ran(&mut self, span: Span) {
        self.spans.push(span);
    }

    /// Microseconds from time zero to `at`.
    pub fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_micros() as u64
    }

    /// Time zero on the wall clock, in microseconds since the Unix epoch.
    pub fn origin_unix_micros(&self) -> u64 {
        self.origin_wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_micros() as u64
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// The phase of the contract (load, stat, decide, run, save) a `-d stats` mark belongs to.
pub fn phase_of(mark: &str) -> &'static str {
    match mark {
        "stat" | "check" | "check files" | "scan" => "stat",
        m if m.starts_with("check") => "stat",
        "decide" | "plan" | "load snapshot" => "decide",
        "run" => "run",
        m if m.starts_with("save") || m == "flush" => "save",
        _ => "load",
    }
}
