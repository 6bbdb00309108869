//! Deleting what kiln made. `clean` removes every file kiln's tasks made inside the build directory
//! that kiln knows of (recorded outputs and depfiles, declared outputs, stale outputs) and the
//! directories left empty, and nothing else; `distclean` removes the build directory with kiln's
//! state. With `-n` both only say what they would delete. Deletion never follows a symlink out of
//! the build directory, never touches `update_outputs` files, and refuses a build directory that
//! kiln did not make (see `outdir.rs`), or that is the project root, an ancestor of it, `/`, the
//! home directory, or a symlink.

use crate::error::Error;
use crate::generator::Expansion;
use crate::ids::{FileId, GroupId};
use crate::outdir::{self, Found, STATE_DIR};
use crate::paths::{self, absolute};
use crate::progress::Progress;
use crate::project::Project;
use crate::store::TaskView;
use crossbeam_channel::Receiver;
use std::collections::{BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};

/// Deletes the kiln path `path` if it lies inside `out_canon` (the canonical build directory) once
/// its parent's symlinks are resolved. Returns whether a file was deleted.
pub fn remove_inside(root: &Path, out_canon: &Path, path: &str) -> io::Result<bool> {
    match file_inside(root, out_canon, path)? {
        Some(target) => std::fs::remove_file(&target).map(|_| true),
        None => Ok(false),
    }
}

