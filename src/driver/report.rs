//! What a build prints about tasks: `--explain` reasons, the `[n/N]` line's task, signal names,
//! and the summary.

use super::Build;
use super::scan::Decision;
use crate::interrupt;
use crate::progress::TaskLine;
use crate::project::Project;
use crate::ids::TaskId;
use crate::trace;
use std::path::PathBuf;
use std::time::Instant;

impl Build<'_> {
    /// With --explain, says why a task runs (and, for `kiln explain`, that it is up to date).
    pub(super) fn explain(&mut self, t: TaskId, decision: &Decision) {
        let text = match decision {
            Decision::Run(reason) if self.opts.explain => reason.to_string(),
            Decision::Skip if self.opts.explain_targets => "up to date".to_string(),
            _ => return,
        };
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        let name = if task.outputs.is_empty() {
            self.project.rules[task.rule].name.clone()
        } else {
            task.outputs
                .iter()
                .map(|&f| graph.path(f))
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.progress.report(&format!("explain: {name}: {text}"));
    }

    pub(super) fn summary(&mut self, started: Instant) -> i32 {
        let secs = started.elapsed().as_secs_f64();
        let plural = |n: usize| if n == 1 { "task" } else { "tasks" };
        if let Some(sig) = self.interrupted {
            let text = format!(
                "'build' interrupted by {}: {} not run",
                signal_name(sig),
                self.not_run
            );
            self.progress.done(&text);
            return interrupt::exit_status(sig);
        }
        if !self.failed.is_empty() {
            if self.opts.keep_going || self.failed.len() > 1 {
                let failed = std::mem::take(&mut self.failed);
                for (t, why) in &failed {
                    let task = self.expansion.graph.task(*t);
                    let rule = &self.project.rules[task.rule].name;
                    self.progress.message(&format!(
                        "failed ({why}): {}",
                        self.expansion.graph.describe(*t, rule)
                    ));
                }
                self.failed = failed;
            }
            let n = self.failed.len();
            self.progress.done(&format!(
                "'build' failed: {n} {} failed, {} not run",
                plural(n),
                self.not_run
            ));
            return 1;
        }
        if self.opts.explain_targets {
            let n = self.started_count;
            let targets = self.opts.targets.join(", ");
            let verdict = if n == 0 {
                format!("{targets}: up to date")
            } else {
                format!("{targets}: not up to date: {n} {} would run", plural(n))
            };
            self.progress.report(&verdict);
        }
        if self.opts.dry_run {
            let n = self.started_count;
            self.progress.done(&format!(
                "'build' dry run: {n} {} would run ({secs:.3}s)",
                plural(n)
            ));
            return 0;
        }
        let hits = self.caches.as_ref().map(|c| c.hits);
        let remote_hits = self.remote.as_ref().map(|_| self.remote_hits);
        let cached = match (hits, remote_hits) {
            (None, None) => String::new(),
            (a, b) => format!(
                ": {} {}, {} from the cache",
                self.started_count,
                plural(self.started_count),
                a.unwrap_or(0) + b.unwrap_or(0)
            ),
        };
        self.progress
            .done(&format!("'build' finished successfully ({secs:.3}s){cached}"));
        0
    }
}

/// How progress lines and failure reports name a task: with `all`, every input; otherwise at
/// most [`TaskLine::MAX_INPUTS`].
pub(super) fn task_line<'a>(
    project: &'a Project,
    graph: &'a crate::graph::Graph,
    t: TaskId,
    all: bool,
) -> TaskLine<'a> {
    let task = graph.task(t);
    let rule = &project.rules[task.rule];
    TaskLine::new(
        &rule.name,
        rule.color,
        task.inputs.iter().map(|&f| graph.path(f)).collect(),
        task.outputs.iter().map(|&f| graph.path(f)).collect(),
        all,
    )
}

pub(super) fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match usize::try_from(sig)
        .ok()
        .and_then(|n| NAMES.get(n.wrapping_sub(1)))
    {
        Some(name) => name.to_string(),
        None => format!("signal {sig}"),
    }
}

impl Build<'_> {
    /// Writes the traces the options ask for from what the build recorded; a file that cannot be
    /// written is a warning, not a failed build. (The timings page is written earlier, by
    /// [`Build::write_timings`], so that its path comes before the summary.)
    pub(super) fn write_traces(&mut self) {
        let Some(rec) = self.recorder.take() else {
            return;
        };
        let graph = &self.expansion.graph;
        let project = self.project;
        let mut files: Vec<(PathBuf, String)> = Vec::new();
        if let Some(path) = &self.opts.scheduler_trace {
            files.push((path.clone(), trace::scheduler::render(&rec, graph)));
        }
        if let Some(path) = &self.opts.trace {
            let info = |t: TaskId| task_info(project, graph, t);
            files.push((path.clone(), trace::chrome::render(&rec, &info, self.opts.jobs)));
        }
        for (path, text) in files {
            if let Err(e) = std::fs::write(&path, text) {
                self.progress
                    .message(&format!("warning: cannot write {}: {e}", path.display()));
            }
        }
    }

    /// With `--timings`, writes `<out>/kiln-timings.html` from what the build recorded so far (every
    /// task has ended) and says where; not in a dry run, which changes nothing. A page that cannot
    /// be written is a warning.
    pub(super) fn write_timings(&mut self) {
        let Some(rec) = self.recorder.as_ref().filter(|_| self.opts.timings && !self.opts.dry_run)
        else {
            return;
        };
        let graph = &self.expansion.graph;
        let project = self.project;
        let name = project.name.clone().unwrap_or_else(|| {
            let dir = project.root.file_name().map(|n| n.to_string_lossy());
            dir.map_or_else(|| "project".to_string(), |n| n.into_owned())
        });
        let about = trace::timings::About {
            project: &name,
            jobs: self.opts.jobs,
            end: Instant::now(),
        };
        let page = trace::timings::render(
            rec,
            &|t| task_info(project, graph, t),
            &|t| graph.producers_of(t),
            &about,
        );
        let path = self.out_canon.join(trace::timings::FILE);
        match std::fs::write(&path, page) {
            Ok(()) => {
                let shown = crate::paths::join(&project.out, trace::timings::FILE);
                self.progress.message(&format!("timings: {shown}"));
            }
            Err(e) => self
                .progress
                .message(&format!("warning: cannot write {}: {e}", path.display())),
        }
    }
}

/// What the traces and the timings page show of a task.
fn task_info(project: &Project, graph: &crate::graph::Graph, t: TaskId) -> trace::TaskInfo {
    let rule = &project.rules[graph.task(t).rule];
    trace::TaskInfo {
        label: task_line(project, graph, t, false).render(false),
        rule: rule.name.clone(),
        color: rule.color,
        commands: graph.task(t).commands.clone(),
    }
}
