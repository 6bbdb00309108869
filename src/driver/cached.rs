//! The output caches in a build: a task that would run looks itself up first, and on a hit its
//! outputs are restored (verified) and recorded as if it had run; a successful run stores them.
//! Never cached: `always`, `update_outputs` and `nocache` tasks, failed tasks, tasks whose inputs
//! changed while they ran, and tasks with a file of unknown content among their inputs.

use super::Build;
use crate::cache::key::{Keyer, Parts};
use crate::cache::local::LocalCache;
use crate::cache::{Backend, Digest, Entry, Fetched, Key, OutputFile, write_output};
use crate::filestate::{self, MISSING};
use crate::ids::TaskId;
use crate::paths::absolute;
use crate::runner::{Exit, Finished, Output};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The caches a build uses, and what it did with them.
pub struct Caches {
    /// Looked up in order (the local cache first); stored into when not read-only.
    pub backends: Vec<Box<dyn Backend>>,
    pub readonly: bool,
    pub keyer: Keyer,
    /// The local cache's directory, for its log and trimming.
    pub local: Option<PathBuf>,
    /// The index of the first remote backend (those after the local cache): each warns once
    /// per build.
    pub first_remote: usize,
    /// The key of each task looked up and missed, for storing after its run.
    pub keys: HashMap<TaskId, Key>,
    pub hits: u64,
    pub misses: u64,
    pub stores: u64,
    pub stored_bytes: u64,
    /// Backends already warned about storing.
    warned: HashSet<String>,
    /// Remotes that failed in this build: not asked again.
    disabled: HashSet<usize>,
    /// Content hashes of implicit dependencies outside the graph, taken once per build.
    hashed: HashMap<String, Option<[u8; 32]>>,
}

impl Caches {
    pub fn new(backends: Vec<Box<dyn Backend>>, readonly: bool, keyer: Keyer) -> Caches {
        Caches {
            backends,
            readonly,
            keyer,
            local: None,
            first_remote: 0,
            keys: HashMap::new(),
            hits: 0,
            misses: 0,
            stores: 0,
            stored_bytes: 0,
            warned: HashSet::new(),
            disabled: HashSet::new(),
            hashed: HashMap::new(),
        }
    }
}

/// The caches the options name; a cache that cannot be opened is a warning.
pub(super) fn open(
    opts: &super::BuildOptions,
    project: &crate::project::Project,
    progress: &mut dyn crate::progress::Progress,
) -> Option<Caches> {
    let mut backends: Vec<Box<dyn Backend>> = Vec::new();
    if let Some(dir) = &opts.cache {
        match LocalCache::open(dir) {
            Ok(c) => backends.push(Box::new(c)),
            Err(e) => progress.message(&format!("warning: {e}; building without it")),
        }
    }
    let first_remote = backends.len();
    if let Some(url) = &opts.remote_cache {
        // grpc:// and grpcs:// caches are the Remote Execution API's (driver/remote.rs).
        if !crate::remote::is_grpc(url) {
            match crate::cache::http::HttpCache::new(url, opts.remote_headers.clone(), opts.remote_timeout) {
                Ok(c) => backends.push(Box::new(c)),
                Err(e) => progress.message(&format!("warning: remote cache {e}; building without it")),
            }
        }
    }
    if backends.is_empty() {
        return None;
    }
    let mut caches = Caches::new(
        backends,
        opts.cache_readonly,
        Keyer::new(&project.root, &project.out),
    );
    caches.local = opts.cache.clone().filter(|_| first_remote > 0);
    caches.first_remote = first_remote;
    Some(caches)
}

/// The size past which a build trims the local cache (`KILN_CACHE_MAX`, e.g. `10G`; default 10
/// GiB).
pub fn max_size() -> u64 {
    std::env::var("KILN_CACHE_MAX")
        .ok()
        .and_then(|s| parse_size(&s))
        .unwrap_or(10 << 30)
}

/// A size: bytes, or with a `K`, `M`, `G` or `T` suffix (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, shift) = match s.chars().last()?.to_ascii_uppercase() {
        'K' => (&s[..s.len() - 1], 10),
        'M' => (&s[..s.len() - 1], 20),
        'G' => (&s[..s.len() - 1], 30),
        'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: f64 = digits.trim().parse().ok()?;
    (n >= 0.0).then(|| (n * (1u64 << shift) as f64) as u64)
}

