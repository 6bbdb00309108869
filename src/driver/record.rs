//! Recording what finished: a task's outputs and implicit dependencies as its worker found them,
//! its record in the store the moment it finishes, files first seen in a depfile, and a failed
//! or interrupted task's report and record.

use super::append::{Slot, file_record};
use super::report::{signal_name, task_line};
use super::scan::FileState;
use super::{Build, TaskState};
use crate::clean;
use crate::filestate::{Hash, MISSING, Stat};
use crate::paths;
use crate::paths::absolute;
use crate::runner::{Exit, Finished};
use crate::signature;
use crate::store::{Record, TaskRecord};
use crate::ids::{FileId, TaskId};
use std::collections::HashSet;

impl Build<'_> {
    /// Handles a finished job: the task ends (in `self.state`) a success, a failure, or not run.
    pub(super) fn finished(&mut self, f: Finished) {
        let t = TaskId(f.id as u32);
        self.remote_finished(&f.remote);
        // After an interrupt, any command that did not succeed was (or may have been) cut short,
        // even one that caught the signal and exited with a status of its own.
        let interrupted = self.interrupted.is_some() && f.exit != Exit::Success;
        if interrupted {
            self.discard_interrupted(t, &f);
            self.progress.finished(Some(t.index()), &f.output.text);
            return;
        }
        match &f.exit {
            Exit::Success => {}
            Exit::Failed { command, code } => {
                let why = format!("exit status {code}");
                let failure = Failure::new(TaskState::Crashed, why).at(*command);
                self.fail(t, failure, &f.output_text());
                return;
            }
            Exit::Signaled { command, signal } => {
                let why = format!("killed by {}", signal_name(*signal));
                let failure = Failure::new(TaskState::Crashed, why).at(*command);
                self.fail(t, failure, &f.output_text());
                return;
            }
            Exit::Error { command, message } => {
                let failure = Failure::new(TaskState::Exception, "could not run")
                    .detail(message.clone())
                    .at(*command);
                self.fail(t, failure, &f.output_text());
                return;
            }
            Exit::TimedOut { command } => {
                let limit = self.opts.timeout.map_or(0.0, |t| t.as_secs_f64());
                let why = format!("timed out after {limit}s");
                let failure = Failure::new(TaskState::Crashed, why).at(*command);
                self.fail(t, failure, &f.output_text());
                return;
            }
            Exit::NotStarted => {
                self.fail(t, Failure::new(TaskState::NotRun, "not started"), &[]);
                return;
            }
        }
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        let outputs = self.recorded_outputs(t);
        // A declared output the command did not make fails the task.
        for (i, &o) in task.outputs.iter().enumerate() {
            if f.outputs[i].is_none() {
                let failure = Failure::new(TaskState::Missing, "output not made").detail(format!(
                    "the command succeeded but did not make the output `{}`",
                    graph.path(o)
                ));
                self.fail(t, failure, &f.output_text());
                return;
            }
        }
        let implicit_paths = match &f.depfile {
            Some(Err(msg)) => {
                let failure = Failure::new(TaskState::Exception, "bad depfile").detail(msg.clone());
                self.fail(t, failure, &f.output_text());
                return;
            }
            Some(Ok(deps)) => deps.clone(),
            // Without a depfile, the scan's headers (taken just before the run) are the record's.
            None => self
                .scanned_files(t)
                .iter()
                .map(|&f| self.expansion.graph.path(f).to_string())
                .collect(),
        };
        self.progress.finished(Some(t.index()), &f.output_text());

        // Outputs as the worker found them.
        let mut records = Vec::new();
        for (i, &o) in outputs.iter().enumerate() {
            let state = &mut self.files[o.index()];
            state.checked = true;
            match f.outputs[i] {
                Some((stat, hash)) => {
                    state.stat = Some(stat);
                    state.hash = Some(hash.unwrap_or(MISSING));
                    state.recorded_at = if hash.is_some() { f.ended_at } else { i64::MIN };
                    if let Some(hash) = hash {
                        records.push(file_record(
                            &self.expansion.graph,
                            o,
                            stat,
                            hash,
                            f.ended_at,
                        ));
                    }
                }
                None => {
                    state.stat = None;
                    state.hash = Some(MISSING);
                }
            }
        }

        // Implicit dependencies from the depfile, as kiln paths.
        let own: HashSet<FileId> = self
            .expansion
            .graph
            .task(t)
            .reads()
            .chain(outputs.iter().copied())
            .collect();
        let mut implicit = Vec::with_capacity(implicit_paths.len());
        for p in implicit_paths {
            let path = if p.starts_with('/') {
                paths::from_absolute(
                    &self.project.root,
                    std::path::Path::new(&paths::normalize(&p)),
                )
                .unwrap_or(p)
            } else {
                paths::normalize(&p)
            };
            let id = self.expansion.graph.file(&path);
            if !own.contains(&id) && !implicit.contains(&id) {
                implicit.push(id);
            }
        }
        self.report_missing_deps(t, &implicit);
        self.files
            .resize(self.expansion.graph.file_count(), FileState::default());
        let first_seen: Vec<FileId> = implicit
            .iter()
            .copied()
            .filter(|i| !self.files[i.index()].checked)
            .collect();
        // Files stat'ed before the run but never hashed (nothing that could run read them then):
        // their stat now must equal that one, or they changed while the task ran.
        let unhashed: Vec<(FileId, Option<Stat>)> = implicit
            .iter()
            .filter(|i| self.files[i.index()].checked && self.files[i.index()].hash.is_none())
            .map(|&i| (i, self.files[i.index()].stat))
            .collect();
        records.extend(self.learn(&implicit));

        // Did anything the task read change while it ran? Known files are compared with their
        // stat before the run. A file first seen in the depfile has no earlier stat: it counts as
        // changed if its mtime lies after the run started and no later than a fresh reading of
        // the clock taken after it was stat'ed (a file dated in the future tells nothing).
        let task = self.expansion.graph.task(t);
        let watched: Vec<FileId> = task
            .reads()
            .chain(self.implicit[t.index()].iter().copied())
            .collect();
        let mut changed = watched
            .iter()
            .zip(&f.watch)
            .find(|(w, now)| self.files[w.index()].stat != now.map(|(s, _)| s))
            .map(|(w, _)| *w);
        // Hashes the worker took of inputs nobody had hashed: kept if the file is as it was
        // before the run (otherwise the run is not trusted anyway).
        for (&w, now) in watched.iter().zip(&f.watch) {
            let state = &mut self.files[w.index()];
            if state.hash.is_none() {
                match *now {
                    Some((stat, Some(hash))) if state.stat == Some(stat) => {
                        state.hash = Some(hash);
                        state.recorded_at = f.ended_at;
                        records.push(file_record(
                            &self.expansion.graph,
                            w,
                            stat,
                            hash,
                            f.ended_at,
                        ));
                    }
                    _ => state.hash = Some(MISSING),
                }
            }
        }
        if changed.is_none() {
            changed = unhashed
                .iter()
                .find(|(i, before)| self.files[i.index()].stat != *before)
                .map(|(i, _)| *i);
        }
        if changed.is_none() && !first_seen.is_empty() {
            let now = self.clock.as_ref().map_or(i64::MAX, |c| c.fresh());
            changed = first_seen
                .iter()
                .find(|i| {
                    self.files[i.index()]
                        .stat
                        .is_some_and(|s| s.mtime > f.started_at && s.mtime <= now)
                })
                .copied();
        }
        // Kept for the rest of the build, one list per task: without room to grow.
        implicit.shrink_to_fit();
        self.implicit[t.index()] = implicit;
        let graph = &self.expansion.graph;
        let signature = match changed {
            Some(c) => {
                self.progress.message(&format!(
                    "warning: `{}` changed while `{}` ran; it will run again next time",
                    graph.path(c),
                    graph.describe(t, &self.project.rules[task.rule].name)
                ));
                MISSING
            }
            None => self.signature(t),
        };
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        let named = |ids: &mut dyn Iterator<Item = FileId>| -> Vec<(String, Hash)> {
            ids.map(|f| (graph.path(f).to_string(), self.hash(f)))
                .collect()
        };
        records.push((
            Slot::Task(t),
            Record::Task(TaskRecord {
                key: graph.key(t).to_string(),
                group: self.project.groups[task.group].name.clone(),
                signature,
                duration_ms: f.duration.as_millis() as u64,
                update_outputs: task.update_outputs,
                outputs: named(&mut outputs.iter().copied()),
                implicit: named(&mut self.implicit[t.index()].iter().copied()),
                inputs: named(&mut task.reads()),
                commands: task.commands.clone(),
                env: task.env.to_vec(),
            }),
        ));
        self.append(records);
        self.state[t.index()] = TaskState::Success;
        self.ran[t.index()] = true;
        if signature != MISSING {
            self.store(t);
        }
    }

    /// Warns of each implicit dependency of `t` that another task produces with nothing
    /// ordering the two (ninja's missingdeps): no file constraint, `deps` or `order_only` chain,
    /// rule precedence, earlier group, or scan. The build stays correct: the dependency is
    /// recorded and the next build decides with it; but a clean build may run the two in either
    /// order.
    fn report_missing_deps(&mut self, t: TaskId, implicit: &[FileId]) {
        let graph = &self.expansion.graph;
        for &f in implicit {
            let Some(p) = graph.producer(f) else { continue };
            if p == t || self.ordered_before(p, t) || !self.missing_deps.insert((t, p)) {
                continue;
            }
            let rule = |x: TaskId| &self.project.rules[graph.task(x).rule].name;
            let producer_gen = &self.project.gens[graph.task(p).generator].name;
            self.progress.message(&format!(
                "warning: missing dependency: `{}` read `{}`, which `{}` makes, and nothing orders the two; declare it (deps = [\"{producer_gen}\"]) or give rule `{}` scan = \"c\"",
                graph.describe(t, rule(t)),
                graph.path(f),
                graph.describe(p, rule(p)),
                rule(t),
            ));
        }
    }

    /// Whether task `p` is sure to finish before task `t` starts: an earlier group, or in the
    /// same group a chain of file constraints, rule precedence or scanned headers from `t` back to
    /// `p`.
    fn ordered_before(&self, p: TaskId, t: TaskId) -> bool {
        let graph = &self.expansion.graph;
        let (gp, gt) = (graph.task(p).group, graph.task(t).group);
        if gp != gt {
            return gp < gt;
        }
        let mut seen = HashSet::new();
        let mut stack = vec![t];
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            if crate::constraints::precedes(self.project, graph.task(p).rule, graph.task(x).rule) {
                return true;
            }
            let scanned = self.scanned_files(x).iter().filter_map(|&f| graph.producer(f));
            for q in graph.producers_of(x).into_iter().chain(scanned) {
                if q == p {
                    return true;
                }
                if graph.task(q).group == gt {
                    stack.push(q);
                }
            }
        }
        false
    }

    /// States of implicit dependencies not hashed yet (first seen now, or stat'ed before the run
    /// but read by nothing that could run), stat'ed now, hashed and recorded.
    pub(super) fn learn(&mut self, ids: &[FileId]) -> Vec<(Slot, Record)> {
        let mut records = Vec::new();
        for &id in ids {
            if self.files[id.index()].hash.is_some() {
                continue;
            }
            let abs = absolute(&self.project.root, self.expansion.graph.path(id));
            let stat = self.disk.stat(&abs);
            let state = &mut self.files[id.index()];
            state.checked = true;
            state.stat = stat;
            state.hash = Some(MISSING);
            if let Some(stat) = stat {
                // A build seeded by its snapshot has no index of the store: a file new to the
                // graph is hashed rather than looked up.
                let trusted = match self.seeded {
                    Some(_) => None,
                    None => self
                        .store
                        .file(self.expansion.graph.path(id))
                        .filter(|r| r.trusted_for(&stat)),
                };
                let recorded_at = trusted.map_or_else(
                    || self.clock.as_ref().map_or(i64::MIN, |c| c.now()),
                    |r| r.recorded_at,
                );
                let hash = trusted
                    .map(|r| r.hash)
                    .or_else(|| self.disk.hash(&abs).ok());
                let state = &mut self.files[id.index()];
                state.hash = Some(hash.unwrap_or(MISSING));
                state.recorded_at = recorded_at;
                if let (Some(hash), None) = (hash, trusted) {
                    records.push(file_record(
                        &self.expansion.graph,
                        id,
                        stat,
                        hash,
                        recorded_at,
                    ));
                }
            }
        }
        records
    }

    /// A task killed by an interrupt: outputs it changed are deleted, and it is never trusted.
    pub(super) fn discard_interrupted(&mut self, t: TaskId, f: &Finished) {
        let outputs = self.recorded_outputs(t);
        let task = self.expansion.graph.task(t);
        let update = task.update_outputs;
        let key = self.expansion.graph.key(t).to_string();
        for (i, &o) in outputs.iter().enumerate() {
            let before = self.files[o.index()].stat;
            let after = f.outputs.get(i).copied().flatten().map(|(s, _)| s);
            if after.is_some() && after != before && !update {
                let path = self.expansion.graph.path(o).to_string();
                if let Err(e) = clean::remove_inside(&self.project.root, &self.out_canon, &path) {
                    self.progress
                        .message(&format!("warning: cannot delete `{path}`: {e}"));
                }
            }
        }
        // Counted as not run with the scheduler's other tasks that did not run, once.
        self.state[t.index()] = TaskState::NotRun;
        self.poison(t);
        self.append(vec![(Slot::Forget(t), Record::Forget(key))]);
    }

    /// Reports a failed task with why it failed, its commands and everything it printed, and
    /// records it as failed (so that it runs again, and `--explain` says why).
    pub(super) fn fail(&mut self, t: TaskId, failure: Failure, output: &[u8]) {
        let task = self.expansion.graph.task(t);
        let mut text = format!(
            "error: task failed ({}): {}\n",
            failure.why,
            task_line(self.project, &self.expansion.graph, t, self.opts.verbose).render(false)
        );
        if let Some(detail) = &failure.detail {
            text.push_str(detail);
            text.push('\n');
        }
        let chain = task.commands.len();
        for (i, c) in task.commands.iter().enumerate() {
            if chain == 1 {
                text.push_str(&format!("command: {c}\n"));
            } else {
                let failed = if failure.command == Some(i) {
                    " (failed)"
                } else {
                    ""
                };
                text.push_str(&format!("command {} of {chain}{failed}: {c}\n", i + 1));
            }
        }
        self.progress.message(text.trim_end());
        self.progress.finished(Some(t.index()), output);
        self.state[t.index()] = failure.state;
        self.failed.push((t, failure.why));
        self.poison(t);
        // Recorded as failed, with a signature that never matches: it runs again next time
        // whatever its outputs look like, and `--explain` says why.
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        let record = TaskRecord {
            key: graph.key(t).to_string(),
            group: self.project.groups[task.group].name.clone(),
            signature: signature::FAILED,
            duration_ms: 0,
            update_outputs: task.update_outputs,
            outputs: self
                .recorded_outputs(t)
                .iter()
                .map(|&f| (graph.path(f).to_string(), MISSING))
                .collect(),
            implicit: Vec::new(),
            inputs: Vec::new(),
            commands: task.commands.clone(),
            env: task.env.to_vec(),
        };
        self.append(vec![(Slot::Task(t), Record::Task(record))]);
    }
}

/// How a task failed, as its report says it.
pub(super) struct Failure {
    pub(super) state: TaskState,
    /// In a few words a user reads right: "exit status 1", "killed by SIGSEGV".
    pub(super) why: String,
    /// A line more, where there is more to say.
    pub(super) detail: Option<String>,
    /// Which command of the chain failed.
    pub(super) command: Option<usize>,
}

impl Failure {
    pub(super) fn new(state: TaskState, why: impl Into<String>) -> Failure {
        Failure {
            state,
            why: why.into(),
            detail: None,
            command: None,
        }
    }

    pub(super) fn detail(mut self, detail: String) -> Failure {
        self.detail = Some(detail);
        self
    }

    pub(super) fn at(mut self, command: usize) -> Failure {
        self.command = Some(command);
        self
    }
}

impl Finished {
    /// What the commands printed, with a note where it was cut.
    pub(super) fn output_text(&self) -> Vec<u8> {
        match &self.output.log {
            None => self.output.text.clone(),
            Some(log) => {
                let mut text = format!(
                    "[output truncated: {} bytes in all; the whole output is in {}; its end follows]\n",
                    self.output.total,
                    log.display()
                )
                .into_bytes();
                text.extend_from_slice(&self.output.text);
                text
            }
        }
    }
}
