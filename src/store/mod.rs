//! The on-disk store under `<out>/.kiln/`: kiln's memory of file hashes and finished tasks, as
//! two append-only binary logs. `store` holds what every build reads (file hashes; each task's
//! signature, outputs and implicit dependencies); `details` holds what only `--explain` reads (a
//! task's commands, env values and input hashes), referenced by offset. Each finished task's
//! record is appended with one `write` as soon as it finishes, so a crash loses at most the tasks
//! that were running. Details are written in batches (a crash may lose some: explain then says
//! less); each names its task, so a record never shows another task's details.
//!
//! Both logs are framed as `log` says (a header, then records with a length and a checksum);
//! their payloads are encoded as `record` says. The last record for a key wins.
//!
//! Loading reads `store` once, checks every record's checksum and indexes records by a 64-bit
//! hash of their key; nothing is decoded until asked for. Loading never fails: a record whose
//! checksum does not match is skipped and reading resumes at the next position where an intact
//! record starts (a torn tail ends the log); a bad header or another version discards the store
//! with a warning. Damage, or dead records outnumbering live ones two to one, makes the store
//! rewrite itself: new files, fsync, rename.

use crate::filestate::Recorded;
use crate::index::KeyIndex;
use bytes::Bytes;
use details::DetailsLog;
use log::{HEADER_LEN, MAGIC, RECORD_HEAD, frame, payload, put_header, record_at, scan, version};
use paths::PathLog;
use record::{TAG_FILE, TAG_FORGET, TAG_TASK, encode, file_record, indexable, key_at, task_view};
use std::cell::OnceCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

mod bytes;
mod details;
mod log;
mod paths;
mod record;

pub use log::VERSION;
pub use record::{Details, Record, TaskRecord, TaskView};

/// The store: its records in memory, and append handles when it may be written.
pub struct Store {
    path: PathBuf,
    /// Open for appending when the store may be written.
    file: Option<File>,
    details: DetailsLog,
    /// The paths task records name by id.
    paths: PathLog,
    /// Every record of `store`, as loaded and appended: the file mapped, read in place.
    bytes: Bytes,
    /// Built when loading, or on first use by a store opened without it.
    index: OnceCell<Indexes>,
}

/// Where the latest record of each file and task is.
#[derive(Default)]
struct Indexes {
    /// Payload offsets by key.
    files: KeyIndex<usize>,
    tasks: KeyIndex<usize>,
    /// Records indexed, live or dead.
    records: usize,
}

impl Indexes {
    /// Indexes the record whose payload starts at `at` in `bytes`.
    fn add(&mut self, bytes: &[u8], at: usize) {
        self.add_from(bytes, &bytes[at..], at);
    }

    /// Indexes the record whose payload, `payload`, starts at `at` in `bytes` (read there only to
    /// compare keys whose hashes collide: a record just appended is indexed from the buffer it
    /// was written from, without reading its page of the mapping back in).
    fn add_from(&mut self, bytes: &[u8], payload: &[u8], at: usize) {
        self.records += 1;
        let Some(key) = key_at(payload, 0) else { return };
        let lookup = |o: usize| key_at(bytes, o);
        match payload[0] {
            TAG_FILE => self.files.insert(key, at, lookup),
            TAG_TASK => self.tasks.insert(key, at, lookup),
            TAG_FORGET => self.tasks.remove(key, lookup),
            _ => {}
        }
    }
}

fn build_index(bytes: &[u8], offsets: &[usize]) -> Indexes {
    let mut ix = Indexes::default();
    for &at in offsets {
        ix.add(bytes, at);
    }
    ix
}

impl Store {
    /// An empty store that writes nothing (a dry run with no state yet).
    pub fn empty(path: &Path) -> Store {
        Store {
            path: path.to_path_buf(),
            file: None,
            details: DetailsLog::new(path),
            paths: PathLog::new(path),
            bytes: Bytes::default(),
            index: OnceCell::from(Indexes::default()),
        }
    }