impl Build<'_> {
    /// Records the build's hits, misses and stores in the local cache, and trims it when it has
    /// grown 10% past its limit.
    pub(super) fn log_cache(&mut self) {
        let Some(caches) = self.caches.as_ref() else {
            return;
        };
        let Some(dir) = &caches.local else {
            return;
        };
        let Ok(local) = LocalCache::open(dir) else {
            return;
        };
        local.log(caches.hits, caches.misses, caches.stores, caches.stored_bytes);
        let max = max_size();
        if caches.stores > 0 && local.recorded_size() > max + max / 10 {
            let (evicted, size) = local.gc(max);
            self.progress.message(&format!(
                "cache {}: trimmed to {size} bytes ({evicted} entries evicted)",
                dir.display()
            ));
        }
    }

    /// Whether `t` may be looked up and stored.
    fn cacheable(&self, t: TaskId) -> bool {
        let task = self.expansion.graph.task(t);
        let rule = &self.project.rules[task.rule];
        !task.always && !task.update_outputs && !rule.nocache && !task.outputs.is_empty()
    }

    /// Warns of trouble with backend `b`. A remote warns once, and is not asked again in this
    /// build: a server that is down or slow must not cost a timeout per task.
    fn warn_cache(&mut self, b: usize, what: &str) {
        let Some(caches) = self.caches.as_mut() else {
            return;
        };
        let name = caches.backends[b].name();
        if b >= caches.first_remote {
            if !caches.disabled.insert(b) {
                return;
            }
            self.progress.message(&format!(
                "warning: cache {name}: {what}; a miss, and not asked again in this build"
            ));
        } else {
            self.progress
                .message(&format!("warning: cache {name}: {what}; a miss"));
        }
    }

    /// The key of `t`, when it may be cached and every file it reads has a known content.
    fn cache_key(&mut self, t: TaskId) -> Option<Key> {
        if self.caches.is_none() || !self.cacheable(t) {
            return None;
        }
        // Inputs nobody needed the content of yet (a clean build decides without it) are hashed
        // now; the run is checked against their stat from before, as ever.
        let unhashed: Vec<_> = self
            .expansion
            .graph
            .task(t)
            .reads()
            .filter(|f| {
                let s = &self.files[f.index()];
                s.stat.is_some() && s.hash.is_none()
            })
            .collect();
        for f in unhashed {
            let path = absolute(&self.project.root, self.expansion.graph.path(f));
            let hash = self.disk.hash(&path).ok()?;
            self.files[f.index()].hash = Some(hash);
        }
        let caches = self.caches.as_ref()?;
        let graph = &self.expansion.graph;
        let task = graph.task(t);
        let mut reads = Vec::new();
        for f in task.reads() {
            let h = self.hash(f);
            if h == MISSING {
                return None;
            }
            reads.push((graph.path(f), h));
        }
        Some(caches.keyer.key(&Parts {
            commands: &task.commands,
            env: &task.env,
            reads,
            outputs: self.recorded_outputs(t).iter().map(|&f| graph.path(f)).collect(),
        }))
    }

    /// The content hash of an implicit dependency named as an entry names it, now.
    fn implicit_hash(&mut self, path: &str) -> Option<[u8; 32]> {
        let caches = self.caches.as_ref()?;
        let kiln_path = caches.keyer.unpath(path);
        if let Some(f) = self.expansion.graph.lookup(&kiln_path)
            && self.files.get(f.index()).is_some_and(|s| s.hash.is_some())
        {
            let h = self.hash(f);
            return (h != MISSING).then_some(h);
        }
        let abs = absolute(&self.project.root, &kiln_path);
        let caches = self.caches.as_mut()?;
        *caches
            .hashed
            .entry(kiln_path)
            .or_insert_with(|| filestate::hash_file(&abs).ok())
    }

    /// Looks `t` up in the caches; on a hit, restores its outputs and returns the run they stand
    /// for. On a miss, keeps its key for storing after the run.
    pub(super) fn restore(&mut self, t: TaskId) -> Option<Finished> {
        let key = self.cache_key(t)?;
        let n = self.caches.as_ref()?.backends.len();
        for b in 0..n {
            if self.caches.as_ref()?.disabled.contains(&b) {
                continue;
            }
            let fetched = self.caches.as_ref()?.backends[b].get_entry(&key);
            let entry = match fetched {
                Fetched::Hit(e) => e,
                Fetched::Miss => continue,
                Fetched::Trouble(why) => {
                    self.warn_cache(b, &why);
                    continue;
                }
            };
            if let Some(finished) = self.restore_entry(t, b, &entry) {
                let caches = self.caches.as_mut()?;
                caches.hits += 1;
                // A remote hit fills the local cache.
                if b >= caches.first_remote && caches.first_remote > 0 && !caches.readonly {
                    self.store_entry(0, &key, &entry, t);
                }
                return Some(finished);
            }
        }
        let caches = self.caches.as_mut()?;
        caches.misses += 1;
        caches.keys.insert(t, key);
        None
    }

    /// Restores `entry`'s outputs for `t` from backend `b` when its implicit dependencies still
    /// hold and every blob verifies; nothing is written before all of them are in hand.
    fn restore_entry(&mut self, t: TaskId, b: usize, entry: &Entry) -> Option<Finished> {
        for (path, hash) in &entry.implicit {
            if self.implicit_hash(path) != Some(*hash) {
                return None;
            }
        }
        let graph = &self.expansion.graph;
        let outputs = self.recorded_outputs(t);
        let keyer = &self.caches.as_ref()?.keyer;
        let wanted: Vec<String> = outputs.iter().map(|&f| keyer.path(graph.path(f))).collect();
        let named: Vec<&str> = entry.outputs.iter().map(|o| o.path.as_str()).collect();
        if named != wanted {
            return None;
        }
        let mut blobs = Vec::new();
        for o in &entry.outputs {
            let fetched = self.caches.as_ref()?.backends[b].get_blob(&o.digest);
            match fetched {
                Fetched::Hit(bytes) => blobs.push(bytes),
                Fetched::Miss => return None,
                Fetched::Trouble(why) => {
                    self.warn_cache(b, &why);
                    return None;
                }
            }
        }
        let root = self.project.root.clone();
        let mut restored = Vec::new();
        for ((o, &f), bytes) in entry.outputs.iter().zip(&outputs).zip(&blobs) {
            let path = absolute(&root, self.expansion.graph.path(f));
            if let Err(e) = write_output(&path, bytes, o.executable) {
                self.progress.message(&format!(
                    "warning: cannot restore {} from the cache: {e}; running the task",
                    path.display()
                ));
                return None;
            }
            let stat = filestate::stat(&path)?;
            restored.push(Some((stat, Some(*blake3::hash(bytes).as_bytes()))));
        }
        let task = self.expansion.graph.task(t);
        let watch = task
            .reads()
            .chain(self.implicit[t.index()].iter().copied())
            .map(|f| {
                let s = &self.files[f.index()];
                s.stat.map(|stat| (stat, s.hash))
            })
            .collect();
        let keyer = &self.caches.as_ref()?.keyer;
        let depfile = task.depfile.map(|_| {
            Ok(entry
                .implicit
                .iter()
                .map(|(p, _)| keyer.unpath(p))
                .collect())
        });
        let now = self.clock.as_ref().map_or(0, |c| c.now());
        Some(Finished {
            id: t.index(),
            exit: Exit::Success,
            output: Output::default(),
            duration: Duration::ZERO,
            start: Instant::now(),
            worker: 0,
            started_at: now,
            ended_at: now,
            outputs: restored,
            watch,
            depfile,
            remote: Default::default(),
        })
    }

    /// After a successful run of `t` that nothing disturbed: stores its outputs under the key it
    /// missed with.
    pub(super) fn store(&mut self, t: TaskId) {
        let Some(key) = self.caches.as_mut().and_then(|c| c.keys.remove(&t)) else {
            return;
        };
        let Some(caches) = self.caches.as_ref() else {
            return;
        };
        if caches.readonly {
            return;
        }
        let graph = &self.expansion.graph;
        let mut implicit = Vec::new();
        for &f in &self.implicit[t.index()] {
            let h = self.hash(f);
            if h == MISSING {
                return;
            }
            implicit.push((caches.keyer.path(graph.path(f)), h));
        }
        let mut outputs = Vec::new();
        for f in self.recorded_outputs(t) {
            let path = absolute(&self.project.root, graph.path(f));
            let Ok((bytes, executable)) = crate::cache::read_output(&path) else {
                return;
            };
            outputs.push(OutputFile {
                path: caches.keyer.path(graph.path(f)),
                digest: Digest::of(&bytes),
                executable,
            });
        }
        let entry = Entry { outputs, implicit };
        let n = caches.backends.len();
        for b in 0..n {
            self.store_entry(b, &key, &entry, t);
        }
    }

    fn store_entry(&mut self, b: usize, key: &Key, entry: &Entry, t: TaskId) {
        let graph = &self.expansion.graph;
        let paths: Vec<PathBuf> = self
            .recorded_outputs(t)
            .iter()
            .map(|&f| absolute(&self.project.root, graph.path(f)))
            .collect();
        let blobs: Vec<(Digest, &std::path::Path)> = entry
            .outputs
            .iter()
            .zip(&paths)
            .map(|(o, p)| (o.digest, p.as_path()))
            .collect();
        let Some(caches) = self.caches.as_mut() else {
            return;
        };
        if caches.disabled.contains(&b) {
            return;
        }
        let backend = &caches.backends[b];
        match backend.put(key, entry, &blobs) {
            Ok(()) => {
                caches.stores += 1;
                caches.stored_bytes += entry.outputs.iter().map(|o| o.digest.size).sum::<u64>();
            }
            Err(why) => {
                let name = backend.name();
                if b >= caches.first_remote {
                    caches.disabled.insert(b);
                }
                if caches.warned.insert(name.clone()) {
                    self.progress
                        .message(&format!("warning: cache {name}: {why}; not stored"));
                }
            }
        }
    }
}
