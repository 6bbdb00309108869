//! The details log beside the store: what only `--explain` reads about a task (its commands, env
//! values and the input hashes the run saw), kept apart so that loading the store never reads it.
//! A task record holds where its details start. Details are appended in batches, written when a
//! batch passes 64 KiB, when asked and when the store is dropped (a crash may lose the last batch:
//! explain then says less); until written they are read from memory.

use super::log::{DETAILS_MAGIC, frame, has_magic, put_header, read_record, record_at};
use super::record::{Details, TaskRecord, decode_details, encode_details};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A batch of details this large is written at once.
const BATCH: usize = 64 * 1024;

/// The details log of one store, and the batch not written yet.
pub(super) struct DetailsLog {
    path: PathBuf,
    /// Open for appending (and reading) when the store may be written.
    file: Option<File>,
    /// Bytes of the log on disk, and the batch not written yet (which follows them).
    len: u64,
    pending: Vec<u8>,
}

/// The bytes of a details log with no details yet, for [`put`].
pub(super) fn fresh() -> Vec<u8> {
    let mut log = Vec::new();
    put_header(&mut log, DETAILS_MAGIC);
    log
}

/// Appends the details of `t` to `log` (the bytes of a details log, or of a batch to append to
/// one), returning where in `log` they start.
pub(super) fn put(log: &mut Vec<u8>, t: &TaskRecord) -> u64 {
    let at = log.len() as u64;
    frame(log, |buf| encode_details(t, buf));
    at
}

impl DetailsLog {
    /// The details log of the store at `store`, not open.
    pub(super) fn new(store: &Path) -> DetailsLog {
        DetailsLog {
            path: DetailsLog::path_for(store),
            file: None,
            len: 0,
            pending: Vec::new(),
        }
    }

    /// Where the details of the store at `store` are.
    pub(super) fn path_for(store: &Path) -> PathBuf {
        store.with_file_name("details")
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the log starts as a details log does (read through the open handle, if any).
    pub(super) fn is_intact(&self) -> bool {
        match &self.file {
            Some(f) => has_magic(f, DETAILS_MAGIC),
            None => File::open(&self.path).is_ok_and(|f| has_magic(&f, DETAILS_MAGIC)),
        }
    }

    /// Opens the log for appending.
    pub(super) fn open_for_append(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.path)?;
        self.len = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    /// Adds the details of `t` to the batch, returning where in the log they start; `None` (and
    /// nothing added) if the log is not open.
    pub(super) fn push(&mut self, t: &TaskRecord) -> Option<u64> {
        self.file.as_ref()?;
        Some(self.len + put(&mut self.pending, t))
    }

    /// Writes the batch if it has grown large enough.
    pub(super) fn flush_if_full(&mut self) -> io::Result<()> {
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the batch not written yet.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        if let Some(f) = &mut self.file
            && !self.pending.is_empty()
        {
            f.write_all(&self.pending)?;
            self.len += self.pending.len() as u64;
            self.pending.clear();
        }
        Ok(())
    }

    /// The details of task `key` starting at `offset`, if they are there intact.
    pub(super) fn read(&self, offset: u64, key: &str) -> Option<Details> {
        if let Some(at) = offset.checked_sub(self.len).filter(|_| self.file.is_some()) {
            // Still in the batch not written yet.
            let (payload, _) = record_at(&self.pending, usize::try_from(at).ok()?)?;
            return decode_details(payload, key);
        }
        let file = match &self.file {
            Some(f) => f.try_clone().ok()?,
            None => File::open(&self.path).ok()?,
        };
        decode_details(&read_record(&file, offset)?, key)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;
    use crate::store::tests::{owned, store_with, task};
    use std::fs;

    #[test]
    fn damaged_details_lose_only_the_details() {
        let (dir, path, s) = store_with(&["t"]);
        drop(s);
        fs::write(dir.path().join("details"), b"KILNDETL\x02\0\0\0garbage").unwrap();
        let (s, _) = Store::open(&path, false).unwrap();
        let v = s.task("t").unwrap();
        assert_eq!(v.signature, [1; 32]);
        assert!(s.details(&v).is_none());
    }

    #[test]
    fn details_are_written_in_batches_and_never_shown_for_another_task() {
        let (dir, path, s) = store_with(&["x"]);
        // Not written yet, but readable.
        assert_eq!(fs::metadata(dir.path().join("details")).unwrap().len(), 12);
        assert_eq!(owned(&s, "x"), Some(task("x", 1)));
        // A record whose details offset holds another task's details (as after a crash that lost
        // a batch) shows none.
        let v = s.task("x").unwrap();
        let mut other = v;
        other.key = "y";
        assert!(s.details(&other).is_none());
        drop(s);
        let (s, _) = Store::open(&path, false).unwrap();
        assert_eq!(
            owned(&s, "x"),
            Some(task("x", 1)),
            "written when the store is dropped"
        );
    }
}
