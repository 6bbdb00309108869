//! The group loop: groups in order, each planned (constraints) and handed to the scheduler; each
//! task it offers is decided then, started on the runner, and recorded when it finishes. A failure
//! stops the starting of new tasks (or with keep-going blocks only what depends on it); a signal
//! stops everything cleanly, and the loop never returns early while commands run.

use super::record::Failure;
use super::report::{signal_name, task_line};
use super::scan::{Decision, Prediction};
use super::{Build, TaskState};
use crate::constraints::{self, NodeId, PlanNode, TaskFacts};
use crate::error::Error;
use crate::filestate::DirRefused;
use crate::interrupt;
use crate::paths;
use crate::ids::GroupId;
use crate::paths::absolute;
use crate::runner::{Commands, Job, Wake};
use crate::scheduler::{Note, Scheduler};
use crate::stats;
use crate::trace;
use crate::ids::TaskId;
use crossbeam_channel::Receiver;
use std::collections::HashMap;
use std::time::Instant;

/// How long commands may take to end after an interrupt is passed on before they are killed.
const KILL_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl Build<'_> {
    /// Runs every group in order on `runner` (none in a dry run); the exit status, or `None`
    /// when the cached graph proved stale before anything ran.
    pub(super) fn run(
        &mut self,
        mut runner: Option<&mut (dyn Commands + '_)>,
        signals: &Receiver<i32>,
        first_lazy: usize,
        started: Instant,
    ) -> Result<Option<i32>, Error> {
        let groups = self.project.groups.len();
        let expanded: Vec<GroupId> = (0..first_lazy.min(groups)).collect();
        if !self.after_expansion(&expanded)? {
            return Ok(None);
        }
        for g in 0..groups {
            if self.interrupted.is_some() || (!self.failed.is_empty() && !self.opts.keep_going) {
                self.count_unreached(g);
                continue;
            }
            if !self.expansion.expanded[g] {
                if let Err(e) = self.expansion.expand_group(self.project, g) {
                    if !self.opts.dry_run {
                        return Err(e);
                    }
                    // What the earlier groups would make is not there yet: the dry run ends.
                    self.progress.message(&format!(
                        "note: the dry run stops before group `{}`, which cannot be expanded until the earlier groups have run:\n{}",
                        self.project.groups[g].name,
                        e.to_string().trim_end()
                    ));
                    break;
                }
                for w in std::mem::take(&mut self.expansion.warnings) {
                    self.progress.message(&format!("warning: {w}"));
                }
                self.after_expansion(&[g])?;
            }
            self.run_group(g, runner.as_deref_mut(), signals);
        }
        stats::mark("run");
        self.write_timings();
        let code = self.summary(started);
        self.save_cache();
        if self.settle_wanted {
            self.settled = self.settle();
        }
        Ok(Some(code))
    }

    /// The scheduler's plan for `tasks` of group `g`.
    pub(super) fn plan(&self, g: GroupId, tasks: &[TaskId]) -> Result<Vec<PlanNode>, Error> {
        let facts = TaskFacts {
            implicit: &|t| {
                let mut files = self.implicit[t.index()].clone();
                files.extend_from_slice(self.scanned_files(t));
                files
            },
            weight: &|t| self.record(t).map_or(1, |r| r.duration_ms + 1),
            blocked: &|_| false,
        };
        constraints::plan_group(self.project, &self.expansion.graph, g, tasks, &facts)
    }

    pub(super) fn run_group(
        &mut self,
        g: GroupId,
        mut runner: Option<&mut (dyn Commands + '_)>,
        signals: &Receiver<i32>,
    ) {
        let Some(mut nodes) = self.plans[g].take() else {
            return;
        };
        let mut blocked_at_start = Vec::new();
        for node in &mut nodes {
            if let Some(t) = node.task {
                let task = self.expansion.graph.task(t);
                let poisoned = task
                    .follows()
                    .chain(self.implicit[t.index()].iter().copied())
                    .chain(self.scanned_files(t).iter().copied())
                    .find(|f| self.poisoned.contains(f));
                node.blocked = poisoned.is_some();
                if let Some(by) = poisoned.and_then(|f| self.expansion.graph.producer(f)) {
                    blocked_at_start.push((t, by));
                }
            }
        }
        let cap = self.project.groups[g]
            .jobs
            .map_or(self.opts.jobs, |j| j.min(self.opts.jobs));
        // The scheduler owns the limit: it hands the runner no more than `cap` jobs at once, and
        // none once a failure (without keep-going) or an interrupt has stopped it, so no task
        // starts after the failure that stops the build.
        let node_of: HashMap<TaskId, NodeId> = nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.task?, i)))
            .collect();
        let mut sched = Scheduler::noting(
            nodes,
            cap,
            self.opts.keep_going,
            self.recorder.is_some(),
        );
        for (t, by) in blocked_at_start {
            self.note(t, trace::Decision::BlockedBy(by));
        }
        self.take_notes(&mut sched);
        let mut running: HashMap<usize, NodeId> = HashMap::new();
        loop {
            // With a jobserver, the first running task takes the free slot and each further one
            // a slot held from the jobserver; more are taken as long as tasks are held back.
            if let Some(js) = self.jobserver.as_mut() {
                sched.set_cap(cap.min(1 + js.held()));
                while sched.held_back() && 1 + js.held() < cap && js.try_acquire() {
                    sched.set_cap(cap.min(1 + js.held()));
                }
            }
            while self.interrupted.is_none() {
                // A signal that arrived while tasks were being decided starts nothing new.
                if let Ok(sig) = signals.try_recv() {
                    self.interrupt(sig, runner.as_deref_mut(), &mut sched);
                    break;
                }
                let Some((node, t)) = sched.next_task() else {
                    break;
                };
                // A generated header found only now, by a scan of the headers made since the
                // plan, is waited for.
                let waits: Vec<NodeId> = self
                    .rescan(t)
                    .into_iter()
                    .filter_map(|p| node_of.get(&p).copied())
                    .collect();
                if !waits.is_empty() && sched.wait_for(node, &waits) {
                    self.take_notes(&mut sched);
                    continue;
                }
                let decision = self.decide_now(t);
                self.explain(t, &decision);
                match decision {
                    Decision::Skip => {
                        if self.prediction[t.index()] != Prediction::Decided(Decision::Skip) {
                            // Counted as expected to run, spared by early cutoff: it counts as
                            // done (n jumps forward; N does not shrink).
                            self.spared += 1;
                            self.progress.finished(None, &[]);
                        }
                        let cutoff =
                            self.prediction[t.index()] != Prediction::Decided(Decision::Skip);
                        self.note(t, trace::Decision::Skipped { cutoff });
                        self.state[t.index()] = TaskState::Skipped;
                        sched.finish(node, TaskState::Skipped);
                        self.take_notes(&mut sched);
                    }
                    Decision::Run(_) if self.opts.dry_run => {
                        self.note(t, trace::Decision::WouldRun);
                        self.announce(t, false);
                        self.ran[t.index()] = true;
                        self.state[t.index()] = TaskState::Success;
                        self.progress.finished(Some(t.index()), &[]);
                        sched.finish(node, TaskState::Success);
                        self.take_notes(&mut sched);
                    }
                    Decision::Run(_) => match self.prepare(t) {
                        Ok(job) => {
                            self.note(t, trace::Decision::Started);
                            if let Some(restored) = self.restore(t) {
                                self.announce(t, true);
                                self.finished(restored);
                                let state = self.state[t.index()];
                                self.note(t, trace::Decision::Finished(state));
                                sched.finish(node, state);
                                self.take_notes(&mut sched);
                                continue;
                            }
                            self.announce(t, false);
                            running.insert(t.index(), node);
                            runner
                                .as_deref_mut()
                                .expect("a runner outside dry runs")
                                .start(job);
                        }
                        Err(message) => {
                            self.announce(t, false);
                            let failure =
                                Failure::new(TaskState::Exception, "could not run").detail(message);
                            self.fail(t, failure, &[]);
                            self.note(t, trace::Decision::Finished(TaskState::Exception));
                            sched.finish(node, TaskState::Exception);
                            self.take_notes(&mut sched);
                        }
                    },
                }
                if self.progress.broken() {
                    self.interrupt(interrupt::SIGPIPE, runner.as_deref_mut(), &mut sched);
                }
            }
            if sched.is_done() {
                break;
            }
            // Slots no running task needs go back; held-back tasks wait for one to be free.
            if let Some(js) = self.jobserver.as_mut() {
                let mut trouble = js.release_to(sched.running().saturating_sub(1)).err();
                if sched.held_back() && 1 + js.held() < cap && self.interrupted.is_none() {
                    trouble = trouble.or(js.want().err());
                }
                if let Some(why) = trouble {
                    self.progress.message(&format!("warning: {why}"));
                }
            }
            let never = crossbeam_channel::never();
            let slot = self.jobserver.as_ref().map_or(&never, |js| js.readable());
            // Commands still running a while after an interrupt (a background process ignoring
            // SIGINT, as non-interactive shells make them) are killed.
            let deadline = self
                .interrupted_at
                .map(|at| at + KILL_AFTER)
                .filter(|_| self.signal_count == 1);
            let Some(r) = runner.as_deref_mut() else {
                break;
            };
            match r.wait(signals, slot, deadline) {
                Wake::Slot => {}
                Wake::Finished(finished) => {
                    let node = running
                        .remove(&finished.id)
                        .expect("a finished job was started");
                    let t = finished.id;
                    if let Some(rec) = self.recorder.as_mut()
                        && finished.exit != crate::runner::Exit::NotStarted
                    {
                        rec.ran(trace::Span {
                            task: TaskId(t as u32),
                            lane: finished.worker,
                            start: finished.start,
                            end: finished.start + finished.duration,
                            ok: finished.exit == crate::runner::Exit::Success,
                        });
                    }
                    self.finished(*finished);
                    let state = self.state[t];
                    if state == TaskState::NotRun {
                        self.note(TaskId(t as u32), trace::Decision::NotRun);
                    } else {
                        self.note(TaskId(t as u32), trace::Decision::Finished(state));
                    }
                    sched.finish(node, state);
                    self.take_notes(&mut sched);
                }
                Wake::Signal(sig) => self.interrupt(sig, runner.as_deref_mut(), &mut sched),
                Wake::Deadline => {
                    let sig = self.interrupted.unwrap_or(signal_hook::consts::SIGTERM);
                    self.interrupt(sig, runner.as_deref_mut(), &mut sched);
                }
                Wake::Closed => break,
            }
            if self.progress.broken() && self.interrupted.is_none() {
                self.interrupt(interrupt::SIGPIPE, runner.as_deref_mut(), &mut sched);
            }
        }
        if let Some(why) = self.jobserver.as_mut().and_then(|js| js.release_to(0).err()) {
            self.progress.message(&format!("warning: {why}"));
        }
        for t in sched.not_run().collect::<Vec<_>>() {
            self.note(t, trace::Decision::NotRun);
            self.state[t.index()] = TaskState::NotRun;
            self.poison(t);
            if self.prediction[t.index()] != Prediction::Decided(Decision::Skip) {
                self.not_run += 1;
            }
        }
    }

    /// Counts the expected tasks of a group the build never reached.
    pub(super) fn count_unreached(&mut self, g: GroupId) {
        for t in self.group_tasks(g) {
            self.note(t, trace::Decision::NotRun);
            if self.prediction[t.index()] != Prediction::Decided(Decision::Skip) {
                self.not_run += 1;
            }
        }
    }

    /// Notes a scheduler decision for the traces, when they are kept.
    pub(super) fn note(&mut self, t: TaskId, decision: trace::Decision) {
        if let Some(rec) = self.recorder.as_mut() {
            rec.decide(t, decision);
        }
    }

    /// Moves the scheduler's own notes (ready, blocked by) to the traces.
    fn take_notes(&mut self, sched: &mut Scheduler) {
        for note in sched.take_notes() {
            match note {
                Note::Ready(t) => self.note(t, trace::Decision::Ready),
                Note::Blocked { task, by } => self.note(task, trace::Decision::BlockedBy(by)),
            }
        }
    }

    pub(super) fn poison(&mut self, t: TaskId) {
        let outs = self.recorded_outputs(t);
        self.poisoned.extend(outs);
    }

    pub(super) fn interrupt(
        &mut self,
        sig: i32,
        runner: Option<&mut (dyn Commands + '_)>,
        sched: &mut Scheduler,
    ) {
        self.signal_count += 1;
        sched.stop();
        if self.interrupted.is_none() {
            self.interrupted = Some(sig);
            self.interrupted_at = Some(Instant::now());
            if sig != interrupt::SIGPIPE {
                self.progress.message(&format!(
                    "interrupted by {}: stopping the running commands",
                    signal_name(sig)
                ));
            }
        }
        if let Some(r) = runner {
            let signal = match (self.signal_count, sig) {
                (1, signal_hook::consts::SIGINT) => rustix::process::Signal::INT,
                (1, signal_hook::consts::SIGHUP) => rustix::process::Signal::HUP,
                (1, _) => rustix::process::Signal::TERM,
                _ => rustix::process::Signal::KILL,
            };
            r.signal(signal);
        }
    }

    /// Prints the `[n/N]` line of a task that starts.
    pub(super) fn announce(&mut self, t: TaskId, cached: bool) {
        self.started_count += 1;
        let n = self.started_count + self.spared;
        if n > self.expected {
            self.expected = n;
        }
        let line = task_line(self.project, &self.expansion.graph, t, self.opts.verbose);
        let commands = self
            .opts
            .verbose
            .then_some(self.expansion.graph.task(t).commands.as_slice());
        // A failed run's record keeps no duration.
        let expected = self
            .record(t)
            .filter(|r| r.signature != crate::signature::FAILED)
            .map(|r| std::time::Duration::from_millis(r.duration_ms));
        self.progress.started(&crate::progress::Started {
            task: t.index(),
            n,
            total: self.expected,
            line: &line,
            commands,
            expected,
            cached,
        });
    }

    /// Makes the parent directories of a task's outputs and builds its job.
    pub(super) fn prepare(&mut self, t: TaskId) -> Result<Job, String> {
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        let root = &self.project.root;
        let mut dirs: Vec<&str> = task
            .outputs
            .iter()
            .chain(&task.depfile)
            .map(|&f| paths::parent(graph.path(f)))
            .collect();
        dirs.sort_unstable();
        dirs.dedup();
        let allowed = if task.update_outputs {
            root.as_path()
        } else {
            self.out_canon.as_path()
        };
        for d in dirs {
            // Each directory is checked once a build.
            if self.checked_dirs.contains(d) {
                continue;
            }
            let place = if task.update_outputs {
                "project"
            } else {
                "build directory"
            };
            self.disk
                .make_dir(&absolute(root, d), allowed)
                .map_err(|e| match e {
                    DirRefused::Outside(canon) => format!(
                        "the directory `{d}` resolves to {} through a symlink, outside the {place}; kiln will not write there",
                        canon.display()
                    ),
                    DirRefused::Unresolved(e) => format!("cannot resolve the directory `{d}`: {e}"),
                    DirRefused::Uncreated(e) => format!("cannot create the directory `{d}`: {e}"),
                })?;
            self.checked_dirs.insert(d.to_string());
        }
        // Inputs not hashed yet are hashed by the worker after the run (hot in the page cache).
        let watch = task
            .reads()
            .chain(self.implicit[t.index()].iter().copied())
            .map(|f| {
                let unhashed =
                    self.files[f.index()].stat.is_some() && self.files[f.index()].hash.is_none();
                (absolute(root, graph.path(f)), unhashed)
            })
            .collect();

        Ok(Job {
            id: t.index(),
            commands: task.commands.clone(),
            outputs: self
                .recorded_outputs(t)
                .iter()
                .map(|&f| absolute(root, graph.path(f)))
                .collect(),
            watch,
            depfile: task.depfile.map(|f| absolute(root, graph.path(f))),
            timed: self.scans(t),
            remote: self.remote_spec(t),
        })
    }
}
