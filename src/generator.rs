//! Task generators to tasks. A generator's `source` entries are resolved (another generator's
//! output, a glob over the tree, or a plain file), mapped through the rules whose `ext_in` take them
//! (`src/a.c` -> `build/src/a.o`, chaining until no rule takes the extension or the generator's own
//! rule does), and fed with the outputs of the generators it `use`s into its own task. Every error is
//! located in the build file: a missing source, two generators declaring one output, an output
//! outside the build directory, a reference to a later group.
//!
//! Expansion is per group so that a lazy project can expand a group after the earlier ones ran.

use crate::env::Layered;
use crate::error::{Diagnostic, Error};
use crate::glob::{self, Pattern};
use crate::graph::Graph;
use crate::ids::{Fast, FileId, GenId, GroupId, RuleId, TaskId};
use crate::outdir::STATE_DIR;
use crate::project::{Located, Project};
use crate::task::{Files, Task, Tasks};
use crate::template::{Lookup, Paths, Template};
use crate::{paths, template};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
}

/// What a plain-path source is on disk.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SourceKind {
    File,
    /// Present, but not a regular file (a directory, most likely).
    NotFile,
    Missing,
}

/// Whether sources exist, read from directory listings: a directory that many sources name is
/// listed once (one `readdir` instead of a `stat` per source); one named by few is not listed.
/// Valid for one expansion of a group only (commands may add files before the next).
#[derive(Default, Debug)]
struct SourceDirs {
    dirs: HashMap<String, DirListing, Fast>,
}

#[derive(Debug)]
enum DirListing {
    /// Asked about this many times so far, each answered by a `stat`.
    Asked(u32),
    Listed(HashMap<Box<[u8]>, SourceKind, Fast>),
    Unreadable,
}

/// A directory is listed once this many of its files have been asked about.
const LIST_AFTER: u32 = 8;

impl SourceDirs {
    fn kind(&mut self, root: &std::path::Path, path: &str) -> SourceKind {
        let stat = |p: &str| match std::fs::metadata(paths::absolute(root, p)) {
            Ok(m) if m.is_file() => SourceKind::File,
            Ok(_) => SourceKind::NotFile,
            Err(_) => SourceKind::Missing,
        };
        let (dir, name) = path.rsplit_once('/').unwrap_or((".", path));
        let listing = match self.dirs.get_mut(dir) {
            Some(l) => l,
            None => self
                .dirs
                .entry(dir.to_string())
                .or_insert(DirListing::Asked(0)),
        };
        match listing {
            DirListing::Asked(n) if *n < LIST_AFTER => {
                *n += 1;
                stat(path)
            }
            DirListing::Asked(_) => {
                let abs = paths::absolute(root, dir);
                *listing = match std::fs::read_dir(&abs) {
                    Ok(entries) => {
                        let mut names = HashMap::default();
                        for e in entries.flatten() {
                            let kind = match e.file_type() {
                                Ok(t) if t.is_file() => SourceKind::File,
                                Ok(t) if t.is_dir() => SourceKind::NotFile,
                                // A symlink or something else: what it leads to decides.
                                _ => match std::fs::metadata(e.path()) {
                                    Ok(m) if m.is_file() => SourceKind::File,
                                    Ok(_) => SourceKind::NotFile,
                                    Err(_) => SourceKind::Missing,
                                },
                            };
                            names.insert(e.file_name().as_encoded_bytes().into(), kind);
                        }
                        DirListing::Listed(names)
                    }
                    Err(_) => DirListing::Unreadable,
                };
                self.kind(root, path)
            }
            DirListing::Listed(names) => names
                .get(name.as_bytes())
                .copied()
                .unwrap_or(SourceKind::Missing),
            DirListing::Unreadable => stat(path),
        }
    }
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

/// Extensions of C and C++ headers.
const HEADERS: [&str; 4] = [".h", ".hh", ".hpp", ".hxx"];

/// The last component of `path`.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether file name `name` ends in extension `ext` and is more than it.
fn has_ext(name: &str, ext: &str) -> bool {
    name.ends_with(ext) && name.len() > ext.len()
}

/// The rule, if any, whose `ext_in` takes `path`, with the matched extension (the longest wins).
fn rule_for<'p>(project: &'p Project, path: &str) -> Option<(RuleId, &'p str)> {
    let name = file_name(path);
    project
        .rules
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.ext_in.iter().map(move |e| (i, e.as_str())))
        .filter(|(_, e)| has_ext(name, e))
        .max_by_key(|(_, e)| e.len())
}

