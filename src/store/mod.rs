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
use details::DetailsLog;
use log::{HEADER_LEN, MAGIC, RECORD_HEAD, frame, payload, put_header, record_at, scan, version};
use record::{
    TAG_FILE, TAG_FORGET, TAG_PATH, TAG_TASK, encode, encode_path, file_record, indexable, key_at,
    path_id, task_view,
};
use std::cell::OnceCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

mod details;
mod log;
mod record;

pub use log::VERSION;
pub use record::{Details, Record, TaskRecord, TaskView};

/// The store: its records in memory, and append handles when it may be written.
pub struct Store {
    path: PathBuf,
    /// Open for appending when the store may be written.
    file: Option<File>,
    details: DetailsLog,
    /// Every record of `store`, as loaded and appended.
    bytes: Vec<u8>,
    /// Built when loading, or on first use by a store opened without it.
    index: OnceCell<Indexes>,
}

/// Where the latest record of each file and task is.
#[derive(Default)]
struct Indexes {
    /// Payload offsets by key.
    files: KeyIndex<usize>,
    tasks: KeyIndex<usize>,
    /// Path records: where each id's payload starts (`NO_PATH`: none), and the ids by path.
    paths: Vec<usize>,
    path_ids: KeyIndex<u32>,
    /// Records indexed, live or dead.
    records: usize,
}

/// No path record has this id.
const NO_PATH: usize = usize::MAX;

impl Indexes {
    /// Indexes the record whose payload starts at `at` in `bytes`.
    fn add(&mut self, bytes: &[u8], at: usize) {
        self.records += 1;
        let Some(key) = key_at(bytes, at) else { return };
        let lookup = |o: usize| key_at(bytes, o);
        match bytes[at] {
            TAG_FILE => self.files.insert(key, at, lookup),
            TAG_TASK => self.tasks.insert(key, at, lookup),
            TAG_FORGET => self.tasks.remove(key, lookup),
            TAG_PATH => {
                let Some(id) = path_id(&bytes[at..]) else { return };
                let i = id as usize;
                if self.paths.len() <= i {
                    self.paths.resize(i + 1, NO_PATH);
                }
                self.paths[i] = at;
                let paths = &self.paths;
                self.path_ids
                    .insert(key, id, |id| key_at(bytes, *paths.get(id as usize)?));
            }
            _ => {}
        }
    }

    /// The id of `path`, appending a path record for it to `bytes` (and indexing it) if it has
    /// none.
    fn intern(&mut self, bytes: &mut Vec<u8>, path: &str) -> u32 {
        let paths = &self.paths;
        let found = self
            .path_ids
            .get(path, |id| key_at(bytes, *paths.get(id as usize)?));
        if let Some(id) = found {
            return id;
        }
        let id = self.paths.len() as u32;
        let at = frame(bytes, |buf| encode_path(path, id, buf));
        self.add(bytes, at);
        id
    }
}

fn build_index(bytes: &[u8], offsets: &[usize]) -> Indexes {
    let mut ix = Indexes::default();
    for &at in offsets {
        ix.add(bytes, at);
    }
    ix
}