/// The file `remove_inside` would delete: the kiln path `path` with its parent's symlinks
/// resolved, if it is there and not a directory. An error if it resolves outside `out_canon`.
fn file_inside(root: &Path, out_canon: &Path, path: &str) -> io::Result<Option<PathBuf>> {
    let abs = absolute(root, path);
    let Some(parent) = abs.parent() else {
        return Ok(None);
    };
    let Ok(parent) = parent.canonicalize() else {
        return Ok(None);
    };
    if !parent.starts_with(out_canon) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("`{path}` resolves outside the build directory; left alone"),
        ));
    }
    let Some(name) = abs.file_name() else {
        return Ok(None);
    };
    let target = parent.join(name);
    match target.symlink_metadata() {
        Ok(m) if m.is_dir() => Ok(None),
        Ok(_) => Ok(Some(target)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the now-empty directories that held `deleted` files, up to (not including) the build
/// directory.
pub fn remove_empty_dirs(root: &Path, out: &str, deleted: &[String]) {
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for p in deleted {
        let mut d = paths::parent(p).to_string();
        while paths::is_within(&d, out) && d != out {
            dirs.insert(d.clone());
            d = paths::parent(&d).to_string();
        }
    }
    // Deepest first.
    let mut dirs: Vec<String> = dirs.into_iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for d in dirs {
        let _ = std::fs::remove_dir(absolute(root, &d));
    }
}

/// Refuses a build directory whose removal would take the project, `/`, the home directory or a
/// symlink's target with it.
pub fn check_removable(root: &Path, out: &str) -> Result<PathBuf, Error> {
    let out_abs = absolute(root, out);
    if out_abs
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(Error::Refused(format!(
            "the build directory `{out}` is a symlink; kiln will not delete through it"
        )));
    }
    let canon = out_abs.canonicalize().unwrap_or(out_abs.clone());
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .and_then(|h| h.canonicalize().ok());
    if canon == Path::new("/") || root.starts_with(&canon) || Some(&canon) == home.as_ref() {
        return Err(Error::Refused(format!(
            "the build directory `{out}` ({}) contains the project, or is `/` or the home directory; kiln will not delete it",
            canon.display()
        )));
    }
    Ok(canon)
}

/// How `clean` and `distclean` go about it.
#[derive(Debug, Clone, Copy)]
pub struct How {
    /// Wait for another kiln working in the build directory (no `--no-wait`).
    pub wait: bool,
    /// Only say what would be deleted (`-n`).
    pub dry_run: bool,
}

/// `kiln clean`: deletes what kiln made inside the build directory (with `dry_run`, only says
/// what it would delete). Returns the exit status.
pub fn clean(
    project: &Project,
    how: How,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
) -> Result<i32, Error> {
    let How { wait, dry_run } = how;
    let started = std::time::Instant::now();
    // The whole build file must be good before anything is deleted.
    let expansion = crate::generator::Expansion::expand_all(project)?;
    let state_dir = project.state_dir();
    let out_abs = project.out_dir();
    // Not `/`, the home directory, the project, or a symlink (wherever it points), even though clean only
    // deletes what kiln recorded making.
    check_removable(&project.root, &project.out)?;
    // Nor a directory kiln did not make, even where the build file declares outputs in it.
    if outdir::check_owned(&out_abs, &project.out)? != Found::Marked {
        progress.done(&format!(
            "'clean' finished successfully ({:.3}s): nothing to clean",
            started.elapsed().as_secs_f64()
        ));
        return Ok(0);
    }
    // A directory without kiln's state has no lock to take (and gets none).
    let lock = match crate::lock::take_existing(&state_dir, &project.out, wait, progress, signals)?
    {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let out_canon = out_abs
        .canonicalize()
        .map_err(|e| Error::io(format!("cannot resolve {}", out_abs.display()), e))?;
    let store_path = state_dir.join("store");
    let mut store = if lock.is_some() {
        let (store, warnings) = crate::store::Store::open(&store_path, !dry_run)
            .map_err(|e| Error::io("cannot open kiln's state", e))?;
        for w in warnings {
            progress.message(&format!("warning: {w}"));
        }
        Some(store)
    } else {
        None
    };

    let graph = &expansion.graph;
    let state = paths::join(&project.out, STATE_DIR);
    let mut candidates: BTreeSet<String> = BTreeSet::new();
    for t in graph.tasks().iter().filter(|t| !t.update_outputs) {
        candidates.extend(
            t.outputs
                .iter()
                .chain(&t.depfile)
                .map(|&f| graph.path(f).to_string()),
        );
    }
    if let Some(store) = &store {
        for rec in store.tasks().filter(|r| !r.update_outputs) {
            candidates.extend(rec.outputs().map(|(p, _)| p.to_string()));
        }
    }
    let mut deleted = Vec::new();
    for p in candidates {
        if !paths::is_within(&p, &project.out) || paths::is_within(&p, &state) || p == project.out {
            continue;
        }
        let found = if dry_run {
            file_inside(&project.root, &out_canon, &p).map(|f| f.is_some())
        } else {
            remove_inside(&project.root, &out_canon, &p)
        };
        match found {
            Ok(true) if dry_run => {
                progress.message(&format!("would remove {p}"));
                deleted.push(p);
            }
            Ok(true) => deleted.push(p),
            Ok(false) => {}
            Err(e) => progress.message(&format!("warning: not deleting `{p}`: {e}")),
        }
    }
    let n = deleted.len();
    let files = if n == 1 { "file" } else { "files" };
    let secs = started.elapsed().as_secs_f64();
    if dry_run {
        progress.done(&format!(
            "'clean' dry run ({secs:.3}s): {n} {files} would be removed"
        ));
        return Ok(0);
    }
    remove_empty_dirs(&project.root, &project.out, &deleted);
    if let Some(store) = &mut store {
        store
            .forget_tasks()
            .map_err(|e| Error::io("cannot record kiln's state", e))?;
    }
    drop(lock);
    progress.done(&format!(
        "'clean' finished successfully ({secs:.3}s): {n} {files} removed"
    ));
    Ok(0)
}

/// `kiln distclean`: deletes the build directory and kiln's state in it, if kiln made it (with
/// `dry_run`, only says what it would delete).
pub fn distclean(
    project: &Project,
    how: How,
    progress: &mut dyn Progress,
    signals: &Receiver<i32>,
) -> Result<i32, Error> {
    let How { wait, dry_run } = how;
    let started = std::time::Instant::now();
    let out_abs = project.out_dir();
    if out_abs.symlink_metadata().is_err() {
        progress.done(&format!(
            "'distclean' finished successfully ({:.3}s): {} does not exist",
            started.elapsed().as_secs_f64(),
            project.out
        ));
        return Ok(0);
    }
    let canon = check_removable(&project.root, &project.out)?;
    let found = outdir::check_owned(&out_abs, &project.out)?;
    if found != Found::Marked {
        return Err(outdir::refuse_delete(&project.out, found));
    }
    let state_dir = project.state_dir();
    // A directory without kiln's state has no lock to take (and gets none).
    let lock = match crate::lock::take_existing(&state_dir, &project.out, wait, progress, signals)?
    {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let secs = || started.elapsed().as_secs_f64();
    // Other build directories inside this one (a variant's `<out>/<name>`) are theirs, not this
    // build's: they stay.
    let nested = nested_build_dirs(&canon);
    if dry_run {
        let n = walkdir::WalkDir::new(&canon)
            .into_iter()
            .filter_entry(|e| !nested.iter().any(|n| n == e.path()))
            .filter_map(Result::ok)
            .filter(|e| !e.file_type().is_dir())
            .count();
        progress.message(&format!("would remove {}", project.out));
        progress.done(&format!(
            "'distclean' dry run ({:.3}s): {} would be removed, with {n} {}",
            secs(),
            project.out,
            if n == 1 { "file" } else { "files" }
        ));
        return Ok(0);
    }
    let removed = if nested.is_empty() {
        std::fs::remove_dir_all(&canon)
    } else {
        remove_all_but(&canon, &nested)
    };
    removed.map_err(|e| Error::io(format!("cannot delete {}", project.out), e))?;
    drop(lock);
    progress.done(&format!(
        "'distclean' finished successfully ({:.3}s): removed {}",
        secs(),
        project.out
    ));
    Ok(0)
}

/// The build directories of kiln's below `dir` (not `dir` itself), outermost only.
fn nested_build_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut walk = walkdir::WalkDir::new(dir).follow_links(false).into_iter();
    while let Some(entry) = walk.next() {
        let Ok(entry) = entry else { continue };
        if entry.depth() == 0 || !entry.file_type().is_dir() {
            continue;
        }
        if entry.file_name() == STATE_DIR {
            walk.skip_current_dir();
        } else if outdir::is_marked(entry.path()) {
            found.push(entry.path().to_path_buf());
            walk.skip_current_dir();
        }
    }
    found
}

/// Deletes everything inside `dir` except the directories `keep` (and the directories that lead
/// to them), never following a symlink.
fn remove_all_but(dir: &Path, keep: &[PathBuf]) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if keep.contains(&path) {
            continue;
        }
        let is_dir = path.symlink_metadata()?.is_dir();
        if is_dir && keep.iter().any(|k| k.starts_with(&path)) {
            remove_all_but(&path, keep)?;
        } else if is_dir {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// What [`delete_stale`] did: the outputs it deleted, and the task records to forget.
pub struct Stale {
    pub deleted: Vec<String>,
    pub forget: Vec<String>,
}

/// Deletes outputs recorded for tasks the build file no longer has (or no longer declares), for
/// the given groups (and records of groups that no longer exist), saying so; `out_canon` is the
/// canonical build directory, or `None` in a dry run, which only says what it would delete.
pub fn delete_stale<'s>(
    project: &Project,
    expansion: &Expansion,
    records: impl Iterator<Item = TaskView<'s>>,
    groups: &[GroupId],
    out_canon: Option<&Path>,
    progress: &mut dyn Progress,
) -> Stale {
    let graph = &expansion.graph;
    let group_names: HashSet<&str> = groups
        .iter()
        .map(|&g| project.groups[g].name.as_str())
        .collect();
    let first = groups.contains(&0);
    let known_group = |name: &str| project.groups.iter().any(|g| g.name == name);
    let keys: HashSet<&str> = graph.task_ids().map(|t| graph.key(t)).collect();
    let declared: HashSet<&str> = (0..graph.file_count() as u32)
        .map(FileId)
        .filter(|&f| graph.producer(f).is_some())
        .map(|f| graph.path(f))
        .chain(
            graph
                .tasks()
                .iter()
                .filter_map(|t| t.depfile.map(|d| graph.path(d))),
        )
        .chain(
            expansion
                .gen_outputs
                .iter()
                .flatten()
                .map(|&f| graph.path(f)),
        )
        .collect();
    let mut stale: Vec<String> = Vec::new();
    let mut forget: Vec<String> = Vec::new();
    for rec in records {
        let relevant = group_names.contains(rec.group) || (first && !known_group(rec.group));
        if !relevant {
            continue;
        }
        if !keys.contains(rec.key) {
            forget.push(rec.key.to_string());
        }
        if rec.update_outputs {
            continue;
        }
        for (p, _) in rec.outputs() {
            if !declared.contains(p) && paths::is_within(p, &project.out) {
                stale.push(p.to_string());
            }
        }
    }
    stale.sort();
    stale.dedup();
    forget.sort();
    let mut deleted = Vec::new();
    for p in stale {
        let Some(out_canon) = out_canon else {
            if absolute(&project.root, &p).symlink_metadata().is_ok() {
                progress.message(&format!("would delete stale output {p}"));
            }
            continue;
        };
        match remove_inside(&project.root, out_canon, &p) {
            Ok(true) => {
                progress.message(&format!("deleted stale output {p}"));
                deleted.push(p);
            }
            Ok(false) => {}
            Err(e) => progress.message(&format!("warning: cannot delete stale output `{p}`: {e}")),
        }
    }
    remove_empty_dirs(&project.root, &project.out, &deleted);
    Stale { deleted, forget }
}
