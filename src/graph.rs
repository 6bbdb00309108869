//! The build graph's tables: every file by [`FileId`] (interned kiln paths), every task by
//! [`TaskId`], and the task that produces each file. Adding a task whose output another task
//! already produces is refused, naming that task.

use crate::ids::{FileId, TaskId};
use crate::index::KeyIndex;
use crate::task::Task;
use std::sync::OnceLock;

#[derive(Debug, Default)]
pub struct Graph {
    /// Every path, one after the other; `ends[i]` is where path `i` ends.
    blob: String,
    ends: Vec<u32>,
    /// Paths to ids, built when first needed (a build that only checks files never needs it).
    index: OnceLock<KeyIndex<u32>>,
    producer: Vec<Option<TaskId>>,
    tasks: Vec<Task>,
}

impl Graph {
    /// The id of `path`, adding it if new.
    pub fn file(&mut self, path: &str) -> FileId {
        if let Some(id) = self.lookup(path) {
            return id;
        }
        let id = self.push_path(path);
        let index = self.index.get_mut().expect("built by lookup");
        let (blob, ends) = (&self.blob, &self.ends);
        index.insert(path, id.0, |i| Some(nth_path(blob, ends, i)));
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
        let path_of = |i: u32| Some(nth_path(&self.blob, &self.ends, i));
        let index = self.index.get_or_init(|| {
            let mut index = KeyIndex::with_capacity(self.ends.len());
            for i in 0..self.ends.len() as u32 {
                index.insert(nth_path(&self.blob, &self.ends, i), i, path_of);
            }
            index
        });
        index.get(path, path_of).map(FileId)
    }

    pub fn path(&self, id: FileId) -> &str {
        nth_path(&self.blob, &self.ends, id.0)
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
            .follows()
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

/// Path `i` of `blob`, where `ends[i]` is where it ends.
fn nth_path<'a>(blob: &'a str, ends: &[u32], i: u32) -> &'a str {
    let i = i as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &blob[start..ends[i] as usize]
}
