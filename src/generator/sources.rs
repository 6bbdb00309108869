//! A generator's entries resolved into files: `${...}` expanded, then each entry taken as another
//! generator's declared or made output, a glob over the tree (less the `exclude` patterns), or a
//! plain file that must exist (looked up through [`SourceDirs`], a listing cache); and the outputs
//! of the generators it `use`s. A missing plain source is reported as [`Failure::Missing`], as a
//! later generator of the group may yet make it.

use super::mapping::{file_name, has_ext};
use super::{Expansion, Failure, later_group};
use crate::env::Layered;
use crate::error::Error;
use crate::glob::{self, Pattern};
use crate::ids::{Fast, FileId, GenId};
use crate::paths;
use crate::project::{Located, Project};
use crate::template::{Lookup, Template};
use std::collections::HashMap;
use std::path::Path;

/// Extensions of C and C++ headers.
const HEADERS: [&str; 4] = [".h", ".hh", ".hpp", ".hxx"];

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
pub(super) struct SourceDirs {
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
    fn kind(&mut self, root: &Path, path: &str) -> SourceKind {
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

impl Expansion {
    /// The patterns of the generator's `exclude` entries.
    pub(super) fn excludes(&self, project: &Project, g: GenId) -> Result<Vec<Pattern>, Error> {
        let gn = &project.gens[g];
        let patterns = gn
            .exclude
            .iter()
            .map(|e| {
                let text = self.expand_entry(project, g, e, "exclude")?;
                text.iter()
                    .map(|t| {
                        Pattern::new(&paths::join(project.dir_of(g), t))
                            .map_err(|m| Error::from(project.error_at(e.span.clone(), m)))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        Ok(patterns)
    }

    /// The outputs of the generators `g` uses, warning when a generated header would land in the
    /// `${SRC}` of its own task.
    pub(super) fn used(&mut self, project: &Project, g: GenId) -> Vec<FileId> {
        let gn = &project.gens[g];
        let own_rule = gn.rule;
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
        used
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
            base: project.env_of(g),
        };
        if let Some(name) = entry.value.sole_var()
            && let Some(values) = env.get(name)
        {
            return Ok(values.to_vec());
        }
        let text = entry.value.expand_plain(&env, &project.out_from(g)).map_err(|e| {
            project.template_error(entry, &e, &format!("in `{key}` of generator `{}`", gn.name))
        })?;
        Ok(vec![text])
    }

    pub(super) fn resolve(
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
                paths::join(project.dir_of(g), &item)
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
}
