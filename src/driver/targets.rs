//! Target selection: `--targets` and positional targets name generators or outputs; the tasks
//! they need, and, as waf does, every task of the groups before the last group that holds one.
//! A build that names nothing builds every generator but those with `default = false` (and what
//! they alone need), as `make` builds its first target and not `check`.

use super::Build;
use crate::error::Error;
use crate::paths;
use crate::ids::{GenId, GroupId};
use crate::ids::TaskId;

/// What a named target stands for.
#[derive(Debug, Clone, Copy)]
enum Root {
    /// A generator: every task it makes.
    Generator(GenId),
    /// An output path: the task that makes it.
    Task(TaskId),
}

impl Build<'_> {
    /// The selected tasks of a group, in creation order.
    pub(super) fn group_tasks(&self, g: GroupId) -> Vec<TaskId> {
        self.expansion
            .graph
            .task_ids()
            .filter(|t| self.expansion.graph.task(*t).group == g && self.is_selected(*t))
            .collect()
    }

    pub(super) fn is_selected(&self, t: TaskId) -> bool {
        self.selected
            .as_ref()
            .is_none_or(|s| s.get(t.index()).copied().unwrap_or(false))
    }

    /// `--targets`: the named generators' or outputs' tasks and everything they need; without
    /// targets, every default generator's. Made again after every expansion of a lazy group,
    /// which may add tasks to the selection.
    pub(super) fn select_targets(&mut self) -> Result<(), Error> {
        let project = self.project;
        let mut roots = Vec::new();
        let mut last_group = 0;
        if self.opts.targets.is_empty() {
            if project.gens.iter().all(|g| g.default) {
                return Ok(());
            }
            roots.extend(
                (0..project.gens.len())
                    .filter(|&g| project.gens[g].default)
                    .map(Root::Generator),
            );
        }
        for target in &self.opts.targets {
            if let Some(g) = project.gen_named(target) {
                last_group = last_group.max(project.gens[g].group);
                roots.push(Root::Generator(g));
                continue;
            }
            let path = paths::normalize(target);
            // An output path means its producer; a declared target of a group not expanded yet
            // means its generator.
            match self.expansion.graph.lookup(&path).and_then(|f| {
                self.expansion
                    .graph
                    .producer(f)
                    .map(Root::Task)
                    .or_else(|| {
                        self.expansion
                            .gen_outputs
                            .iter()
                            .position(|outs| outs.contains(&f))
                            .map(Root::Generator)
                    })
            }) {
                Some(found) => {
                    let group = match found {
                        Root::Generator(g) => project.gens[g].group,
                        Root::Task(t) => self.expansion.graph.task(t).group,
                    };
                    last_group = last_group.max(group);
                    roots.push(found);
                }
                // It may be an output of a lazy group not expanded yet: everything before the
                // last group is built, and the selection is made again after each expansion.
                None if !self.expansion.complete() => last_group = project.groups.len() - 1,
                None => {
                    let names = project.gens.iter().map(|g| g.name.as_str());
                    let mut msg = format!(
                        "unknown target `{target}`: not a generator name nor an output kiln knows"
                    );
                    if let Some(close) = crate::error::did_you_mean(target, names) {
                        msg.push_str(&format!(" (did you mean `{close}`?)"));
                    }
                    return Err(Error::Usage(msg));
                }
            }
        }
        let mut selected = vec![false; self.expansion.graph.tasks().len()];
        let mut stack: Vec<TaskId> = Vec::new();
        for root in roots {
            match root {
                Root::Generator(g) => stack.extend(self.expansion.gen_tasks[g].iter().copied()),
                Root::Task(t) => stack.push(t),
            }
        }
        {
            // As waf does: groups before the last one named are built whole (they make what later
            // groups read without naming it: generated headers, files a lazy glob finds).
            // (Not the generators built only when named.)
            let graph = &self.expansion.graph;
            stack.extend(graph.task_ids().filter(|&t| {
                let task = graph.task(t);
                task.group < last_group && project.gens[task.generator].default
            }));
        }
        while let Some(t) = stack.pop() {
            if std::mem::replace(&mut selected[t.index()], true) {
                continue;
            }
            // Declared inputs and the implicit dependencies recorded last time.
            self.each_producer(t, |p| stack.push(p));
        }
        self.selected = Some(selected);
        Ok(())
    }
}
