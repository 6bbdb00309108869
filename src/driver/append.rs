//! Appending to the store: each record with the task or file it is about, so that the build
//! knows where every latest record is (for the snapshot, and to read a record again).

use super::Build;
use crate::filestate::{Hash, Recorded, Stat};
use crate::graph::Graph;
use crate::ids::{FileId, TaskId};
use crate::store::Record;

/// The store record of file `f`'s hash, and the file it is about.
pub(super) fn file_record(
    graph: &Graph,
    f: FileId,
    stat: Stat,
    hash: Hash,
    recorded_at: i64,
) -> (Slot, Record) {
    let rec = Recorded {
        stat,
        hash,
        recorded_at,
    };
    (Slot::File(f), Record::File(graph.path(f).to_string(), rec))
}

/// Which task or file a record appended to the store is about.
pub(super) enum Slot {
    Task(TaskId),
    Forget(TaskId),
    File(FileId),
    None,
}

impl Build<'_> {
    /// Appends records to the store, and notes where each task's and file's latest record is.
    pub(super) fn append(&mut self, records: Vec<(Slot, Record)>) {
        if self.opts.dry_run {
            return;
        }
        let (slots, records): (Vec<Slot>, Vec<Record>) = records.into_iter().unzip();
        match self.store.append(records) {
            Ok(offsets) => {
                for (slot, at) in slots.into_iter().zip(offsets) {
                    match slot {
                        Slot::Task(t) => self.rec.tasks[t.index()] = Some(at),
                        Slot::Forget(t) => self.rec.tasks[t.index()] = None,
                        Slot::File(f) => {
                            if self.rec.files.len() <= f.index() {
                                self.rec.files.resize(f.index() + 1, None);
                            }
                            self.rec.files[f.index()] = Some(at);
                        }
                        Slot::None => {}
                    }
                }
            }
            Err(e) => self
                .progress
                .message(&format!("warning: cannot record kiln's state: {e}")),
        }
    }
}
