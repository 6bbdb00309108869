//! Extension mapping: the rule whose `ext_in` takes a source (the longest extension wins, and
//! the generator's own rule takes what any of its extensions ends), the outputs it maps the source
//! to (`src/a.c` -> `build/src/a.o`), and chains of such steps until no rule takes the result.

use super::Expansion;
use super::task::After;
use crate::error::Error;
use crate::ids::{FileId, GenId, RuleId};
use crate::paths;
use crate::project::Project;
use crate::task::Files;

/// The last component of `path`.
pub(super) fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether file name `name` ends in extension `ext` and is more than it.
pub(super) fn has_ext(name: &str, ext: &str) -> bool {
    name.ends_with(ext) && name.len() > ext.len()
}

/// The rule, if any, that maps `path` for generator `g`, with the matched extension (the longest
/// wins): the generator's `ext_rules` pick the rule for their extensions, rules' `ext_in` the rest.
fn rule_for<'p>(project: &'p Project, g: GenId, path: &str) -> Option<(RuleId, &'p str)> {
    let name = file_name(path);
    let gn = &project.gens[g];
    let picked = &gn.ext_rules;
    let claimed = project.parts[gn.part]
        .rules
        .iter()
        .flat_map(|&i| project.rules[i].ext_in.iter().map(move |e| (i, e.as_str())))
        .filter(|(_, e)| !picked.iter().any(|(p, _)| p == e));
    picked
        .iter()
        .map(|(e, r)| (*r, e.as_str()))
        .chain(claimed)
        .filter(|(_, e)| has_ext(name, e))
        .max_by_key(|(_, e)| e.len())
}

impl Expansion {
    /// Maps each of `sources` through the rules that take it, one task a step, each ordered after
    /// `after`; returns what each source became, for the generator's own task.
    pub(super) fn map_sources(
        &mut self,
        project: &Project,
        g: GenId,
        sources: &[FileId],
        after: &After,
    ) -> Result<Vec<FileId>, Error> {
        let gn = &project.gens[g];
        let own_rule = gn.rule;
        // The generator's own rule takes a source when one of its extensions ends the name, even
        // if another rule claims a longer suffix.
        let takes = |path: &str| {
            let name = file_name(path);
            own_rule.is_some_and(|r| project.rules[r].ext_in.iter().any(|e| has_ext(name, e)))
        };
        if !gn.map {
            return Ok(sources.to_vec());
        }
        let mut fed = Vec::new();
        for src in sources {
            let mut current = *src;
            let mut chain: Vec<RuleId> = Vec::new();
            loop {
                let path = self.graph.path(current).to_string();
                if takes(&path) {
                    break;
                }
                let Some((rule, ext)) = rule_for(project, g, &path) else {
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
                let outputs = self.mapped_outputs(project, g, rule, &path, ext);
                self.make_task(
                    project,
                    g,
                    rule,
                    smallvec::smallvec![current],
                    outputs.clone(),
                    after,
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
        Ok(fed)
    }

    /// The outputs rule `rule` maps `path` to for generator `g`, through its extension `ext`:
    /// under the build directory unless already there (or the rule writes into the source tree);
    /// with the generator's `objdir`, under `<out>/<objdir>/` whatever the source's place.
    pub(super) fn mapped_outputs(
        &mut self,
        project: &Project,
        g: GenId,
        rule: RuleId,
        path: &str,
        ext: &str,
    ) -> Files {
        let r = &project.rules[rule];
        let objdir = project.gens[g].objdir.as_deref();
        r.ext_out
            .iter()
            .map(|e| {
                let swapped = paths::swap_extension(path, ext, e);
                let out_path = match objdir {
                    Some(dir) if !r.update_outputs => {
                        paths::join(&paths::join(&project.out, dir), &in_tree(project, &swapped))
                    }
                    _ if r.update_outputs || paths::is_within(path, &project.out) => swapped,
                    _ => paths::join(&project.out, &swapped),
                };
                self.graph.file(&out_path)
            })
            .collect()
    }
}

/// Where `path` lies in the project as an object directory mirrors it: a path under the build
/// directory relative to it, one outside the project by its components without the `..`s and
/// the leading `/`.
fn in_tree(project: &Project, path: &str) -> String {
    if paths::is_within(path, &project.out) && path != project.out {
        return path[project.out.len() + 1..].to_string();
    }
    path.split('/')
        .filter(|c| !c.is_empty() && *c != "..")
        .collect::<Vec<_>>()
        .join("/")
}
