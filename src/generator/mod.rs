//! Task generators to tasks. A generator's `source` entries are resolved (another generator's
//! output, a glob over the tree, or a plain file: `sources.rs`), mapped through the rules whose
//! `ext_in` take them (`src/a.c` -> `build/src/a.o`, chaining until no rule takes the extension or
//! the generator's own rule does: `mapping.rs`), and fed with the outputs of the generators it
//! `use`s into its own task (`task.rs`, which expands commands and refuses duplicate outputs).
//! Every error is located in the build file: a missing source, two generators declaring one
//! output, an output outside the build directory, a reference to a later group. This module holds
//! the [`Expansion`] and its order: groups, generators within a group, one generator's steps.
//!
//! Expansion is per group so that a lazy project can expand a group after the earlier ones ran.

mod mapping;
mod sources;
mod task;

use crate::env::Layered;
use crate::error::{Diagnostic, Error};
use crate::graph::Graph;
use crate::ids::{Fast, FileId, GenId, GroupId, RuleId};
use crate::outdir::STATE_DIR;
use crate::paths;
use crate::project::{Located, Project};
use crate::template::Template;
use crate::task::{Files, TaskEnv, Tasks};
use sources::SourceDirs;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use task::{After, duplicate};

/// The tasks of the groups expanded so far, and what expansion learned on the way.
#[derive(Debug)]
pub struct Expansion {
    pub graph: Graph,
    /// The tasks each generator made, in creation order.
    pub gen_tasks: Vec<Tasks>,
    /// Each generator's outputs: its targets, or what its sources were mapped to.
    pub gen_outputs: Vec<Files>,
    /// Which groups have been expanded.
    pub expanded: Vec<bool>,
    /// Things worth telling the user (a glob that matched nothing).
    pub warnings: Vec<String>,
    /// Which generators have been expanded.
    done: Vec<bool>,
    /// Every directory a glob walked, with its stat then, for knowing when a cached expansion
    /// is still valid.
    pub glob_dirs: BTreeMap<String, Option<crate::filestate::Stat>>,
    /// Declared targets by kiln path and by the text written (relative to out/).
    declared: HashMap<String, GenId, Fast>,
    declared_text: HashMap<String, String, Fast>,
    /// What the directories of plain-path sources hold, while a group is being expanded.
    sources: SourceDirs,
    /// The env list of the tasks of a generator and rule, made for the first of them.
    task_env: HashMap<(GenId, RuleId), TaskEnv>,
}

/// Why a generator could not be expanded: a source that may yet appear (retry later), or anything
/// else.
enum Failure {
    Missing(Error),
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

impl From<Diagnostic> for Failure {
    fn from(d: Diagnostic) -> Self {
        Failure::Fatal(d.into())
    }
}

impl Expansion {
    /// Resolves every generator's declared targets, so that sources can refer to them before the
    /// generator that makes them is expanded.
    pub fn new(project: &Project) -> Result<Expansion, Error> {
        let mut expansion = Expansion {
            graph: Graph::default(),
            gen_tasks: vec![Tasks::new(); project.gens.len()],
            gen_outputs: vec![Files::new(); project.gens.len()],
            expanded: vec![false; project.groups.len()],
            warnings: Vec::new(),
            done: vec![false; project.gens.len()],
            glob_dirs: BTreeMap::new(),
            declared: HashMap::default(),
            declared_text: HashMap::default(),
            sources: SourceDirs::default(),
            task_env: HashMap::new(),
        };
        let state_dir = paths::join(&project.out, STATE_DIR);
        for (g, gn) in project.gens.iter().enumerate() {
            let Some(rule) = gn.rule else { continue };
            let update = project.rules[rule].update_outputs;
            let env = Layered {
                top: &gn.env,
                base: project.env_of(g),
            };
            for t in &gn.targets {
                let text = t.value.expand_plain(&env, &project.out_from(g)).map_err(|e| {
                    project.template_error(
                        t,
                        &e,
                        &format!("in `target` of generator `{}`", gn.name),
                    )
                })?;
                if text.trim().is_empty() {
                    return Err(project.error_at(t.span.clone(), "an empty target").into());
                }
                if text.starts_with('/') {
                    return Err(project
                        .error_at(t.span.clone(), format!("target `{text}` is absolute"))
                        .note(format!(
                            "expected a path relative to the build directory `{}`",
                            project.out
                        ))
                        .into());
                }
                // Relative to the generator's directory: in the source tree, or mirrored under
                // the build directory.
                let in_tree = paths::join(project.dir_of(g), &text);
                let path = if update {
                    in_tree.clone()
                } else {
                    paths::join(&project.out, &in_tree)
                };
                if update && paths::is_outside_project(&path) {
                    return Err(project
                        .error_at(t.span.clone(), format!("output `{path}` lies outside the project"))
                        .note("an update_outputs target is relative to the build file's directory and must stay inside it")
                        .into());
                }
                if !update && !paths::is_within(&path, &project.out) {
                    return Err(project
                        .error_at(
                            t.span.clone(),
                            format!(
                                "output `{path}` lies outside the build directory `{}`",
                                project.out
                            ),
                        )
                        .note("targets are relative to the build directory; `..` may not leave it")
                        .into());
                }
                if paths::is_within(&path, &state_dir) || (!update && path == project.out) {
                    return Err(project
                        .error_at(
                            t.span.clone(),
                            format!("output `{path}` would overwrite kiln's own state"),
                        )
                        .note("name a file inside the build directory")
                        .into());
                }
                if let Some(&other) = expansion.declared.get(&path) {
                    return Err(duplicate(project, &path, other, g)
                        .with_span(t.span.clone())
                        .into());
                }
                expansion.declared.insert(path.clone(), g);
                expansion.declared_text.insert(in_tree, path.clone());
                let id = expansion.graph.file(&path);
                expansion.gen_outputs[g].push(id);
            }
        }
        Ok(expansion)
    }

