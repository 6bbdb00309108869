//! Remote execution in a build: the engine (`--remote`) or the Remote Execution API cache
//! (`--remote-cache grpc://...`) opened once, and for each task about to run, whether it may go
//! there and what its Action holds. A task stays local when its rule says `remote = false`, it
//! writes into the source tree (`update_outputs`), a path it reads or writes lies outside the
//! project, a command names the project's absolute path, or its headers are not known yet (a
//! depfile, no scanner, and no record of a run: kiln runs it locally the first time).

use super::Build;
use crate::ids::TaskId;
use crate::remote::{Remote, Spec, action::portable, client::Client};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The engine or cache the options name, connected; trouble connecting is a warning and a
/// build without it.
pub(super) fn open(
    opts: &super::BuildOptions,
    project: &crate::project::Project,
    progress: &mut dyn crate::progress::Progress,
) -> Option<Arc<Remote>> {
    let (url, execute) = match (&opts.remote, &opts.remote_cache) {
        (Some(url), _) => (url, true),
        (None, Some(url)) if crate::remote::is_grpc(url) => (url, false),
        _ => return None,
    };
    let what = if execute { "engine" } else { "cache" };
    match Client::connect(url, &opts.remote_instance, &opts.remote_headers, opts.remote_timeout) {
        Ok(client) => {
            let mut remote = Remote::new(client, &project.root, execute, opts.cache_readonly);
            remote.limit = opts.timeout;
            Some(Arc::new(remote))
        }
        Err(e) => {
            let rest = if execute { "running every task locally" } else { "building without it" };
            progress.message(&format!("warning: remote {what} {e}; {rest}"));
            None
        }
    }
}

impl Build<'_> {
    /// What task `t` sends to the remote engine or cache, or `None` if it runs locally only.
    pub(super) fn remote_spec(&self, t: TaskId) -> Option<Box<Spec>> {
        self.remote.as_ref()?;
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        let rule = &self.project.rules[task.rule];
        if !rule.remote || task.update_outputs {
            return None;
        }
        let root = self.project.root.to_string_lossy();
        if task.commands.iter().any(|c| c.contains(root.as_ref())) {
            return None;
        }
        let scanned = self.scanned_files(t);
        let implicit = &self.implicit[t.index()];
        if task.depfile.is_some() && !rule.scan && implicit.is_empty() {
            return None;
        }
        let mut inputs = Vec::new();
        for f in task.reads() {
            let p = graph.path(f);
            if !portable(p) {
                return None;
            }
            inputs.push(p.to_string());
        }
        // Implicit dependencies outside the project (the system's headers) come with the
        // platform, as its compiler does.
        for &f in scanned.iter().chain(implicit.iter()) {
            let p = graph.path(f);
            if portable(p) {
                inputs.push(p.to_string());
            }
        }
        let mut outputs = Vec::new();
        for f in self.recorded_outputs(t) {
            let p = graph.path(f);
            if !portable(p) {
                return None;
            }
            outputs.push(p.to_string());
        }
        Some(Box::new(Spec {
            inputs,
            outputs,
            env: task.env.to_vec(),
            platform: self.project.remote_platform.clone(),
            do_not_cache: task.always || rule.nocache,
            retry_locally: task.depfile.is_some() && !rule.scan,
        }))
    }

    /// Notes what the engine did with a finished job: its warning, said once, and a hit.
    pub(super) fn remote_finished(&mut self, note: &crate::runner::RemoteNote) {
        if let Some(w) = &note.warning {
            self.progress.message(w);
        }
        if note.cached {
            self.remote_hits += 1;
        }
    }

    /// The `-d stats` lines of what went to the engine.
    pub(super) fn remote_stats(&self) {
        let Some(r) = &self.remote else {
            return;
        };
        let c = &r.counts;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        crate::stats::count("remote hits", get(&c.hits));
        crate::stats::count("remote executed", get(&c.executed));
        crate::stats::count("remote stored", get(&c.stored));
        crate::stats::count("remote blobs named", get(&c.blobs_named));
        crate::stats::count("remote blobs missing", get(&c.blobs_missing));
        crate::stats::count("remote bytes uploaded", get(&c.uploaded));
        crate::stats::count("remote bytes downloaded", get(&c.downloaded));
    }
}