/// The bytes of the file at `path`, with room after them for what a build appends: growing a
/// buffer of the whole store would copy it, touching twice its size. Room not written to is
/// never touched, so it costs no memory.
fn read_with_room(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len() as usize;
    let mut bytes = Vec::with_capacity(len + len / 4 + (1 << 20));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

impl Store {
    /// An empty store that writes nothing (a dry run with no state yet).
    pub fn empty(path: &Path) -> Store {
        Store {
            path: path.to_path_buf(),
            file: None,
            details: DetailsLog::new(path),
            bytes: Vec::new(),
            index: OnceCell::from(Indexes::default()),
        }
    }

    /// Loads the store at `path`; with `writable`, opens it for appending (creating or repairing it).
    /// Warnings about unreadable state are returned, never errors about it.
    pub fn open(path: &Path, writable: bool) -> io::Result<(Store, Vec<String>)> {
        let mut store = Store::empty(path);
        let mut warnings = Vec::new();
        let mut rewrite = false;
        match read_with_room(path) {
            Ok(bytes) => {
                if let Some(w) = store.load(bytes) {
                    warnings.push(w);
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
            let live = ix.files.len() + ix.tasks.len() + ix.path_ids.len();
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
        let warning = store.load(bytes);
        (store, warning)
    }

    /// Indexes `bytes` (the whole store file); returns a warning if anything was damaged.
    fn load(&mut self, bytes: Vec<u8>) -> Option<String> {
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
        let bytes = read_with_room(path).ok()?;
        if version(&bytes, MAGIC) != Some(VERSION) {
            return None;
        }
        let mut store = Store::empty(path);
        store.bytes = bytes;
        store.index = OnceCell::new();
        store.open_for_append().ok()?;
        store.details.is_intact().then_some(store)
    }

    /// The payload of the intact record of kind `tag` and key `key` whose payload starts at `at`.
    fn payload_at(&self, at: usize, tag: u8, key: &str) -> Option<&[u8]> {
        let (payload, _) = record_at(&self.bytes, at.checked_sub(RECORD_HEAD)?)?;
        (payload.first() == Some(&tag) && key_at(&self.bytes, at) == Some(key)).then_some(payload)
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
        let at = *self.ix().paths.get(id as usize)?;
        key_at(&self.bytes, at)
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
        let mut offsets = Vec::with_capacity(records.len());
        for r in &records {
            let details = match r {
                Record::Task(t) => self.details.push(t),
                _ => None,
            };
            offsets.push(self.push(r, details));
        }
        let written = match &mut self.file {
            Some(file) => self
                .details
                .flush_if_full()
                .and_then(|()| file.write_all(&self.bytes[base..])),
            None => Ok(()),
        };
        if let Err(e) = written {
            // Memory holds what the file does: the index is built again when next needed.
            self.bytes.truncate(base);
            self.index = OnceCell::new();
            return Err(e);
        }
        Ok(offsets)
    }

    /// Frames `r` onto the bytes (after the path records its implicit dependencies need) and
    /// indexes it if the index is built; returns where its payload starts.
    fn push(&mut self, r: &Record, details: Option<u64>) -> usize {
        let mut ids = Vec::new();
        if let Record::Task(t) = r
            && !t.implicit.is_empty()
        {
            self.ix();
            let ix = self.index.get_mut().expect("built just now");
            ids.extend(t.implicit.iter().map(|(p, _)| ix.intern(&mut self.bytes, p)));
        }
        let at = frame(&mut self.bytes, |buf| encode(r, details, &ids, buf));
        // An index not built yet will see this record when it is.
        if let Some(ix) = self.index.get_mut() {
            ix.add(&self.bytes, at);
        }
        at
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
        fresh.bytes.reserve(HEADER_LEN + 64 * (files.len() + tasks.len()));
        put_header(&mut fresh.bytes, MAGIC);
        let mut cold = details::fresh();
        for (path, rec) in files {
            fresh.push(&Record::File(path, rec), None);
        }
        for t in tasks {
            let at = details::put(&mut cold, &t);
            fresh.push(&Record::Task(t), Some(at));
        }
        let hot = std::mem::take(&mut fresh.bytes);
        for (path, bytes) in [(self.details.path(), &cold), (&self.path, &hot)] {
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
        self.load(hot);
        if let Some(ix) = self.index.get_mut() {
            ix.records = ix.files.len() + ix.tasks.len() + ix.path_ids.len();
        }
        if writable {
            self.open_for_append()?;
        }
        Ok(())
    }

    /// Opens the store and its details log for appending records.
    fn open_for_append(&mut self) -> io::Result<()> {
        self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
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
mod tests {
    use super::*;
    use crate::filestate::Stat;

    pub(super) fn task(key: &str, sig: u8) -> TaskRecord {
        TaskRecord {
            key: key.into(),
            group: "default".into(),
            signature: [sig; 32],
            duration_ms: 12,
            update_outputs: false,
            outputs: vec![(key.into(), [3; 32])],
            implicit: vec![("a.h".into(), [4; 32])],
            inputs: vec![("a.c".into(), [5; 32])],
            commands: vec!["cc -c a.c".into()],
            env: vec![("CC".into(), "cc".into())],
        }
    }

    pub(super) fn file(n: i64) -> Recorded {
        Recorded {
            stat: Stat {
                size: 1,
                mtime: n,
                ctime: -n,
                ino: 9,
            },
            hash: [7; 32],
            recorded_at: n + 1,
        }
    }

    pub(super) fn owned(s: &Store, key: &str) -> Option<TaskRecord> {
        s.task(key).map(|v| s.owned(&v))
    }

    /// A store in a new directory, open for writing, with a record of each of these tasks (one
    /// append each); and the store's path.
    pub(super) fn store_with(keys: &[&str]) -> (tempfile::TempDir, PathBuf, Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut s, _) = Store::open(&path, true).unwrap();
        for key in keys {
            s.append(vec![Record::Task(task(key, 1))]).unwrap();
        }
        (dir, path, s)
    }

    #[test]
    fn round_trips_and_last_record_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut s, w) = Store::open(&path, true).unwrap();
        assert!(w.is_empty());
        s.append(vec![
            Record::File("a.c".into(), file(5)),
            Record::Task(task("build/a.o", 1)),
        ])
        .unwrap();
        assert_eq!(owned(&s, "build/a.o"), Some(task("build/a.o", 1)));
        s.append(vec![
            Record::Task(task("build/a.o", 2)),
            Record::Task(task("build/b.o", 1)),
            Record::Forget("build/b.o".into()),
        ])
        .unwrap();
        drop(s);
        let (s, w) = Store::open(&path, false).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.file("a.c"), Some(file(5)));
        assert_eq!(owned(&s, "build/a.o"), Some(task("build/a.o", 2)));
        assert!(s.task("build/b.o").is_none());
        assert_eq!(s.tasks().count(), 1);
    }

    #[test]
    fn a_path_is_written_once_and_named_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut s, _) = Store::open(&path, true).unwrap();
        let header = "include/a_header_many_compiles_include.h";
        let with = |key: &str, headers: &[&str]| TaskRecord {
            implicit: headers.iter().map(|h| (h.to_string(), [4; 32])).collect(),
            ..task(key, 1)
        };
        s.append(vec![Record::Task(with("t0", &[header, "b.h"]))])
            .unwrap();
        for i in 1..50 {
            s.append(vec![Record::Task(with(&format!("t{i}"), &[header]))])
                .unwrap();
        }
        drop(s);
        let bytes = fs::read(&path).unwrap();
        let mentions = bytes.windows(header.len()).filter(|w| *w == header.as_bytes());
        assert_eq!(mentions.count(), 1);
        let (mut s, _) = Store::open(&path, true).unwrap();
        assert_eq!(owned(&s, "t0").unwrap(), with("t0", &[header, "b.h"]));
        assert_eq!(owned(&s, "t7").unwrap(), with("t7", &[header]));
        // Appended after reopening, and kept by a rewrite, under new ids.
        s.append(vec![Record::Task(with("t7", &["c.h", header]))])
            .unwrap();
        s.forget_tasks().unwrap();
        s.append(vec![Record::Task(with("t8", &["c.h"]))]).unwrap();
        drop(s);
        let (s, _) = Store::open(&path, false).unwrap();
        assert_eq!(owned(&s, "t8").unwrap(), with("t8", &["c.h"]));
        assert_eq!(s.tasks().count(), 1);
    }

    #[test]
    fn a_task_whose_path_record_is_lost_has_no_implicit_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut s, _) = Store::open(&path, true).unwrap();
        s.append(vec![Record::Task(task("t", 1))]).unwrap();
        drop(s);
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.windows(3).position(|w| w == b"a.h").unwrap();
        bytes[at] = b'b';
        let (s, warning) = Store::from_bytes(&path, bytes);
        assert!(warning.is_some());
        let v = s.task("t").expect("the task record is intact");
        assert_eq!(v.implicit_count(), 1);
        assert!(s.implicit_paths(&v).is_none());
    }

    #[test]
    fn other_versions_and_garbage_start_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&99u32.to_le_bytes());
        fs::write(&path, &bytes).unwrap();
        let (s, w) = Store::open(&path, true).unwrap();
        assert_eq!(s.tasks().count(), 0);
        assert!(w[0].contains("version 99"), "{w:?}");
        fs::write(&path, b"garbage").unwrap();
        let (_, w) = Store::open(&path, false).unwrap();
        assert!(w[0].contains("unreadable"), "{w:?}");
    }

    #[test]
    fn compacts_when_dead_records_dominate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut s, _) = Store::open(&path, true).unwrap();
        for round in 0..5u8 {
            s.append(
                (0..400)
                    .map(|i| Record::Task(task(&format!("t{i}"), round)))
                    .collect(),
            )
            .unwrap();
        }
        drop(s);
        let before = fs::metadata(&path).unwrap().len();
        let (s, _) = Store::open(&path, true).unwrap();
        let after = fs::metadata(&path).unwrap().len();
        assert!(after * 4 < before, "{before} -> {after}");
        assert_eq!(owned(&s, "t1").unwrap(), task("t1", 4));
    }
}
