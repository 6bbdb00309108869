//! Making tasks: a rule's command templates and depfile expanded with a generator's env and the
//! task's `${SRC}` and `${TGT}` into a [`Task`], added to the graph unless the same work is there
//! already; two generators declaring or mapping to one output are an error naming both.

use super::Expansion;
use super::mapping::{file_name, has_ext};
use crate::env::Layered;
use crate::error::{Diagnostic, Error};
use crate::graph::Graph;
use crate::ids::{FileId, GenId, RuleId, TaskId};
use crate::paths;
use crate::project::{Located, Project, Rule};
use crate::task::{Files, Task};
use crate::template::{self, Lookup, Paths, Template};
use std::collections::BTreeSet;

/// What every task of a generator runs after: its manual dependencies, in the signature, and its
/// order-only files, not.
pub(super) struct After {
    pub(super) deps: Files,
    pub(super) order_only: Files,
}

impl Expansion {
    /// The generator's own task from `fed` (its sources as mapped) and `used`, ordered after
    /// `after`; with a rule that names `${TGT}` and no target, a task per source instead. A
    /// generator without a rule of its own has as outputs what its sources were mapped to.
    pub(super) fn own_task(
        &mut self,
        project: &Project,
        g: GenId,
        fed: Vec<FileId>,
        used: Vec<FileId>,
        after: After,
    ) -> Result<(), Error> {
        let gn = &project.gens[g];
        match gn.rule {
            // No target, and a command that names one: a task per source, each making its
            // source's mapped output, so that no command runs with an empty `${TGT}`.
            Some(rule) if self.gen_outputs[g].is_empty() && uses_targets(&project.rules[rule]) => {
                let r = &project.rules[rule];
                let mut deps = after.deps.to_vec();
                deps.extend(used);
                deps.sort_unstable();
                deps.dedup();
                let after = After {
                    deps: deps.into(),
                    order_only: after.order_only,
                };
                let mut outputs = Files::new();
                for src in fed {
                    let path = self.graph.path(src).to_string();
                    let ext = r
                        .ext_in
                        .iter()
                        .filter(|e| has_ext(file_name(&path), e))
                        .max_by_key(|e| e.len());
                    let (Some(ext), false) = (ext, r.ext_out.is_empty()) else {
                        return Err(empty_list(project, g, rule, true, &path).into());
                    };
                    let mapped = self.mapped_outputs(project, g, rule, &path, ext);
                    outputs.push(mapped[0]);
                    self.make_task(
                        project,
                        g,
                        rule,
                        smallvec::smallvec![src],
                        mapped,
                        &after,
                    )?;
                }
                self.gen_outputs[g] = outputs;
            }
            Some(rule) => {
                let mut inputs = fed;
                inputs.extend(used);
                let mut seen = BTreeSet::new();
                inputs.retain(|f| seen.insert(*f));
                let outputs = self.gen_outputs[g].clone();
                for o in &outputs {
                    if inputs.contains(o) || after.deps.contains(o) {
                        return Err(project
                            .error_at(
                                gn.span.clone(),
                                format!(
                                    "`{}` is both an output and an input of generator `{}`",
                                    self.graph.path(*o),
                                    gn.name
                                ),
                            )
                            .into());
                    }
                }
                // A generator that names no source at all for a command that uses `${SRC}` is a
                // mistake; a glob that matched nothing is only worth the warning it got.
                if gn.sources.is_empty() && gn.uses.is_empty() && uses_sources(&project.rules[rule])
                {
                    return Err(empty_list(project, g, rule, false, "").into());
                }
                self.make_task(project, g, rule, inputs.into(), outputs, &after)?;
            }
            None => self.gen_outputs[g] = fed.into(),
        }
        Ok(())
    }

