//! The on-disk store under `<out>/.kiln/`: kiln's memory of file hashes and finished tasks, as
//! two append-only binary logs. `store` holds what every build reads (file hashes; each task's
//! signature, outputs and implicit dependencies); `details` holds what only `--explain` reads (a
//! task's commands, env values and input hashes), referenced by offset. Each finished task's
//! record is appended with one `write` as soon as it finishes, so a crash loses at most the tasks
//! that were running. Details are written in batches (a crash may lose some: explain then says
//! less); each names its task, so a record never shows another task's details.
//!
//! Format of both: the header (`KILNSTOR` or `KILNDETL` and a little-endian u32 version), then
//! records `[0xA5][u32 payload length][u32 crc32 of payload][payload]`. A `store` payload starts
//! with a tag: 1 a file's recorded hash, 2 a task's record, 3 forget a task. Strings are a varint
//! length and UTF-8 bytes; integers LEB128 varints (zigzag for signed); hashes 32 bytes. The last
//! record for a key wins.
//!
//! Loading reads `store` once, checks every record's checksum and indexes records by a 64-bit
//! hash of their key; nothing is decoded until asked for. Loading never fails: a record whose
//! checksum does not match is skipped and reading resumes at the next position where an intact
//! record starts (a torn tail ends the log); a bad header or another version discards the store
//! with a warning. Damage, or dead records outnumbering live ones two to one, makes the store
//! rewrite itself: new files, fsync, rename.

use crate::codec::{
    Reader, put_hashed, put_i64, put_pairs, put_stat, put_str, put_strings, put_u64,
};
use crate::filestate::{Hash, Recorded};
use crate::ids::{Fast, key_hash};
use std::cell::OnceCell;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"KILNSTOR";
const DETAILS_MAGIC: &[u8; 8] = b"KILNDETL";
/// The store format version; a store of another version is discarded.
pub const VERSION: u32 = 2;
const MARK: u8 = 0xA5;
const HEADER_LEN: usize = 12;
const RECORD_HEAD: usize = 9;
/// No record is larger than this; a larger length is damage.
const MAX_RECORD: usize = 256 << 20;

const TAG_FILE: u8 = 1;
const TAG_TASK: u8 = 2;
const TAG_FORGET: u8 = 3;

/// What kiln records about a task that succeeded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskRecord {
    pub key: String,
    /// The group the task belonged to.
    pub group: String,
    /// The signature; all zeros never matches (the task must run again).
    pub signature: Hash,
    pub duration_ms: u64,
    pub update_outputs: bool,
    /// Outputs (and the depfile) and their hashes after the run.
    pub outputs: Vec<(String, Hash)>,
    /// Implicit dependencies from the depfile, with their hashes.
    pub implicit: Vec<(String, Hash)>,
    /// Details, kept apart: the inputs and manual dependencies with the hashes the run saw.
    pub inputs: Vec<(String, Hash)>,
    /// Details: the command chain as run.
    pub commands: Vec<String>,
    /// Details: the env values the signature covered.
    pub env: Vec<(String, String)>,
}

/// One change to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    File(String, Recorded),
    Task(TaskRecord),
    Forget(String),
}

/// A task's record as stored, read in place.
#[derive(Debug, Clone, Copy)]
pub struct TaskView<'a> {
    pub key: &'a str,
    pub group: &'a str,
    pub signature: Hash,
    pub duration_ms: u64,
    pub update_outputs: bool,
    outputs: (usize, &'a [u8]),
    implicit: (usize, &'a [u8]),
    /// Where its details start in the details log.
    details: Option<u64>,
}

impl<'a> TaskView<'a> {
    pub fn outputs(&self) -> PathHashes<'a> {
        PathHashes {
            left: self.outputs.0,
            reader: Reader::new(self.outputs.1),
        }
    }

    pub fn implicit(&self) -> PathHashes<'a> {
        PathHashes {
            left: self.implicit.0,
            reader: Reader::new(self.implicit.1),
        }
    }

    pub fn output_count(&self) -> usize {
        self.outputs.0
    }
}

/// `(path, hash)` pairs read in place.
pub struct PathHashes<'a> {
    left: usize,
    reader: Reader<'a>,
}

