//! The build graph's tables: every file by [`FileId`] (interned kiln paths), every task by
//! [`TaskId`], and the task that produces each file. Adding a task whose output another task
//! already produces is refused, naming that task.

use crate::task::{FileId, Task, TaskId};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Graph {
    paths: Vec<Box<str>>,
    index: HashMap<Box<str>, FileId>,
    producer: Vec<Option<TaskId>>,
    tasks: Vec<Task>,
}

impl Graph {
    /// The id of `path`, adding it if new.
    pub fn file(&mut self, path: &str) -> FileId {
        if let Some(&id) = self.index.get(path) {
            return id;
        }
        let id = FileId(self.paths.len() as u32);
        self.paths.push(path.into());
        self.index.insert(path.into(), id);
        self.producer.push(None);
        id
    }

    /// The id of `path`, if known.
    pub fn lookup(&self, path: &str) -> Option<FileId> {
        self.index.get(path).copied()
    }

    pub fn path(&self, id: FileId) -> &str {
        &self.paths[id.index()]
    }

    pub fn file_count(&self) -> usize {
        self.paths.len()
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
        let made: Vec<FileId> = task.outputs.iter().chain(&task.depfile).copied().collect();
        for (i, &out) in made.iter().enumerate() {
            if let Some(other) = self.producer[out.index()] {
                return Err((out, other));
            }
            if made[..i].contains(&out) {
                return Err((out, TaskId(self.tasks.len() as u32)));
            }
        }
        let id = TaskId(self.tasks.len() as u32);
        for &out in &made {
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
        format!("{rule_name} ({})", names.join(" "))
    }
}
