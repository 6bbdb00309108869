//! `--scheduler-trace FILE`: one line per scheduler decision, as SCons' Taskmaster trace writes
//! them: the seconds since kiln started, the task (its first output, or its generator's name),
//! and the decision: `ready`, `started`, `skipped up to date`, `skipped up to date (inputs
//! unchanged)` (early cutoff), `finished success|missing|crashed|exception`, `blocked by TASK`,
//! `not run`; `would run` in a dry run.

use super::{Decision, Recorder};
use crate::graph::Graph;
use crate::state::TaskState;
use std::fmt::Write;

/// The trace's text.
pub fn render(rec: &Recorder, graph: &Graph) -> String {
    let mut out = String::new();
    for (at, task, decision) in &rec.decisions {
        let what = match decision {
            Decision::Ready => "ready".to_string(),
            Decision::Started => "started".to_string(),
            Decision::WouldRun => "would run".to_string(),
            Decision::Skipped { cutoff: false } => "skipped up to date".to_string(),
            Decision::Skipped { cutoff: true } => {
                "skipped up to date (inputs unchanged)".to_string()
            }
            Decision::Finished(state) => format!("finished {}", state_name(*state)),
            Decision::BlockedBy(by) => format!("blocked by {}", graph.key(*by)),
            Decision::NotRun => "not run".to_string(),
        };
        let secs = at.saturating_duration_since(rec.origin).as_secs_f64();
        let _ = writeln!(out, "{secs:.6} {}: {what}", graph.key(*task));
    }
    out
}

/// A final state as the build file's contract names it.
pub fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Success => "success",
        TaskState::Missing => "missing",
        TaskState::Crashed => "crashed",
        TaskState::Exception => "exception",
        TaskState::Skipped => "skipped",
        TaskState::NotRun => "not run",
        TaskState::Waiting | TaskState::Ready | TaskState::Running => "unfinished",
    }
}