impl<'a> Iterator for PathHashes<'a> {
    type Item = (&'a str, Hash);
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some((self.reader.str_ref()?, self.reader.hash()?))
    }
}

/// A task's details: what the last run ran and saw.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Details {
    pub commands: Vec<String>,
    pub env: Vec<(String, String)>,
    pub inputs: Vec<(String, Hash)>,
}

/// Keys to the offset of their latest record's payload, by hash; a key whose hash another key
/// already has goes to `collided`.
#[derive(Default)]
struct Index {
    by_hash: HashMap<u64, usize, Fast>,
    collided: HashMap<Box<str>, usize>,
}

impl Index {
    fn get<'k>(&self, key: &str, key_at: impl Fn(usize) -> Option<&'k str>) -> Option<usize> {
        self.get_hashed(key_hash(key), key, key_at)
    }

    fn get_hashed<'k>(
        &self,
        h: u64,
        key: &str,
        key_at: impl Fn(usize) -> Option<&'k str>,
    ) -> Option<usize> {
        let at = *self.by_hash.get(&h)?;
        if key_at(at) == Some(key) {
            Some(at)
        } else {
            self.collided.get(key).copied()
        }
    }

    fn insert<'k>(&mut self, key: &str, at: usize, key_at: impl Fn(usize) -> Option<&'k str>) {
        self.insert_hashed(key_hash(key), key, at, key_at)
    }

    fn insert_hashed<'k>(
        &mut self,
        h: u64,
        key: &str,
        at: usize,
        key_at: impl Fn(usize) -> Option<&'k str>,
    ) {
        match self.by_hash.get_mut(&h) {
            None => {
                self.by_hash.insert(h, at);
            }
            Some(existing) => {
                if key_at(*existing) == Some(key) {
                    *existing = at;
                } else {
                    self.collided.insert(key.into(), at);
                }
            }
        }
    }

    fn remove<'k>(&mut self, key: &str, key_at: impl Fn(usize) -> Option<&'k str>) {
        let h = key_hash(key);
        if let Some(&at) = self.by_hash.get(&h)
            && key_at(at) == Some(key)
        {
            self.by_hash.remove(&h);
            // A collided key with the same hash takes the place.
            if let Some(other) = self.collided.keys().find(|k| key_hash(k) == h).cloned() {
                let at = self.collided.remove(&other).expect("present");
                self.by_hash.insert(h, at);
            }
        } else {
            self.collided.remove(key);
        }
    }

    fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }

    fn offsets(&self) -> impl Iterator<Item = usize> + '_ {
        self.by_hash.values().chain(self.collided.values()).copied()
    }
}

/// The store: its records in memory, and append handles when it may be written.
pub struct Store {
    path: PathBuf,
    details_path: PathBuf,
    file: Option<File>,
    details: Option<File>,
    /// Bytes of `details` on disk, and the batch not written yet (which follows them).
    details_len: u64,
    pending_details: Vec<u8>,
    /// Every record of `store`, as loaded and appended.
    bytes: Vec<u8>,
    /// Built when loading, or on first use by a store opened without it.
    index: OnceCell<Indexes>,
}

/// Where the latest record of each file and task is.
#[derive(Default)]
struct Indexes {
    files: Index,
    tasks: Index,
    /// Records indexed, live or dead.
    records: usize,
}

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
            _ => {}
        }
    }
}

/// The payload offsets of the intact records in `bytes` (a whole store file), and the first
/// position where damage was found. After damage, reading resumes where an intact record starts.
fn scan(bytes: &[u8]) -> (Vec<usize>, Option<usize>) {
    let mut pos = HEADER_LEN;
    let mut damaged_at = None;
    let mut offsets = Vec::new();
    let mut budget = bytes.len().saturating_mul(4).saturating_add(1 << 20);
    while pos < bytes.len() {
        match record_at(bytes, pos) {
            Some((payload, next)) if indexable(payload) => {
                offsets.push(pos + RECORD_HEAD);
                pos = next;
            }
            _ => {
                damaged_at.get_or_insert(pos);
                // Resynchronising checksums candidate records; bytes made to look like record
                // heads at every offset would make that quadratic, so the checksummed bytes are
                // capped at a few times the file's size, after which the rest is dropped.
                let resync = (pos + 1..bytes.len()).find(|&p| {
                    let Some(len) = framed_len(bytes, p) else {
                        return false;
                    };
                    if len > budget {
                        budget = 0;
                        return true;
                    }
                    budget -= len;
                    record_at(bytes, p).is_some_and(|(pl, _)| indexable(pl))
                });
                match resync {
                    Some(_) if budget == 0 => break,
                    Some(p) => pos = p,
                    None => break,
                }
            }
        }
    }
    (offsets, damaged_at)
}

