//! The build graph's tables: every file by [`FileId`] (interned kiln paths), every task by
//! [`TaskId`], and the task that produces each file. Adding a task whose output another task
//! already produces is refused, naming that task.

use crate::ids::{Fast, FileId, TaskId, key_hash};
use crate::task::Task;
use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Debug, Default)]
pub struct Graph {
    /// Every path, one after the other; `ends[i]` is where path `i` ends.
    blob: String,
    ends: Vec<u32>,
    /// Paths to ids, built when first needed (a build that only checks files never needs it).
    index: OnceLock<PathIndex>,
    producer: Vec<Option<TaskId>>,
    tasks: Vec<Task>,
}

/// Path hashes to ids; a path whose hash another path has already goes to `collided`.
#[derive(Debug, Default)]
struct PathIndex {
    by_hash: HashMap<u64, u32, Fast>,
    collided: HashMap<Box<str>, u32>,
}

impl Graph {
    /// The id of `path`, adding it if new.
    pub fn file(&mut self, path: &str) -> FileId {
        if let Some(id) = self.lookup(path) {
            return id;
        }
        let id = self.push_path(path);
        let index = self.index.get_mut().expect("built by lookup");
        match index.by_hash.entry(key_hash(path)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(id.0);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                index.collided.insert(path.into(), id.0);
            }
        }
        id
    }

    /// A graph of these paths and no tasks yet, from kiln's own cache: `blob` holds the paths one
    /// after the other and `ends[i]` is where path `i` ends. `None` if they do not fit together.
    pub fn from_paths(blob: String, ends: Vec<u32>) -> Option<Graph> {
        if !Graph::paths_are_whole(&blob, &ends) {
            return None;
        }
        Some(Graph {
            producer: vec![None; ends.len()],
            blob,
            ends,
            index: OnceLock::new(),
            tasks: Vec::new(),
        })
    }

    /// Whether `ends` cut `blob` into paths: never going back, each at a character boundary, the
    /// last at the end.
    pub fn paths_are_whole(blob: &str, ends: &[u32]) -> bool {
        let mut start = 0usize;
        for &e in ends {
            let e = e as usize;
            if e < start || !blob.is_char_boundary(e) {
                return false;
            }
            start = e;
        }
        start == blob.len()
    }

    /// Every path one after the other, and where each ends.
    pub fn paths(&self) -> (&str, &[u32]) {
        (&self.blob, &self.ends)
    }

    pub fn reserve_tasks(&mut self, n: usize) {
        self.tasks.reserve(n);
    }

    fn push_path(&mut self, path: &str) -> FileId {
        let id = FileId(self.ends.len() as u32);
        self.blob.push_str(path);
        self.ends.push(self.blob.len() as u32);
        self.producer.push(None);
        id
    }

    /// The id of `path`, if known.
    pub fn lookup(&self, path: &str) -> Option<FileId> {
        let index = self.index.get_or_init(|| {
            let mut index = PathIndex::default();
            index.by_hash.reserve(self.ends.len());
            for i in 0..self.ends.len() as u32 {
                let p = self.path(FileId(i));
                match index.by_hash.entry(key_hash(p)) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(i);
                    }
                    std::collections::hash_map::Entry::Occupied(_) => {
                        index.collided.insert(p.into(), i);
                    }
                }
            }
            index
        });
        match index.by_hash.get(&key_hash(path)) {
            Some(&i) if self.path(FileId(i)) == path => Some(FileId(i)),
            Some(_) => index.collided.get(path).map(|&i| FileId(i)),
            None => None,
        }
    }

    pub fn path(&self, id: FileId) -> &str {
        let i = id.index();
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.blob[start..self.ends[i] as usize]
    }

    pub fn file_count(&self) -> usize {
        self.ends.len()
    }

    /// The task's identity across builds: its first output, or the name its generator gave it.
    pub fn key(&self, id: TaskId) -> &str {
        let t = &self.tasks[id.index()];
        match (&t.own_key, t.outputs.first()) {
            (Some(k), _) => k,
            (None, Some(&o)) => self.path(o),
            (None, None) => "",
        }
    }

    pub fn producer(&self, id: FileId) -> Option<TaskId> {
        self.producer[id.index()]
    }

    pub fn task(&self, id: TaskId) -> &Task {
        &self.tasks[id.index()]
    }

    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    pub fn task_ids(&self) -> impl Iterator<Item = TaskId> + use<> {
        (0..self.tasks.len() as u32).map(TaskId)
    }

    /// Adds a task; if one of its outputs (or its depfile) is already produced, returns that file
    /// and its producer.
    pub fn add_task(&mut self, task: Task) -> Result<TaskId, (FileId, TaskId)> {
        let id = TaskId(self.tasks.len() as u32);
        let made = || task.outputs.iter().chain(&task.depfile).copied();
        for (i, out) in made().enumerate() {
            if let Some(other) = self.producer[out.index()] {
                return Err((out, other));
            }
            if made().take(i).any(|o| o == out) {
                return Err((out, id));
            }
        }
        for out in made() {
            self.producer[out.index()] = Some(id);
        }
        self.tasks.push(task);
        Ok(id)
    }

    /// The tasks producing what `task` reads (inputs and manual dependencies), without repeats.
    pub fn producers_of(&self, task: TaskId) -> Vec<TaskId> {
        let mut out: Vec<TaskId> = self.tasks[task.index()]
            .reads()
            .filter_map(|f| self.producer(f))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// A short human name for a task: its rule and outputs (or inputs when it has none).
    pub fn describe(&self, task: TaskId, rule_name: &str) -> String {
        let t = &self.tasks[task.index()];
        let files = if t.outputs.is_empty() {
            &t.inputs
        } else {
            &t.outputs
        };
        let mut names: Vec<&str> = files.iter().take(3).map(|&f| self.path(f)).collect();
        if files.len() > 3 {
            names.push("...");
        }
        if names.is_empty() {
            return rule_name.to_string();
        }
        format!("{rule_name} ({})", names.join(" "))
    }
}