impl Expansion {
    /// Resolves every generator's declared targets, so that sources can refer to them before the
    /// generator that makes them is expanded.
    pub fn new(project: &Project) -> Result<Expansion, Error> {
        let mut x = Expansion {
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
        };
        let state_dir = paths::join(&project.out, STATE_DIR);
        for (g, gn) in project.gens.iter().enumerate() {
            let Some(rule) = gn.rule else { continue };
            let update = project.rules[rule].update_outputs;
            let env = Layered {
                top: &gn.env,
                base: &project.env,
            };
            for t in &gn.targets {
                let text = t.value.expand_plain(&env, &project.out).map_err(|e| {
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
                let path = if update {
                    paths::normalize(&text)
                } else {
                    paths::join(&project.out, &text)
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
                if let Some(&other) = x.declared.get(&path) {
                    return Err(duplicate(project, &path, other, g)
                        .with_span(t.span.clone())
                        .into());
                }
                x.declared.insert(path.clone(), g);
                x.declared_text
                    .insert(paths::normalize(&text), path.clone());
                let id = x.graph.file(&path);
                x.gen_outputs[g].push(id);
            }
        }
        Ok(x)
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
        }
    }

    /// Whether every group has been expanded.
    pub fn complete(&self) -> bool {
        self.expanded.iter().all(|&e| e)
    }

    /// The whole project expanded, every group in order.
    pub fn expand_all(project: &Project) -> Result<Expansion, Error> {
        let mut x = Expansion::new(project)?;
        for g in 0..project.groups.len() {
            x.expand_group(project, g)?;
        }
        Ok(x)
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
            for f in task.reads() {
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

    fn expand_gen(&mut self, project: &Project, g: GenId) -> Result<(), Failure> {
        let gn = &project.gens[g];
        let own_rule = gn.rule;
        let excludes = gn
            .exclude
            .iter()
            .map(|e| {
                let text = self.expand_entry(project, g, e, "exclude")?;
                text.iter()
                    .map(|t| {
                        Pattern::new(&paths::normalize(t))
                            .map_err(|m| Error::from(project.error_at(e.span.clone(), m)))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();

        let mut sources = Vec::new();
        for entry in &gn.sources {
            self.resolve(project, g, entry, "source", &excludes, &mut sources)?;
        }
        let mut deps = Vec::new();
        for entry in &gn.deps {
            self.resolve(project, g, entry, "deps", &[], &mut deps)?;
        }
        for (d, _) in &gn.dep_gens {
            deps.extend(self.gen_outputs[*d].iter().copied());
        }
        let mut seen = BTreeSet::new();
        sources.retain(|f| seen.insert(*f));

        let mut used = Vec::new();
        for (u, _) in &gn.uses {
            used.extend(self.gen_outputs[*u].iter().copied());
            // A generated header `use`d by a generator with a task of its own lands in that
            // task's `${SRC}` (archived, linked): almost always a mistake for `deps`.
            if let Some(rule) = own_rule {
                let r = &project.rules[rule];
                let header = self.gen_outputs[*u]
                    .iter()
                    .map(|&f| self.graph.path(f))
                    .find(|p| {
                        HEADERS
                            .iter()
                            .any(|h| has_ext(file_name(p), h) && !r.ext_in.iter().any(|e| e == h))
                    });
                if let Some(header) = header {
                    let used_name = &project.gens[*u].name;
                    self.warnings.push(format!(
                        "generator `{}` uses `{used_name}`, so the header `{header}` is an input of rule `{}` (in its ${{SRC}}); to run after it without passing it, write deps = [\"{used_name}\"]",
                        gn.name, r.name
                    ));
                }
            }
        }
        if own_rule.is_none() {
            // A generator without a task of its own orders its mapped tasks after what it uses.
            deps.extend(used.iter().copied());
            used.clear();
        }
        deps.sort_unstable();
        deps.dedup();

        // The generator's own rule takes a source when one of its extensions ends the name, even
        // if another rule claims a longer suffix.
        let takes = |path: &str| {
            let name = file_name(path);
            own_rule.is_some_and(|r| project.rules[r].ext_in.iter().any(|e| has_ext(name, e)))
        };
        let mut fed = Vec::new();
        for src in &sources {
            let mut current = *src;
            let mut chain: Vec<RuleId> = Vec::new();
            loop {
                let path = self.graph.path(current).to_string();
                if takes(&path) {
                    break;
                }
                let Some((rule, ext)) = rule_for(project, &path) else {
                    break;
                };
                let r = &project.rules[rule];
                if chain.contains(&rule) {
                    return Err(project
                        .error_at(
                            r.span.clone(),
                            format!(
                                "extension mapping loops: rule `{}` maps `{ext}` back into itself",
                                r.name
                            ),
                        )
                        .into());
                }
                if r.ext_out.is_empty() {
                    return Err(project
                        .error_at(r.span.clone(), format!("rule `{}` takes `{ext}` sources but has no `ext_out`", r.name))
                        .note(format!("`{path}` of generator `{}` is mapped through it; name the output with ext_out = [\".o\"]", gn.name))
                        .into());
                }
                chain.push(rule);
                let outputs = self.mapped_outputs(project, rule, &path, ext);
                self.make_task(
                    project,
                    g,
                    rule,
                    smallvec::smallvec![current],
                    outputs.clone(),
                    deps.iter().copied().collect(),
                )?;
                current = outputs[0];
            }
            if own_rule.is_none() && chain.is_empty() {
                let path = self.graph.path(current);
                return Err(project
                    .error_at(gn.span.clone(), format!("generator `{}` has the source `{path}`, which no rule takes", gn.name))
                    .note("a generator with neither `rule` nor `run` only maps its sources through rules whose ext_in match")
                    .into());
            }
            fed.push(current);
        }

        match own_rule {
            // No target, and a command that names one: a task per source, each making its
            // source's mapped output, so that no command runs with an empty `${TGT}`.
            Some(rule) if self.gen_outputs[g].is_empty() && uses_targets(&project.rules[rule]) => {
                let r = &project.rules[rule];
                let mut deps = deps;
                deps.extend(used);
                deps.sort_unstable();
                deps.dedup();
                let mut outputs = Files::new();
                for src in fed {
                    let path = self.graph.path(src).to_string();
                    let ext = r
                        .ext_in
                        .iter()
                        .filter(|e| has_ext(file_name(&path), e))
                        .max_by_key(|e| e.len());
                    let (Some(ext), false) = (ext, r.ext_out.is_empty()) else {
                        return Err(project
                            .error_at(gn.span.clone(), format!("generator `{}` has no target, but its rule `{}` uses ${{TGT}}", gn.name, r.name))
                            .note(format!("give it `target = [...]`, or give rule `{}` ext_in and ext_out that take `{path}`, for one task per source", r.name))
                            .into());
                    };
                    let mapped = self.mapped_outputs(project, rule, &path, ext);
                    outputs.push(mapped[0]);
                    self.make_task(
                        project,
                        g,
                        rule,
                        smallvec::smallvec![src],
                        mapped,
                        deps.iter().copied().collect(),
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
                    if inputs.contains(o) || deps.contains(o) {
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
                    return Err(no_sources(project, g, rule).into());
                }
                self.make_task(project, g, rule, inputs.into(), outputs, deps.into())?;
            }
            None => self.gen_outputs[g] = fed.into(),
        }
        Ok(())
    }

    /// The outputs rule `rule` maps `path` to, through its extension `ext`: under the build
    /// directory unless already there (or the rule writes into the source tree).
    fn mapped_outputs(&mut self, project: &Project, rule: RuleId, path: &str, ext: &str) -> Files {
        let r = &project.rules[rule];
        r.ext_out
            .iter()
            .map(|e| {
                let swapped = paths::swap_extension(path, ext, e);
                let out_path = if r.update_outputs || paths::is_within(path, &project.out) {
                    swapped
                } else {
                    paths::join(&project.out, &swapped)
                };
                self.graph.file(&out_path)
            })
            .collect()
    }

    /// Expands `${...}` in an entry; an entry that is exactly `${NAME}` splices a list value.
    fn expand_entry(
        &self,
        project: &Project,
        g: GenId,
        entry: &Located<Template>,
        key: &str,
    ) -> Result<Vec<String>, Error> {
        let gn = &project.gens[g];
        let env = Layered {
            top: &gn.env,
            base: &project.env,
        };
        if let Some(name) = entry.value.sole_var()
            && let Some(values) = env.get(name)
        {
            return Ok(values.to_vec());
        }
        let text = entry.value.expand_plain(&env, &project.out).map_err(|e| {
            project.template_error(entry, &e, &format!("in `{key}` of generator `{}`", gn.name))
        })?;
        Ok(vec![text])
    }

    fn resolve(
        &mut self,
        project: &Project,
        g: GenId,
        entry: &Located<Template>,
        key: &str,
        excludes: &[Pattern],
        into: &mut Vec<FileId>,
    ) -> Result<(), Failure> {
        let gn = &project.gens[g];
        for item in self.expand_entry(project, g, entry, key)? {
            if item.trim().is_empty() {
                return Err(project
                    .error_at(entry.span.clone(), format!("an empty path in `{key}`"))
                    .into());
            }
            let norm = if item.starts_with('/') {
                paths::from_absolute(
                    &project.root,
                    std::path::Path::new(&paths::normalize(&item)),
                )
                .unwrap_or_else(|| paths::normalize(&item))
            } else {
                paths::normalize(&item)
            };
            // Another generator's output, by the target as written or by its path.
            let declared = self
                .declared_text
                .get(&norm)
                .cloned()
                .or_else(|| self.declared.contains_key(&norm).then(|| norm.clone()));
            if let Some(path) = declared {
                let producer = self.declared[&path];
                self.check_reference(project, g, producer, &path, entry)?;
                let file = self.graph.file(&path);
                into.push(file);
                continue;
            }
            if let Some(file) = self.graph.lookup(&norm)
                && let Some(task) = self.graph.producer(file)
            {
                let producer = self.graph.task(task).generator;
                self.check_reference(project, g, producer, &norm, entry)?;
                into.push(file);
                continue;
            }
            if paths::is_outside_project(&norm) && !paths::is_within(&norm, &project.out) {
                return Err(project
                    .error_at(entry.span.clone(), format!("`{norm}` in `{key}` of generator `{}` lies outside the project", gn.name))
                    .note("sources must lie under the build file's directory (or in the build directory)")
                    .into());
            }
            if glob::is_glob(&norm) && !paths::absolute(&project.root, &norm).is_file() {
                let pattern = Pattern::new(&norm)
                    .map_err(|m| Error::from(project.error_at(entry.span.clone(), m)))?;
                let found = glob::expand(&project.root, &pattern, &project.out);
                self.glob_dirs.extend(found.dirs);
                for s in found.skipped {
                    self.warnings.push(format!("skipped `{s}` matched by `{norm}` in generator `{}`: kiln needs UTF-8 file names", gn.name));
                }
                let files: Vec<String> = found
                    .files
                    .into_iter()
                    .filter(|f| !excludes.iter().any(|e| e.is_match(f)))
                    .collect();
                if files.is_empty() {
                    self.warnings.push(format!(
                        "`{norm}` in `{key}` of generator `{}` matched nothing",
                        gn.name
                    ));
                }
                for f in files {
                    let file = self.graph.file(&f);
                    into.push(file);
                }
                continue;
            }
            match self.sources.kind(&project.root, &norm) {
                SourceKind::File => {
                    let file = self.graph.file(&norm);
                    into.push(file);
                }
                SourceKind::NotFile => {
                    return Err(project
                        .error_at(entry.span.clone(), format!("`{norm}` in `{key}` of generator `{}` is a directory", gn.name))
                        .note("expected a file; use a glob such as \"dir/*.c\" for a directory's files")
                        .into());
                }
                SourceKind::Missing => {
                    let mut d = project
                        .error_at(
                            entry.span.clone(),
                            format!(
                                "missing source `{norm}` in `{key}` of generator `{}`",
                                gn.name
                            ),
                        )
                        .note("no such file, and no generator declares it as a target");
                    if let Some(close) = crate::error::did_you_mean(
                        &norm,
                        self.declared_text.keys().map(String::as_str),
                    ) {
                        d = d.note(format!("did you mean the target `{close}`?"));
                    }
                    return Err(Failure::Missing(d.into()));
                }
            }
        }
        Ok(())
    }

    /// A generator may read outputs of its own group or earlier ones, never its own.
    fn check_reference(
        &self,
        project: &Project,
        g: GenId,
        producer: GenId,
        path: &str,
        entry: &Located<Template>,
    ) -> Result<(), Error> {
        if producer == g {
            return Err(project
                .error_at(
                    entry.span.clone(),
                    format!(
                        "`{path}` is both an output and an input of generator `{}`",
                        project.gens[g].name
                    ),
                )
                .into());
        }
        if project.gens[producer].group > project.gens[g].group {
            return Err(later_group(project, g, producer, entry.span.clone()).into());
        }
        Ok(())
    }

    fn make_task(
        &mut self,
        project: &Project,
        g: GenId,
        rule: RuleId,
        inputs: Files,
        outputs: Files,
        deps: Files,
    ) -> Result<TaskId, Error> {
        let gn = &project.gens[g];
        let r = &project.rules[rule];
        let env = Layered {
            top: &gn.env,
            base: &project.env,
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
        let env_pairs = r
            .signature_names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    env.get(n).map(|v| v.join(" ")).unwrap_or_default(),
                )
            })
            .collect();
        let own_key = outputs.is_empty().then(|| format!("\0{}", gn.name));
        let task = Task {
            generator: g,
            group: gn.group,
            rule,
            inputs,
            outputs,
            deps,
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
                return Err(mapped_twice(project, &self.graph, e.generator, g, existing).into());
            }
            if e.rule == task.rule
                && e.inputs == task.inputs
                && e.outputs == task.outputs
                && e.deps == task.deps
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

/// Whether a rule's commands or depfile name `${TGT}`.
fn uses_targets(rule: &crate::project::Rule) -> bool {
    rule.commands
        .iter()
        .chain(&rule.depfile)
        .any(|c| c.value.uses_list(true).is_some())
}

/// Whether a rule's commands name `${SRC}`.
fn uses_sources(rule: &crate::project::Rule) -> bool {
    rule.commands
        .iter()
        .any(|c| c.value.uses_list(false).is_some())
}

/// A generator whose rule uses `${SRC}` ended up with no sources.
fn no_sources(project: &Project, g: GenId, rule: RuleId) -> Diagnostic {
    let (gn, r) = (&project.gens[g], &project.rules[rule]);
    project
        .error_at(
            gn.span.clone(),
            format!(
                "generator `{}` has no sources, but its rule `{}` uses ${{SRC}}",
                gn.name, r.name
            ),
        )
        .note("name its inputs with `source = [...]` or `use = [...]`: a command never runs with an empty ${SRC}")
}

/// Two generators map one source to one output.
fn mapped_twice(
    project: &Project,
    graph: &Graph,
    first: GenId,
    second: GenId,
    task: TaskId,
) -> Diagnostic {
    let (a, b) = (&project.gens[first], &project.gens[second]);
    let t = graph.task(task);
    let (line, _) = project.source.line_col(a.span.start);
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
            "`{}` is at {}:{line}; an output has one producer, so kiln will not merge the two",
            a.name, project.source.name
        ))
        .note("give the shared sources a generator of their own with neither `rule` nor `run` (it maps them once) and `use` it from both")
}

fn duplicate(project: &Project, path: &str, first: GenId, second: GenId) -> Diagnostic {
    let (a, b) = (&project.gens[first], &project.gens[second]);
    let (line, _) = project.source.line_col(a.span.start);
    let msg = if first == second {
        format!("generator `{}` declares the output `{path}` twice", b.name)
    } else {
        format!(
            "generators `{}` and `{}` both declare the output `{path}`",
            a.name, b.name
        )
    };
    project.error_at(b.span.clone(), msg).note(format!(
        "`{}` is at {}:{line}; every output must have one producer",
        a.name, project.source.name
    ))
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
