//! The path log beside the store (`paths`): each path that a task record names among its implicit
//! dependencies, with the id the record names it by, as ninja's deps log has its path records. A
//! path is written once, before the first task record that names it; a header that a thousand
//! compiles include costs one record here and a varint or two in each of theirs.
//!
//! The log is small (one record per distinct path), so it is read whole and indexed both ways,
//! and a build that appends a task record never needs the store's own index to name its paths.
//! Its framing is the store's. An id is written in its record, so damage loses only the ids it
//! covers: a task record naming one of those has no implicit paths, its signature no longer
//! matches, and it runs again. A torn tail is the path being written when a build was killed:
//! no task record names it yet.

use super::log::{PATHS_MAGIC, VERSION, frame, put_header, scan, version};
use super::record::{encode_path, key_at, path_id};
use crate::index::KeyIndex;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// No path record has this id.
const NO_PATH: usize = usize::MAX;

/// The path log: its bytes (as read and appended), and its records by id and by path.
pub(super) struct PathLog {
    path: PathBuf,
    file: Option<File>,
    bytes: Vec<u8>,
    /// How much of `bytes` is on disk.
    written: usize,
    /// Where each id's payload starts (`NO_PATH`: none).
    at: Vec<usize>,
    ids: KeyIndex<u32>,
}

impl PathLog {
    /// An empty log for the store at `store`, not open.
    pub(super) fn new(store: &Path) -> PathLog {
        let mut bytes = Vec::new();
        put_header(&mut bytes, PATHS_MAGIC);
        PathLog {
            path: PathLog::path_for(store),
            file: None,
            written: bytes.len(),
            bytes,
            at: Vec::new(),
            ids: KeyIndex::default(),
        }
    }

    pub(super) fn path_for(store: &Path) -> PathBuf {
        store.with_file_name("paths")
    }

    /// The log of the store at `store`, and whether it was read whole (false: missing, of
    /// another version, or damaged; the store is then rewritten).
    pub(super) fn load(store: &Path) -> (PathLog, bool) {
        let mut log = PathLog::new(store);
        let Ok(bytes) = std::fs::read(&log.path) else {
            return (log, false);
        };
        if version(&bytes, PATHS_MAGIC) != Some(VERSION) {
            return (log, false);
        }
        let (offsets, damaged_at) = scan(&bytes, |p| path_id(p).is_some());
        log.written = bytes.len();
        log.bytes = bytes;
        for at in offsets {
            log.index(at);
        }
        (log, damaged_at.is_none())
    }

    fn index(&mut self, at: usize) {
        let (Some(id), Some(path)) = (path_id(&self.bytes[at..]), key_at(&self.bytes, at)) else {
            return;
        };
        let i = id as usize;
        if self.at.len() <= i {
            self.at.resize(i + 1, NO_PATH);
        }
        self.at[i] = at;
        let (bytes, slots) = (&self.bytes, &self.at);
        self.ids
            .insert(path, id, |id| key_at(bytes, *slots.get(id as usize)?));
    }

    /// Opens the log for appending.
    pub(super) fn open_for_append(&mut self) -> io::Result<()> {
        self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        Ok(())
    }

    /// Says that the whole log is on disk (written afresh by the store's rewrite).
    pub(super) fn written_whole(&mut self) {
        self.written = self.bytes.len();
    }

    /// The path whose id is `id`.
    pub(super) fn get(&self, id: u32) -> Option<&str> {
        let at = *self.at.get(id as usize)?;
        if at == NO_PATH {
            return None;
        }
        key_at(&self.bytes, at)
    }

    /// The id of `path`, adding a record for it (written by [`PathLog::flush`]) if it has none.
    pub(super) fn intern(&mut self, path: &str) -> u32 {
        let (bytes, slots) = (&self.bytes, &self.at);
        let found = self
            .ids
            .get(path, |id| key_at(bytes, *slots.get(id as usize)?));
        if let Some(id) = found {
            return id;
        }
        let id = self.at.len() as u32;
        let at = frame(&mut self.bytes, |buf| encode_path(path, id, buf));
        self.index(at);
        id
    }

    /// Writes the records added since the last flush: before the task records that name them.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        if let Some(f) = &mut self.file
            && self.written < self.bytes.len()
            && let Err(e) = f.write_all(&self.bytes[self.written..])
        {
            self.forget_unwritten();
            return Err(e);
        }
        self.written = self.bytes.len();
        Ok(())
    }

    /// Drops the records not written, and their ids.
    fn forget_unwritten(&mut self) {
        self.bytes.truncate(self.written);
        self.at.clear();
        self.ids = KeyIndex::default();
        let (offsets, _) = scan(&self.bytes, |p| path_id(p).is_some());
        for at in offsets {
            self.index(at);
        }
    }

    /// The whole log, for writing it afresh.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(super) fn file_path(&self) -> &Path {
        &self.path
    }
}