fn build_index(bytes: &[u8], offsets: &[usize]) -> Indexes {
    let mut ix = Indexes::default();
    for &at in offsets {
        ix.add(bytes, at);
    }
    ix
}

/// Whether `f` starts as a details log does.
fn has_details_magic(f: &File) -> bool {
    let mut magic = [0u8; 8];
    f.read_exact_at(&mut magic, 0).is_ok() && &magic == DETAILS_MAGIC
}

/// The payload that starts at `at`, as long as its frame header says.
fn payload(bytes: &[u8], at: usize) -> &[u8] {
    let len = bytes
        .get(at - RECORD_HEAD + 1..at - RECORD_HEAD + 5)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| u32::from_le_bytes(b) as usize);
    bytes.get(at..at + len).unwrap_or_default()
}

/// The key of the record whose payload starts at `at` (file path or task key).
fn key_at(bytes: &[u8], at: usize) -> Option<&str> {
    let mut r = Reader::new(bytes.get(at + 1..)?);
    r.str_ref()
}

impl Store {
    /// An empty store that writes nothing (a dry run with no state yet).
    pub fn empty(path: &Path) -> Store {
        Store {
            path: path.to_path_buf(),
            details_path: path.with_file_name("details"),
            file: None,
            details: None,
            details_len: 0,
            pending_details: Vec::new(),
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
        match fs::read(path) {
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
            let (live, records) = (ix.files.len() + ix.tasks.len(), ix.records);
            let details_ok = File::open(&store.details_path).is_ok_and(|f| has_details_magic(&f));
            if rewrite || !details_ok || (records > 1000 && records > 3 * live) {
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
                for p in [path.to_path_buf(), path.with_file_name("details")] {
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
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> (Store, Option<String>) {
        let mut store = Store::empty(path);
        let warning = store.load(bytes);
        (store, warning)
    }

    /// Indexes `bytes` (the whole store file); returns a warning if anything was damaged.
    fn load(&mut self, bytes: Vec<u8>) -> Option<String> {
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Some("kiln's state is unreadable (not a kiln store); starting afresh".into());
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Some(format!(
                "kiln's state has format version {version}, this kiln reads version {VERSION}; starting afresh"
            ));
        }
        let (offsets, damaged_at) = scan(&bytes);
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
            let (offsets, _) = scan(&self.bytes);
            build_index(&self.bytes, &offsets)
        })
    }

    /// Opens the store for appending without checking or indexing its records: for a build that
    /// knows from its snapshot where the records it needs are ([`Store::task_at`],
    /// [`Store::file_at`]). Lookups by key index the store when first made. `None` if the store
    /// cannot be opened so; [`Store::open`] then says why.
    pub fn open_unindexed(path: &Path) -> Option<Store> {
        let bytes = fs::read(path).ok()?;
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC || bytes[8..12] != VERSION.to_le_bytes()
        {
            return None;
        }
        let mut store = Store::empty(path);
        store.bytes = bytes;
        store.index = OnceCell::new();
        store.open_for_append().ok()?;
        store
            .details
            .as_ref()
            .is_some_and(has_details_magic)
            .then_some(store)
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
            .offsets()
            .filter_map(|at| task_view(payload(&self.bytes, at)))
    }

    /// The details of a task's record, if they can be read.
    pub fn details(&self, task: &TaskView) -> Option<Details> {
        let offset = task.details?;
        if let Some(at) = offset
            .checked_sub(self.details_len)
            .filter(|_| self.details.is_some())
        {
            // Still in the batch not written yet.
            let (payload, _) = record_at(&self.pending_details, usize::try_from(at).ok()?)?;
            return decode_details(payload, task.key);
        }
        let file = match &self.details {
            Some(f) => f.try_clone().ok()?,
            None => File::open(&self.details_path).ok()?,
        };
        let mut head = [0u8; RECORD_HEAD];
        file.read_exact_at(&mut head, offset).ok()?;
        let len = u32::from_le_bytes(head[1..5].try_into().ok()?) as usize;
        if head[0] != MARK || len > MAX_RECORD {
            return None;
        }
        let mut payload = vec![0u8; len];
        file.read_exact_at(&mut payload, offset + RECORD_HEAD as u64)
            .ok()?;
        if crc32fast::hash(&payload) != u32::from_le_bytes(head[5..9].try_into().ok()?) {
            return None;
        }
        decode_details(&payload, task.key)
    }

    /// Writes the batch of details not written yet.
    pub fn flush_details(&mut self) -> io::Result<()> {
        if let Some(f) = &mut self.details
            && !self.pending_details.is_empty()
        {
            f.write_all(&self.pending_details)?;
            self.details_len += self.pending_details.len() as u64;
            self.pending_details.clear();
        }
        Ok(())
    }

    /// Appends records (task details first, to their own log), and indexes them. Returns where
    /// each record starts, in order, for [`Store::task_at`] and [`Store::file_at`].
    pub fn append(&mut self, records: Vec<Record>) -> io::Result<Vec<usize>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut hot = Vec::new();
        for r in &records {
            let details = match r {
                Record::Task(t) if self.details.is_some() => {
                    let at = self.details_len + self.pending_details.len() as u64;
                    frame(&mut self.pending_details, |buf| encode_details(t, buf));
                    Some(at)
                }
                _ => None,
            };
            frame(&mut hot, |buf| encode(r, details, buf));
        }
        if self.pending_details.len() >= 64 * 1024 {
            self.flush_details()?;
        }
        if let Some(file) = &mut self.file {
            file.write_all(&hot)?;
        }
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&hot);
        let mut offsets = Vec::with_capacity(records.len());
        let mut pos = base;
        while pos < self.bytes.len() {
            let len = u32::from_le_bytes(self.bytes[pos + 1..pos + 5].try_into().expect("4 bytes"))
                as usize;
            offsets.push(pos + RECORD_HEAD);
            pos += RECORD_HEAD + len;
        }
        // An index not built yet will see these records when it is.
        if let Some(ix) = self.index.get_mut() {
            for &at in &offsets {
                ix.add(&self.bytes, at);
            }
        }
        Ok(offsets)
    }