    /// An expansion read back from the graph cache: every group expanded.
    pub fn from_cache(
        graph: Graph,
        gen_tasks: Vec<Tasks>,
        gen_outputs: Vec<Files>,
        groups: usize,
        warnings: Vec<String>,
        glob_dirs: BTreeMap<String, Option<crate::filestate::Stat>>,
    ) -> Expansion {
        let gens = gen_tasks.len();
        Expansion {
            graph,
            gen_tasks,
            gen_outputs,
            expanded: vec![true; groups],
            warnings,
            glob_dirs,
            done: vec![true; gens],
            declared: HashMap::default(),
            declared_text: HashMap::default(),
            sources: SourceDirs::default(),
            task_env: HashMap::new(),
        }
    }

    /// The output that `path` (a kiln path) names when it is a generator's declared target, as
    /// written (relative to the generator's directory) or by its path in the build directory.
    pub fn declared_output(&self, path: &str) -> Option<&str> {
        match self.declared_text.get(path) {
            Some(p) => Some(p),
            None => self.declared.get_key_value(path).map(|(p, _)| p.as_str()),
        }
    }

    /// Whether every group has been expanded.
    pub fn complete(&self) -> bool {
        self.expanded.iter().all(|&e| e)
    }

    /// The whole project expanded, every group in order.
    pub fn expand_all(project: &Project) -> Result<Expansion, Error> {
        let mut expansion = Expansion::new(project)?;
        for g in 0..project.groups.len() {
            expansion.expand_group(project, g)?;
        }
        Ok(expansion)
    }

    /// Expands every generator of `group` into tasks.
    pub fn expand_group(&mut self, project: &Project, group: GroupId) -> Result<(), Error> {
        if self.expanded[group] {
            return Ok(());
        }
        // A source that does not exist yet may be the mapped output of a generator later in the
        // group: such a generator waits until the others are expanded, and the error stands only
        // when a round makes no progress.
        self.sources = SourceDirs::default();
        let mut pending = self.group_order(project, group)?;
        while !pending.is_empty() {
            let mut deferred = Vec::new();
            let mut missing = None;
            let mut progressed = false;
            for g in pending {
                let waits_for_use = project
                    .needs(g)
                    .any(|(u, _)| project.gens[*u].group == group && !self.done[*u]);
                if waits_for_use {
                    deferred.push(g);
                    continue;
                }
                let warnings = self.warnings.len();
                match self.expand_gen(project, g) {
                    Ok(()) => {
                        self.done[g] = true;
                        progressed = true;
                    }
                    Err(Failure::Missing(e)) => {
                        self.warnings.truncate(warnings);
                        missing.get_or_insert(e);
                        deferred.push(g);
                    }
                    Err(Failure::Fatal(e)) => return Err(e),
                }
            }
            if !progressed {
                // Nothing left can resolve the missing source: report it. (Without one, only
                // `use` holds generators back, and `use` within a group is acyclic and ordered.)
                match missing {
                    Some(e) => return Err(e),
                    None => break,
                }
            }
            pending = deferred;
        }
        self.sources = SourceDirs::default();
        self.check_group_order(project)?;
        self.expanded[group] = true;
        Ok(())
    }