    /// Expands rule `rule`'s commands and depfile for a task of generator `g` and adds it to the
    /// graph: the same work declared twice by one generator is one task, two producers of an output
    /// an error.
    pub(super) fn make_task(
        &mut self,
        project: &Project,
        g: GenId,
        rule: RuleId,
        inputs: Files,
        outputs: Files,
        after: &After,
    ) -> Result<TaskId, Error> {
        let gn = &project.gens[g];
        let r = &project.rules[rule];
        let env = Layered {
            top: &gn.env,
            base: project.env_of(g),
        };
        let src: Vec<&str> = inputs.iter().map(|&f| self.graph.path(f)).collect();
        let tgt: Vec<&str> = outputs.iter().map(|&f| self.graph.path(f)).collect();
        let task_paths = Paths {
            src: &src,
            tgt: &tgt,
            out: &project.out,
        };
        let owner = if r.name == gn.name {
            format!("generator `{}`", gn.name)
        } else {
            format!("rule `{}`", r.name)
        };
        let mut commands = Vec::with_capacity(r.commands.len());
        for c in &r.commands {
            let mut buf = String::new();
            c.value
                .expand(&env, &task_paths, true, &mut buf)
                .map_err(|e| expand_error(project, c, &e, &owner, &gn.name))?;
            // Kept for the whole build: without the room its growth left.
            buf.shrink_to_fit();
            commands.push(buf);
        }
        let depfile = match &r.depfile {
            Some(d) => {
                let mut buf = String::new();
                d.value
                    .expand(&env, &task_paths, false, &mut buf)
                    .map_err(|e| expand_error(project, d, &e, &owner, &gn.name))?;
                let path = paths::normalize(&buf);
                let (allowed, place) = if r.update_outputs {
                    (!paths::is_outside_project(&path), "the project")
                } else {
                    (
                        paths::is_within(&path, &project.out) && path != project.out,
                        "the build directory",
                    )
                };
                if !allowed {
                    return Err(project
                        .error_at(d.span.clone(), format!("depfile `{path}` lies outside {place}"))
                        .note(format!("kiln writes only inside {place}: name it after an output, such as \"${{TGT[0]}}.d\""))
                        .into());
                }
                Some(self.graph.file(&path))
            }
            None => None,
        };
        let env_pairs = self
            .task_env
            .entry((g, rule))
            .or_insert_with(|| {
                r.signature_names
                    .iter()
                    .map(|n| {
                        (
                            n.clone(),
                            env.get(n).map(|v| v.join(" ")).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .clone();
        let own_key = outputs.is_empty().then(|| format!("\0{}", gn.name));
        let task = Task {
            generator: g,
            group: gn.group,
            rule,
            inputs,
            outputs,
            deps: after.deps.clone(),
            order_only: after.order_only.clone(),
            depfile,
            commands,
            env: env_pairs,
            always: r.always,
            update_outputs: r.update_outputs,
            own_key,
        };
        // The same work declared twice by one generator is one task; by two generators (two
        // mapping one source to one output), an error naming both, never a silent merge.
        if let Some(existing) = task.outputs.first().and_then(|&o| self.graph.producer(o)) {
            let e = self.graph.task(existing);
            if e.generator != g && e.inputs.len() == 1 && task.inputs == e.inputs {
                let why = if e.commands == task.commands {
                    Differ::Nothing
                } else if e.rule != task.rule {
                    Differ::Rules(e.rule, task.rule)
                } else {
                    Differ::Commands
                };
                return Err(
                    mapped_twice(project, &self.graph, e.generator, g, existing, why).into(),
                );
            }
            if e.rule == task.rule
                && e.inputs == task.inputs
                && e.outputs == task.outputs
                && e.deps == task.deps
                && e.order_only == task.order_only
                && e.depfile == task.depfile
                && e.commands == task.commands
            {
                if !self.gen_tasks[g].contains(&existing) {
                    self.gen_tasks[g].push(existing);
                }
                return Ok(existing);
            }
        }
        match self.graph.add_task(task) {
            Ok(id) => {
                self.gen_tasks[g].push(id);
                Ok(id)
            }
            Err((file, other)) => {
                // A task naming one file twice (an output as its own depfile) has no id yet.
                let other_gen = self
                    .graph
                    .tasks()
                    .get(other.index())
                    .map_or(g, |t| t.generator);
                Err(duplicate(project, self.graph.path(file), other_gen, g).into())
            }
        }
    }
}

/// The command (or depfile) of a rule that names `${TGT}` (with `targets`) or `${SRC}`.
fn using(rule: &Rule, targets: bool) -> Option<&Located<Template>> {
    rule.commands
        .iter()
        .chain(if targets { rule.depfile.as_ref() } else { None })
        .find(|c| c.value.uses_list(targets).is_some())
}

/// Whether a rule's commands or depfile name `${TGT}`.
fn uses_targets(rule: &Rule) -> bool {
    using(rule, true).is_some()
}

/// Whether a rule's commands name `${SRC}`.
fn uses_sources(rule: &Rule) -> bool {
    using(rule, false).is_some()
}

/// A generator would run its command with an empty `${TGT}` (`targets`, for its source `path`)
/// or `${SRC}`: the error points at the command.
fn empty_list(project: &Project, g: GenId, rule: RuleId, targets: bool, path: &str) -> Diagnostic {
    let (gn, r) = (&project.gens[g], &project.rules[rule]);
    let inline = r.name == gn.name;
    let list = if targets { "TGT" } else { "SRC" };
    let whose = if inline {
        "its command".to_string()
    } else {
        format!("rule `{}`", r.name)
    };
    let (what, fix) = match (targets, inline) {
        (true, true) => ("no target", "give it `target = [...]`".to_string()),
        (true, false) => (
            "no target",
            format!(
                "give it `target = [...]`, or give rule `{}` ext_in and ext_out that take `{path}`, for one task per source",
                r.name
            ),
        ),
        (false, _) => (
            "no sources",
            "name its inputs with `source = [...]` or `use = [...]`".to_string(),
        ),
    };
    let span = using(r, targets).map_or(gn.span.clone(), |c| c.span.clone());
    project
        .error_at(
            span,
            format!("generator `{}` has {what}, but {whose} uses ${{{list}}}", gn.name),
        )
        .note(format!("{fix}: a command never runs with an empty ${{{list}}}"))
}

/// How the tasks of two generators mapping one source to one output differ.
enum Differ {
    Nothing,
    Rules(RuleId, RuleId),
    Commands,
}

/// Two generators map one source to one output.
fn mapped_twice(
    project: &Project,
    graph: &Graph,
    first: GenId,
    second: GenId,
    task: TaskId,
    why: Differ,
) -> Diagnostic {
    let (a, b) = (&project.gens[first], &project.gens[second]);
    let t = graph.task(task);
    project
        .error_at(
            b.span.clone(),
            format!(
                "generators `{}` and `{}` both map `{}` to `{}`",
                a.name,
                b.name,
                graph.path(t.inputs[0]),
                graph.path(t.outputs[0])
            ),
        )
        .note(format!(
            "`{}` is at {}; an output has one producer, so kiln will not merge the two",
            a.name,
            project.sources.place(&a.span)
        ))
        .note(match why {
            Differ::Nothing => "give the shared sources a generator of their own with neither `rule` nor `run` (it maps them once) and `use` it from both".to_string(),
            Differ::Rules(a, b) => format!(
                "they map it through rules `{}` and `{}`: give one of them `objdir = \"...\"` so that its mapped outputs are its own",
                project.rules[a].name, project.rules[b].name
            ),
            Differ::Commands => "their commands differ (other env values?), so the two cannot share it: give one of them `objdir = \"...\"` so that its mapped outputs are its own, or map the source in one of them only".to_string(),
        })
}

/// Two generators, or one twice, declare the output `path`.
pub(super) fn duplicate(project: &Project, path: &str, first: GenId, second: GenId) -> Diagnostic {
    let (a, b) = (&project.gens[first], &project.gens[second]);
    let msg = if first == second {
        format!("generator `{}` declares the output `{path}` twice", b.name)
    } else {
        format!(
            "generators `{}` and `{}` both declare the output `{path}`",
            a.name, b.name
        )
    };
    project.error_at(b.span.clone(), msg).note(format!(
        "`{}` is at {}; every output must have one producer",
        a.name,
        project.sources.place(&a.span)
    ))
}

fn expand_error(
    project: &Project,
    t: &Located<Template>,
    e: &template::TemplateError,
    owner: &str,
    gn: &str,
) -> Error {
    project
        .template_error(t, e, owner)
        .note(format!("while expanding a task of generator `{gn}`"))
        .into()
}