    /// Rewrites the store and its details with only live records: new files, fsync, rename,
    /// fsync the directory.
    pub fn rewrite(&mut self) -> io::Result<()> {
        self.flush_details()?;
        let mut files: Vec<(String, Recorded)> = self
            .ix()
            .files
            .offsets()
            .filter_map(|at| {
                let path = key_at(&self.bytes, at)?.to_string();
                Some((path.clone(), self.file(&path)?))
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tasks: Vec<TaskRecord> = self.tasks().map(|v| self.owned(&v)).collect();
        tasks.sort_by(|a, b| a.key.cmp(&b.key));

        let mut hot = Vec::with_capacity(HEADER_LEN + 64 * (files.len() + tasks.len()));
        hot.extend_from_slice(MAGIC);
        hot.extend_from_slice(&VERSION.to_le_bytes());
        let mut cold = Vec::new();
        cold.extend_from_slice(DETAILS_MAGIC);
        cold.extend_from_slice(&VERSION.to_le_bytes());
        for (path, rec) in files {
            frame(&mut hot, |buf| encode(&Record::File(path, rec), None, buf));
        }
        for t in tasks {
            let at = cold.len() as u64;
            frame(&mut cold, |buf| encode_details(&t, buf));
            frame(&mut hot, |buf| encode(&Record::Task(t), Some(at), buf));
        }
        for (path, bytes) in [(&self.details_path, &cold), (&self.path, &hot)] {
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
        let (path, details_path) = (self.path.clone(), self.details_path.clone());
        *self = Store::empty(&path);
        self.details_path = details_path;
        self.load(hot);
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
        let details = OpenOptions::new()
            .append(true)
            .read(true)
            .open(&self.details_path)?;
        self.details_len = details.metadata()?.len();
        self.details = Some(details);
        Ok(())
    }

    /// A task's record with its details, owned.
    pub fn owned(&self, v: &TaskView) -> TaskRecord {
        let details = self.details(v).unwrap_or_default();
        TaskRecord {
            key: v.key.to_string(),
            group: v.group.to_string(),
            signature: v.signature,
            duration_ms: v.duration_ms,
            update_outputs: v.update_outputs,
            outputs: v.outputs().map(|(p, h)| (p.to_string(), h)).collect(),
            implicit: v.implicit().map(|(p, h)| (p.to_string(), h)).collect(),
            inputs: details.inputs,
            commands: details.commands,
            env: details.env,
        }
    }

    /// Drops every task record (after `clean`), keeping file hashes.
    pub fn forget_tasks(&mut self) -> io::Result<()> {
        self.ix();
        if let Some(ix) = self.index.get_mut() {
            ix.tasks = Index::default();
        }
        self.rewrite()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.flush_details();
    }
}

/// A file record's content.
fn file_record(payload: &[u8]) -> Option<Recorded> {
    let mut r = Reader::new(payload.get(1..)?);
    r.str_ref()?;
    let stat = r.stat()?;
    Some(Recorded {
        stat,
        hash: r.hash()?,
        recorded_at: r.i64()?,
    })
}

/// The payload length a record head at `pos` claims, if it is a head whose payload fits.
fn framed_len(bytes: &[u8], pos: usize) -> Option<usize> {
    let head = bytes.get(pos..pos + RECORD_HEAD)?;
    let len = u32::from_le_bytes(head[1..5].try_into().ok()?) as usize;
    (head[0] == MARK && len != 0 && len <= MAX_RECORD && pos + RECORD_HEAD + len <= bytes.len())
        .then_some(len)
}

/// The payload of an intact record at `pos` and where the next record starts.
fn record_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let len = framed_len(bytes, pos)?;
    let crc = u32::from_le_bytes(bytes[pos + 5..pos + 9].try_into().ok()?);
    let payload = &bytes[pos + RECORD_HEAD..pos + RECORD_HEAD + len];
    (crc32fast::hash(payload) == crc).then_some((payload, pos + RECORD_HEAD + len))
}

/// Appends a framed record, its payload written by `body`.
fn frame(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[MARK, 0, 0, 0, 0, 0, 0, 0, 0]);
    body(buf);
    let payload = &buf[start + RECORD_HEAD..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    buf[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
    buf[start + 5..start + 9].copy_from_slice(&crc.to_le_bytes());
}

fn encode(record: &Record, details: Option<u64>, buf: &mut Vec<u8>) {
    match record {
        Record::File(path, r) => {
            buf.push(TAG_FILE);
            put_str(buf, path);
            put_stat(buf, &r.stat);
            buf.extend_from_slice(&r.hash);
            put_i64(buf, r.recorded_at);
        }
        Record::Task(t) => {
            buf.push(TAG_TASK);
            put_str(buf, &t.key);
            put_str(buf, &t.group);
            buf.extend_from_slice(&t.signature);
            put_u64(buf, t.duration_ms);
            buf.push(u8::from(t.update_outputs));
            put_hashed(buf, &t.outputs);
            put_hashed(buf, &t.implicit);
            put_u64(buf, details.map_or(0, |d| d + 1));
        }
        Record::Forget(key) => {
            buf.push(TAG_FORGET);
            put_str(buf, key);
        }
    }
}

fn encode_details(t: &TaskRecord, buf: &mut Vec<u8>) {
    put_str(buf, &t.key);
    put_strings(buf, &t.commands);
    put_pairs(buf, &t.env);
    put_hashed(buf, &t.inputs);
}

fn decode_details(payload: &[u8], key: &str) -> Option<Details> {
    let mut r = Reader::new(payload);
    if r.str_ref()? != key {
        return None;
    }
    let commands = r.strings()?;
    let env = r.pairs()?;
    let inputs = r.hashed()?;
    r.at_end().then_some(Details {
        commands,
        env,
        inputs,
    })
}

/// Reads `n` `(path, hash)` pairs, returning the bytes they span.
fn skip_pairs<'a>(r: &mut Reader<'a>) -> Option<(usize, &'a [u8])> {
    let n = r.read_len()?;
    let start = r.rest();
    for _ in 0..n {
        r.str_ref()?;
        r.hash()?;
    }
    let used = start.len() - r.rest().len();
    Some((n, &start[..used]))
}

/// A task record read in place from its payload.
fn task_view(payload: &[u8]) -> Option<TaskView<'_>> {
    let mut r = Reader::new(payload);
    if r.u8()? != TAG_TASK {
        return None;
    }
    let key = r.str_ref()?;
    let group = r.str_ref()?;
    let signature = r.hash()?;
    let duration_ms = r.u64()?;
    let update_outputs = r.u8()? != 0;
    let outputs = skip_pairs(&mut r)?;
    let implicit = skip_pairs(&mut r)?;
    let details = r.u64()?.checked_sub(1);
    r.at_end().then_some(TaskView {
        key,
        group,
        signature,
        duration_ms,
        update_outputs,
        outputs,
        implicit,
        details,
    })
}

/// Whether a payload (already proved intact by its checksum) has a known tag and a key. The rest
/// is decoded, with every bound checked, only when a build asks for the record.
fn indexable(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(&(TAG_FILE | TAG_TASK | TAG_FORGET)))
        && Reader::new(&payload[1..]).str_ref().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filestate::Stat;