    /// Every task reads only outputs of its own group or earlier ones (a plain path can name a
    /// file that a later group turns out to make).
    fn check_group_order(&self, project: &Project) -> Result<(), Error> {
        for t in self.graph.task_ids() {
            let task = self.graph.task(t);
            for f in task.follows() {
                let Some(p) = self.graph.producer(f) else {
                    continue;
                };
                let producer = self.graph.task(p);
                if producer.group > task.group {
                    return Err(later_group(
                        project,
                        task.generator,
                        producer.generator,
                        project.gens[task.generator].span.clone(),
                    )
                    .into());
                }
            }
        }
        Ok(())
    }

    /// The generators of a group, those `use`d first, otherwise in declared order.
    fn group_order(&self, project: &Project, group: GroupId) -> Result<Vec<GenId>, Error> {
        let members: Vec<GenId> = (0..project.gens.len())
            .filter(|&g| project.gens[g].group == group)
            .collect();
        let mut order = Vec::with_capacity(members.len());
        let mut state = vec![0u8; project.gens.len()]; // 0 new, 1 on stack, 2 done
        for &start in &members {
            let mut stack = vec![(start, 0usize)];
            while let Some(&mut (g, ref mut next)) = stack.last_mut() {
                if *next == 0 {
                    if state[g] == 2 {
                        stack.pop();
                        continue;
                    }
                    state[g] = 1;
                }
                if let Some(&(u, ref span)) = project.needs(g).nth(*next) {
                    *next += 1;
                    if project.gens[u].group != group {
                        if project.gens[u].group > group {
                            return Err(later_group(project, g, u, span.clone()).into());
                        }
                        continue;
                    }
                    match state[u] {
                        0 => stack.push((u, 0)),
                        1 => {
                            let mut names: Vec<&str> = stack
                                .iter()
                                .map(|&(x, _)| project.gens[x].name.as_str())
                                .collect();
                            let from = names
                                .iter()
                                .position(|n| *n == project.gens[u].name)
                                .unwrap_or(0);
                            names.drain(..from);
                            names.push(&project.gens[u].name);
                            return Err(project
                                .error_at(
                                    span.clone(),
                                    format!("`use` cycle: {}", names.join(" -> ")),
                                )
                                .note("a generator cannot depend on itself through `use` or `deps`")
                                .into());
                        }
                        _ => {}
                    }
                } else {
                    state[g] = 2;
                    order.push(g);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }

    /// Expands generator `g`: resolves its sources and deps, maps the sources through the rules
    /// that take them, and makes its own task (or one per source).
    fn expand_gen(&mut self, project: &Project, g: GenId) -> Result<(), Failure> {
        let gn = &project.gens[g];
        let excludes = self.excludes(project, g)?;
        let mut sources = Vec::new();
        for entry in &gn.sources {
            self.resolve(project, g, entry, "source", &excludes, &mut sources)?;
        }
        let mut deps = self.resolve_after(project, g, &gn.deps, &gn.dep_gens, "deps")?;
        let mut seen = BTreeSet::new();
        sources.retain(|f| seen.insert(*f));

        let mut used = self.used(project, g);
        if gn.rule.is_none() {
            // A generator without a task of its own orders its mapped tasks after what it uses.
            deps.extend(used.iter().copied());
            used.clear();
        }
        deps.sort_unstable();
        deps.dedup();

        let mut order_only =
            self.resolve_after(project, g, &gn.order_only, &gn.order_gens, "order_only")?;
        order_only.sort_unstable();
        order_only.dedup();
        let after = After {
            deps: deps.into(),
            order_only: order_only.into(),
        };

        let fed = self.map_sources(project, g, &sources, &after)?;
        self.own_task(project, g, fed, used, after)?;
        Ok(())
    }

    /// The files a `deps` or `order_only` key names: its path entries resolved, and the outputs of
    /// the generators it names.
    fn resolve_after(
        &mut self,
        project: &Project,
        g: GenId,
        entries: &[Located<Template>],
        gens: &[(GenId, std::ops::Range<usize>)],
        key: &str,
    ) -> Result<Vec<FileId>, Failure> {
        let mut files = Vec::new();
        for entry in entries {
            self.resolve(project, g, entry, key, &[], &mut files)?;
        }
        for (d, _) in gens {
            files.extend(self.gen_outputs[*d].iter().copied());
        }
        Ok(files)
    }
}

fn later_group(
    project: &Project,
    g: GenId,
    producer: GenId,
    span: std::ops::Range<usize>,
) -> Diagnostic {
    let (a, b) = (&project.gens[g], &project.gens[producer]);
    project
        .error_at(
            span,
            format!(
                "generator `{}` (group `{}`) needs generator `{}`, which is in the later group `{}`",
                a.name, project.groups[a.group].name, b.name, project.groups[b.group].name
            ),
        )
        .note("groups run in order: move the producer to the same or an earlier group")
}