    /// Loads the store at `path`; with `writable`, opens it for appending (creating or repairing it).
    /// Warnings about unreadable state are returned, never errors about it.
    pub fn open(path: &Path, writable: bool) -> io::Result<(Store, Vec<String>)> {
        let mut store = Store::empty(path);
        let mut warnings = Vec::new();
        let mut rewrite = false;
        match Bytes::map(path) {
            Ok(bytes) => {
                let damage = store.load(bytes);
                let (paths, whole) = PathLog::load(path);
                store.paths = paths;
                if let Some(w) = damage {
                    warnings.push(w);
                    rewrite = true;
                } else if !whole {
                    warnings.push("kiln's record of dependency paths was damaged or missing; the tasks that named them will run again".into());
                    rewrite = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => rewrite = true,
            Err(e) => {
                warnings.push(format!(
                    "could not read kiln's state ({e}); starting afresh"
                ));
                rewrite = true;
            }
        }
        if writable {
            let ix = store.ix();
            let live = ix.files.len() + ix.tasks.len();
            let records = ix.records;
            if rewrite || !store.details.is_intact() || (records > 1000 && records > 3 * live) {
                store.rewrite()?;
            }
            store.open_for_append()?;
        }
        Ok((store, warnings))
    }

    /// Opens the store like [`Store::open`], but never fails: what cannot be opened is removed and
    /// created afresh, and if even that fails the build goes on without saved state. Unreadable
    /// state is a warning, never an error.
    pub fn open_or_reset(path: &Path) -> (Store, Vec<String>) {
        match Store::open(path, true) {
            Ok(opened) => opened,
            Err(first) => {
                let mut warnings = vec![format!(
                    "kiln's state at {} cannot be used ({first}); starting afresh",
                    path.display()
                )];
                for p in [path.to_path_buf(), DetailsLog::path_for(path)] {
                    let _ = match fs::symlink_metadata(&p) {
                        Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
                        Ok(_) => fs::remove_file(&p),
                        Err(e) => Err(e),
                    };
                }
                match Store::open(path, true) {
                    Ok((store, more)) => {
                        warnings.extend(more);
                        (store, warnings)
                    }
                    Err(e) => {
                        warnings.push(format!(
                            "kiln cannot write its state ({e}); this build records nothing"
                        ));
                        (Store::empty(path), warnings)
                    }
                }
            }
        }
    }

    /// A store read from `bytes` (what the file at `path` would hold), opened for reading only;
    /// with a warning if anything was damaged.
    #[cfg(any(test, feature = "internals"))]
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> (Store, Option<String>) {
        let mut store = Store::empty(path);
        let warning = store.load(Bytes::Owned(bytes));
        (store, warning)
    }

    /// Indexes `bytes` (the whole store file); returns a warning if anything was damaged.
    fn load(&mut self, bytes: Bytes) -> Option<String> {
        let Some(version) = version(&bytes, MAGIC) else {
            return Some("kiln's state is unreadable (not a kiln store); starting afresh".into());
        };
        if version != VERSION {
            return Some(format!(
                "kiln's state has format version {version}, this kiln reads version {VERSION}; starting afresh"
            ));
        }
        let (offsets, damaged_at) = scan(&bytes, indexable);
        let ix = build_index(&bytes, &offsets);
        let records = ix.records;
        self.bytes = bytes;
        self.index = OnceCell::from(ix);
        damaged_at.map(|at| {
            format!(
                "kiln's state was damaged at byte {at} ({} bytes in all); kept {} intact records, the rest will be rebuilt",
                self.bytes.len(),
                records
            )
        })
    }

    /// The index, built now if the store was opened without one.
    fn ix(&self) -> &Indexes {
        self.index.get_or_init(|| {
            let (offsets, _) = scan(&self.bytes, indexable);
            build_index(&self.bytes, &offsets)
        })
    }

    /// Opens the store for appending without checking or indexing its records: for a build that
    /// knows from its snapshot where the records it needs are ([`Store::task_at`],
    /// [`Store::file_at`]). Lookups by key index the store when first made. `None` if the store
    /// cannot be opened so; [`Store::open`] then says why.
    pub fn open_unindexed(path: &Path) -> Option<Store> {
        let bytes = Bytes::map(path).ok()?;
        if version(&bytes, MAGIC) != Some(VERSION) {
            return None;
        }
        let mut store = Store::empty(path);
        let (paths, whole) = PathLog::load(path);
        if !whole {
            return None;
        }
        store.paths = paths;
        store.bytes = bytes;
        store.index = OnceCell::new();
        store.open_for_append().ok()?;
        store.details.is_intact().then_some(store)
    }

    /// The payload of the intact record of kind `tag` and key `key` whose payload starts at `at`.
    fn payload_at(&self, at: usize, tag: u8, key: &str) -> Option<&[u8]> {
        self.tagged_at(at, tag)
            .filter(|_| key_at(&self.bytes, at) == Some(key))
    }

    /// The payload of the intact record of kind `tag`, whatever its key, starting at `at`.
    fn tagged_at(&self, at: usize, tag: u8) -> Option<&[u8]> {
        let (payload, _) = record_at(&self.bytes, at.checked_sub(RECORD_HEAD)?)?;
        (payload.first() == Some(&tag)).then_some(payload)
    }

    /// Where the latest record of task `key` starts, for [`Store::task_at`].
    pub fn task_offset(&self, key: &str) -> Option<usize> {
        self.ix().tasks.get(key, |o| key_at(&self.bytes, o))
    }

    /// Where the latest record of file `path` starts, for [`Store::file_at`].
    pub fn file_offset(&self, path: &str) -> Option<usize> {
        self.ix().files.get(path, |o| key_at(&self.bytes, o))
    }

    /// The task record at `at`, if one for `key` is there intact.
    pub fn task_at(&self, at: usize, key: &str) -> Option<TaskView<'_>> {
        task_view(self.payload_at(at, TAG_TASK, key)?)
    }

    /// Gives back the memory that reading records through the mapping took (see
    /// `Bytes::release`); nothing read is lost.
    pub fn release_pages(&self) {
        self.bytes.release();
    }

    /// The task record at `at`, whatever its key, if one is there intact.
    pub fn any_task_at(&self, at: usize) -> Option<TaskView<'_>> {
        task_view(self.tagged_at(at, TAG_TASK)?)
    }