    fn task(key: &str, sig: u8) -> TaskRecord {
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

    fn file(n: i64) -> Recorded {
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

    fn owned(s: &Store, key: &str) -> Option<TaskRecord> {
        s.task(key).map(|v| s.owned(&v))
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
    fn a_torn_tail_keeps_every_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut s, _) = Store::open(&path, true).unwrap();
        for i in 0..5 {
            s.append(vec![Record::Task(task(&format!("t{i}"), 1))])
                .unwrap();
        }
        drop(s);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let (s, w) = Store::open(&path, true).unwrap();
        assert_eq!(s.tasks().count(), 4);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            owned(&s, "t3"),
            Some(task("t3", 1)),
            "details survive the repair"
        );
        drop(s);
        // Repaired: the next load is clean.
        let (s, w) = Store::open(&path, false).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.tasks().count(), 4);
    }

    #[test]
    fn damage_in_the_middle_skips_only_the_damaged_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut s, _) = Store::open(&path, true).unwrap();
        for i in 0..5 {
            s.append(vec![Record::Task(task(&format!("t{i}"), 1))])
                .unwrap();
        }
        drop(s);
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let (s, w) = Store::open(&path, false).unwrap();
        assert_eq!(s.tasks().count(), 4);
        assert!(w[0].contains("damaged"), "{w:?}");
    }

    #[test]
    fn damaged_details_lose_only_the_details() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut s, _) = Store::open(&path, true).unwrap();
        s.append(vec![Record::Task(task("t", 1))]).unwrap();
        drop(s);
        fs::write(dir.path().join("details"), b"KILNDETL\x02\0\0\0garbage").unwrap();
        let (s, _) = Store::open(&path, false).unwrap();
        let v = s.task("t").unwrap();
        assert_eq!(v.signature, [1; 32]);
        assert!(s.details(&v).is_none());
    }

    #[test]
    fn details_are_written_in_batches_and_never_shown_for_another_task() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut s, _) = Store::open(&path, true).unwrap();
        s.append(vec![Record::Task(task("x", 1))]).unwrap();
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

    /// A store of files and tasks with unique keys, and where each record ends.
    fn sample_store(path: &Path) -> (Vec<u8>, Vec<(usize, Option<String>)>) {
        let (mut s, _) = Store::open(path, true).unwrap();
        for i in 0..6 {
            s.append(vec![Record::File(format!("src/f{i}.c"), file(i))])
                .unwrap();
            s.append(vec![Record::Task(task(&format!("out/t{i}.o"), i as u8))])
                .unwrap();
        }
        drop(s);
        let bytes = fs::read(path).unwrap();
        // (end of record, the task it records)
        let mut ends = Vec::new();
        let mut pos = HEADER_LEN;
        while pos < bytes.len() {
            let (payload, next) = record_at(&bytes, pos).expect("intact");
            let key = (payload[0] == TAG_TASK)
                .then(|| key_at(&bytes, pos + RECORD_HEAD).unwrap().to_string());
            ends.push((next, key));
            pos = next;
        }
        (bytes, ends)
    }

    fn task_keys(s: &Store) -> Vec<String> {
        let mut keys: Vec<String> = s.tasks().map(|v| v.key.to_string()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn a_store_cut_at_any_byte_keeps_exactly_the_whole_records_before_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (bytes, ends) = sample_store(&path);
        let details = fs::read(dir.path().join("details")).unwrap();
        for cut in 0..=bytes.len() {
            fs::write(&path, &bytes[..cut]).unwrap();
            fs::write(dir.path().join("details"), &details).unwrap();
            let (s, w) = Store::open(&path, false).unwrap();
            let mut expected: Vec<String> = ends
                .iter()
                .filter(|(end, _)| *end <= cut)
                .filter_map(|(_, k)| k.clone())
                .collect();
            expected.sort();
            assert_eq!(task_keys(&s), expected, "cut at {cut}");
            let whole = cut == HEADER_LEN || ends.iter().any(|(end, _)| *end == cut);
            // One warning at most, and none for a log that ends between records.
            assert_eq!(
                w.len(),
                usize::from(!whole || cut < HEADER_LEN),
                "cut at {cut}: {w:?}"
            );
            for k in &expected {
                let v = s.task(k).unwrap();
                assert_eq!(
                    s.owned(&v),
                    task(k, k[5..6].parse().unwrap()),
                    "cut at {cut}"
                );
            }
            // Opened for writing, the store repairs itself: the next load is clean and keeps
            // the same records.
            drop(s);
            let (s, _) = Store::open(&path, true).unwrap();
            drop(s);
            let (s, w) = Store::open(&path, false).unwrap();
            assert!(w.is_empty(), "cut at {cut}, after repair: {w:?}");
            assert_eq!(task_keys(&s), expected, "cut at {cut}, after repair");
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_loses_at_most_the_record_it_hits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (bytes, ends) = sample_store(&path);
        let all: Vec<String> = {
            let mut v: Vec<String> = ends.iter().filter_map(|(_, k)| k.clone()).collect();
            v.sort();
            v
        };
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1 << (at % 8);
            fs::write(&path, &damaged).unwrap();
            let (s, w) = Store::open(&path, false).unwrap();
            assert_eq!(w.len(), 1, "flip at {at}: {w:?}");
            if at < HEADER_LEN {
                // Not a store of this version: nothing is trusted.
                assert!(task_keys(&s).is_empty(), "flip at {at}");
                continue;
            }
            // The record holding the flipped byte is lost, every other one is kept.
            let hit = ends.iter().find(|(end, _)| at < *end).unwrap();
            let expected: Vec<String> = all
                .iter()
                .filter(|k| Some(*k) != hit.1.as_ref())
                .cloned()
                .collect();
            assert_eq!(task_keys(&s), expected, "flip at {at}");
        }
    }

    #[test]
    fn garbage_after_the_records_is_dropped_with_one_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut bytes, ends) = sample_store(&path);
        let mut x = 0x9e37_79b9u32;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            bytes.push(x as u8);
        }
        fs::write(&path, &bytes).unwrap();
        let (s, w) = Store::open(&path, false).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            s.tasks().count(),
            ends.iter().filter(|(_, k)| k.is_some()).count()
        );
    }

    #[test]
    fn record_heads_planted_at_every_offset_do_not_stall_the_load() {
        // Every fifth byte a record head whose payload fits in the file: checksumming each
        // candidate whole would take hundreds of gigabytes; the resync budget stops it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let (mut bytes, ends) = sample_store(&path);
        let len = (512u32 << 10).to_le_bytes();
        while bytes.len() < 4 << 20 {
            bytes.push(MARK);
            bytes.extend_from_slice(&len);
        }
        let (s, w) = Store::from_bytes(&path, bytes);
        assert!(w.is_some());
        assert_eq!(
            s.tasks().count(),
            ends.iter().filter(|(_, k)| k.is_some()).count()
        );
    }

    #[test]
    fn colliding_keys_stay_apart() {
        let keys = ["a", "b", "c"];
        let key_at = |o: usize| keys.get(o).copied();
        let mut index = Index::default();
        // Three keys under one hash.
        for (at, key) in keys.iter().enumerate() {
            index.insert_hashed(42, key, at, key_at);
        }
        for (at, key) in keys.iter().enumerate() {
            assert_eq!(index.get_hashed(42, key, key_at), Some(at));
        }
        assert_eq!(index.len(), 3);
        assert_eq!(index.get_hashed(42, "d", key_at), None);
    }
}
