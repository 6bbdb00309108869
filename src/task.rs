//! A task: one command chain with its inputs, outputs and manual dependencies, fully expanded. Files
//! are named by [`FileId`] into the graph's file table; tasks by [`TaskId`] (see [`crate::ids`]).

use crate::ids::{FileId, GenId, GroupId, RuleId, TaskId};
use smallvec::SmallVec;

/// A short list of files, kept inline up to two (most tasks have one output and few inputs).
pub type Files = SmallVec<[FileId; 2]>;

/// A short list of tasks, kept inline up to two.
pub type Tasks = SmallVec<[TaskId; 2]>;

/// The env names a task's signature covers and their values: one list shared by every task a
/// generator makes with one rule (a thousand compiles of a target hold it once).
pub type TaskEnv = std::sync::Arc<[(String, String)]>;

#[derive(Debug, Clone)]
pub struct Task {
    /// The generator that made the task.
    pub generator: GenId,
    pub group: GroupId,
    /// The rule (named or inline) whose command it runs.
    pub rule: RuleId,
    /// `${SRC}`, in order.
    pub inputs: Files,
    /// `${TGT}`, in order.
    pub outputs: Files,
    /// Manual dependencies: in the signature, not in `${SRC}`.
    pub deps: Files,
    /// Files to run after without reading them: their producers run first, and they are in
    /// neither the signature nor `${SRC}` (`order_only`, ninja's `||`).
    pub order_only: Files,
    /// Where the command writes implicit dependencies, if the rule has a depfile.
    pub depfile: Option<FileId>,
    /// The expanded command chain.
    pub commands: Vec<String>,
    /// The env names the signature covers and their values (items joined by a space).
    pub env: TaskEnv,
    /// Runs on every build.
    pub always: bool,
    /// Outputs live in the source tree; clean leaves them alone.
    pub update_outputs: bool,
    /// For a task without outputs, its identity across builds (from its generator's name); a task
    /// with outputs is known by its first one ([`crate::graph::Graph::key`]).
    pub own_key: Option<String>,
}

impl Task {
    /// The files whose producers must run first: what it reads, and its order-only files.
    pub fn follows(&self) -> impl Iterator<Item = FileId> + '_ {
        self.reads().chain(self.order_only.iter().copied())
    }

    /// The files whose content the signature covers: inputs, then manual dependencies.
    pub fn reads(&self) -> impl Iterator<Item = FileId> + '_ {
        self.inputs.iter().chain(&self.deps).copied()
    }
}