    /// The file record at `at`, if one for `path` is there intact.
    pub fn file_at(&self, at: usize, path: &str) -> Option<Recorded> {
        file_record(self.payload_at(at, TAG_FILE, path)?)
    }

    /// The recorded hash of a file.
    pub fn file(&self, path: &str) -> Option<Recorded> {
        file_record(payload(&self.bytes, self.file_offset(path)?))
    }

    /// The record of a task.
    pub fn task(&self, key: &str) -> Option<TaskView<'_>> {
        task_view(payload(&self.bytes, self.task_offset(key)?))
    }

    /// Every task record.
    pub fn tasks(&self) -> impl Iterator<Item = TaskView<'_>> + '_ {
        self.ix()
            .tasks
            .values()
            .filter_map(|at| task_view(payload(&self.bytes, at)))
    }

    /// The path whose id is `id` (a task record names its implicit dependencies so).
    pub fn path(&self, id: u32) -> Option<&str> {
        self.paths.get(id)
    }

    /// The paths of a task record's implicit dependencies; `None` if one has no path record
    /// (damage: the task runs again).
    pub fn implicit_paths<'s>(&'s self, task: &TaskView) -> Option<Vec<&'s str>> {
        task.implicit_ids().map(|id| self.path(id)).collect()
    }

    /// The details of a task's record, if they can be read.
    pub fn details(&self, task: &TaskView) -> Option<Details> {
        self.details.read(task.details?, task.key)
    }

    /// Writes the batch of details not written yet.
    pub fn flush_details(&mut self) -> io::Result<()> {
        self.details.flush()
    }

    /// Appends records (task details first, to their own log), and indexes them. Returns where
    /// each record starts, in order, for [`Store::task_at`] and [`Store::file_at`].
    pub fn append(&mut self, records: Vec<Record>) -> io::Result<Vec<usize>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let base = self.bytes.len();
        let mut hot = Vec::new();
        let mut offsets = Vec::with_capacity(records.len());
        for r in &records {
            let details = match r {
                Record::Task(t) => self.details.push(t),
                _ => None,
            };
            offsets.push(base + self.frame(r, details, &mut hot));
        }
        // Paths before the task records that name them.
        let written = match &mut self.file {
            Some(file) => self
                .paths
                .flush()
                .and_then(|()| self.details.flush_if_full())
                .and_then(|()| file.write_all(&hot)),
            None => Ok(()),
        };
        if let Err(e) = written {
            // What reached the file is unknown: write nothing more this build (the next one
            // finds a torn record and repairs the store).
            self.file = None;
            return Err(e);
        }
        self.bytes.appended(&self.path, &hot)?;
        // An index not built yet will see these records when it is.
        if let Some(ix) = self.index.get_mut() {
            for &at in &offsets {
                ix.add_from(&self.bytes, &hot[at - base..], at);
            }
        }
        Ok(offsets)
    }

    /// Frames `r` onto `hot`, naming its implicit dependencies by path id; returns where in
    /// `hot` its payload starts.
    fn frame(&mut self, r: &Record, details: Option<u64>, hot: &mut Vec<u8>) -> usize {
        let ids: Vec<u32> = match r {
            Record::Task(t) => t.implicit.iter().map(|(p, _)| self.paths.intern(p)).collect(),
            _ => Vec::new(),
        };
        frame(hot, |buf| encode(r, details, &ids, buf))
    }

    /// Rewrites the store and its details with only live records: new files, fsync, rename,
    /// fsync the directory.
    fn rewrite(&mut self) -> io::Result<()> {
        self.flush_details()?;
        let mut files: Vec<(String, Recorded)> = self
            .ix()
            .files
            .values()
            .filter_map(|at| {
                let path = key_at(&self.bytes, at)?.to_string();
                Some((path.clone(), self.file(&path)?))
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tasks: Vec<TaskRecord> = self.tasks().map(|v| self.owned(&v)).collect();
        tasks.sort_by(|a, b| a.key.cmp(&b.key));

        let mut fresh = Store::empty(&self.path);
        let mut hot = Vec::with_capacity(HEADER_LEN + 64 * (files.len() + tasks.len()));
        put_header(&mut hot, MAGIC);
        let mut cold = details::fresh();
        for (path, rec) in files {
            fresh.frame(&Record::File(path, rec), None, &mut hot);
        }
        for t in tasks {
            let at = details::put(&mut cold, &t);
            fresh.frame(&Record::Task(t), Some(at), &mut hot);
        }
        let paths = std::mem::replace(&mut fresh.paths, PathLog::new(&self.path));
        let files = [
            (self.details.path(), &cold[..]),
            (paths.file_path(), paths.bytes()),
            (&self.path, &hot[..]),
        ];
        for (path, bytes) in files {
            let tmp = path.with_extension("tmp");
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
        }
        if let Some(dir) = self.path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        let writable = self.file.is_some();
        let path = self.path.clone();
        *self = Store::empty(&path);
        drop(hot);
        // Read in place, as when opened.
        self.load(Bytes::map(&path)?);
        self.paths = paths;
        self.paths.written_whole();
        if let Some(ix) = self.index.get_mut() {
            ix.records = ix.files.len() + ix.tasks.len();
        }
        if writable {
            self.open_for_append()?;
        }
        Ok(())
    }

    /// Opens the store and its details log for appending records.
    fn open_for_append(&mut self) -> io::Result<()> {
        self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        self.paths.open_for_append()?;
        self.details.open_for_append()
    }

    /// A task's record with its details, owned.
    pub fn owned(&self, v: &TaskView) -> TaskRecord {
        let implicit = self.implicit_paths(v).unwrap_or_default();
        TaskRecord::from_view(v, implicit, self.details(v).unwrap_or_default())
    }

    /// Drops every task record (after `clean`), keeping file hashes.
    pub fn forget_tasks(&mut self) -> io::Result<()> {
        self.ix();
        if let Some(ix) = self.index.get_mut() {
            ix.tasks = KeyIndex::default();
        }
        self.rewrite()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.flush_details();
    }
}

#[cfg(test)]
mod tests;
