//! The include scanner in the build (`scan = "c"`): before a group is planned, every task of a
//! scanning rule that may run is scanned, and the headers found (another task's declared outputs
//! among them) order it after their producers, as implicit dependencies do. A scan that met a
//! generated header not made yet is done again when the task is about to start; a producer found
//! only then makes the task wait for it. Tasks known to be up to date are not scanned: their
//! recorded implicit dependencies stand. Without a depfile, what the scan found is what the task's
//! record names after the run.

use super::Build;
use crate::graph::Graph;
use crate::ids::{FileId, TaskId};
use crate::includes::{Files, SearchPath};
use crate::paths::absolute;
use std::collections::BTreeSet;
use std::path::Path;

/// What a task's last scan found.
#[derive(Debug, Clone, Default)]
pub(super) struct Scanned {
    /// Every header found, as files of the graph.
    pub(super) files: Vec<FileId>,
    /// Declared outputs among them that did not exist yet.
    pub(super) unfollowed: Vec<FileId>,
}

/// The project's files as the scanner sees them: on disk, and as the graph's declared outputs.
struct OnDisk<'a> {
    root: &'a Path,
    graph: &'a Graph,
}

impl Files for OnDisk<'_> {
    fn is_output(&self, path: &str) -> bool {
        self.graph
            .lookup(path)
            .is_some_and(|f| self.graph.producer(f).is_some())
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let abs = absolute(self.root, path);
        if !abs.is_file() {
            return None;
        }
        std::fs::read(abs).ok()
    }
}

impl Build<'_> {
    /// Whether task `t`'s rule scans.
    pub(super) fn scans(&self, t: TaskId) -> bool {
        let task = self.expansion.graph.task(t);
        self.project.rules[task.rule].scan
    }

    /// Scans every task of `tasks` whose rule scans; returns whether any found a header.
    pub(super) fn scan_tasks(&mut self, tasks: &[TaskId]) -> bool {
        let mut any = false;
        for &t in tasks {
            if self.scans(t) {
                crate::stats::count("tasks scanned", 1);
                self.scan(t);
                any |= self.scanned[t.index()]
                    .as_ref()
                    .is_some_and(|s| !s.files.is_empty());
            }
        }
        crate::stats::mark("scan");
        any
    }

    /// Scans task `t` now and keeps what it found.
    pub(super) fn scan(&mut self, t: TaskId) {
        let began = std::time::Instant::now();
        if !self.opts.dry_run {
            self.scanner.open(&self.state_dir.join("includes"));
        }
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        let search = SearchPath::of_command(&task.commands.join("\n"));
        let sources: Vec<&str> = task.inputs.iter().map(|&f| graph.path(f)).collect();
        let files = OnDisk {
            root: &self.project.root,
            graph,
        };
        let found = self.scanner.scan(&sources, &search, &files);
        for (file, name) in &found.unresolved {
            if self.unresolved.insert((file.clone(), name.clone())) {
                self.progress.message(&format!(
                    "warning: `{file}` includes `{name}`, a macro the include scanner cannot follow; if it names a generated header, add its generator to `deps`"
                ));
            }
        }
        let graph = &mut self.expansion.graph;
        let scanned = Scanned {
            files: found.headers.iter().map(|p| graph.file(p)).collect(),
            unfollowed: found.unfollowed.iter().map(|p| graph.file(p)).collect(),
        };
        if self.scanned.len() <= t.index() {
            self.scanned.resize(t.index() + 1, None);
        }
        self.scanned[t.index()] = Some(scanned);
        crate::stats::count("scanning (us)", began.elapsed().as_micros() as u64);
    }

    /// About to start task `t`: when its scan met generated headers that did not exist, scans it
    /// again (their producers have run, or the task would not be starting) and returns the
    /// producers of the generated headers that still do not exist: those found only now.
    pub(super) fn rescan(&mut self, t: TaskId) -> Vec<TaskId> {
        let pending = self
            .scanned
            .get(t.index())
            .and_then(|s| s.as_ref())
            .is_some_and(|s| !s.unfollowed.is_empty());
        if !pending || self.opts.dry_run {
            return Vec::new();
        }
        self.scan(t);
        let graph = &self.expansion.graph;
        let waits: BTreeSet<TaskId> = self.scanned[t.index()]
            .as_ref()
            .map(|s| s.unfollowed.clone())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|f| graph.producer(f))
            .filter(|&p| p != t)
            .collect();
        waits.into_iter().collect()
    }

    /// The headers task `t`'s scan found, for ordering it (with its recorded implicit
    /// dependencies).
    pub(super) fn scanned_files(&self, t: TaskId) -> &[FileId] {
        self.scanned
            .get(t.index())
            .and_then(|s| s.as_ref())
            .map_or(&[], |s| &s.files)
    }
}
