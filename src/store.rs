//! The on-disk store under `<out>/.kiln/store`: a versioned, append-only binary log of file hashes
//! and task records. Each record is written whole with one `write` as soon as a task finishes, so a
//! crash loses at most the tasks that were running.
//!
//! Format: the header `KILNSTOR` and a little-endian u32 version, then records, each
//! `[0xA5][u32 payload length][u32 crc32 of payload][payload]`. The payload starts with a tag:
//! 1 a file's recorded hash, 2 a task's record, 3 forget a task. Strings are a varint length and
//! UTF-8 bytes; integers are LEB128 varints (signed ones zigzag-encoded); hashes are 32 bytes.
//! The last record for a key wins.
//!
//! Loading never fails: a record whose checksum does not match is skipped and reading resumes at
//! the next position where an intact record starts (a torn tail simply ends the log); a bad header
//! or another version discards the store with a warning. Damage, or dead records outnumbering
//! live ones two to one, makes the store rewrite itself: a new file, fsync, rename.

use crate::filestate::{Hash, Recorded, Stat};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"KILNSTOR";
/// The store format version; a store of another version is discarded.
pub const VERSION: u32 = 1;
const MARK: u8 = 0xA5;
const HEADER_LEN: usize = 12;
const RECORD_HEAD: usize = 9;
/// No record is larger than this; a larger length is damage.
const MAX_RECORD: usize = 256 << 20;

const TAG_FILE: u8 = 1;
const TAG_TASK: u8 = 2;
const TAG_FORGET: u8 = 3;

/// What kiln recorded about a task the last time it succeeded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskRecord {
    pub key: String,
    /// The group the task belonged to.
    pub group: String,
    /// The signature; all zeros never matches (the task must run again).
    pub signature: Hash,
    pub duration_ms: u64,
    pub update_outputs: bool,
    /// Outputs and their hashes after the run.
    pub outputs: Vec<(String, Hash)>,
    /// Implicit dependencies from the depfile, with their hashes.
    pub implicit: Vec<(String, Hash)>,
    /// The inputs and manual dependencies, with the hashes the run saw.
    pub inputs: Vec<(String, Hash)>,
    /// The command chain as run.
    pub commands: Vec<String>,
    /// The env values the signature covered.
    pub env: Vec<(String, String)>,
}

/// One change to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    File(String, Recorded),
    Task(TaskRecord),
    Forget(String),
}

/// The store: what it holds, and an append handle when it may be written.
pub struct Store {
    path: PathBuf,
    file: Option<File>,
    pub files: HashMap<String, Recorded>,
    pub tasks: HashMap<String, TaskRecord>,
    records: usize,
}

impl Store {
    /// An empty store that writes nothing (a dry run with no state yet).
    pub fn empty(path: &Path) -> Store {
        Store {
            path: path.to_path_buf(),
            file: None,
            files: HashMap::new(),
            tasks: HashMap::new(),
            records: 0,
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
                let loaded = store.load(&bytes);
                if let Some(w) = loaded {
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
            let live = store.files.len() + store.tasks.len();
            if rewrite || (store.records > 1000 && store.records > 3 * live) {
                store.rewrite()?;
            }
            store.file = Some(OpenOptions::new().append(true).open(path)?);
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
                let removed = match fs::symlink_metadata(path) {
                    Ok(m) if m.is_dir() => fs::remove_dir_all(path),
                    Ok(_) => fs::remove_file(path),
                    Err(e) => Err(e),
                };
                match removed.and_then(|_| Store::open(path, true)) {
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

    /// Reads `bytes` into the maps; returns a warning if anything was damaged.
    fn load(&mut self, bytes: &[u8]) -> Option<String> {
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Some("kiln's state is unreadable (not a kiln store); starting afresh".into());
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Some(format!(
                "kiln's state has format version {version}, this kiln reads version {VERSION}; starting afresh"
            ));
        }
        let mut pos = HEADER_LEN;
        let mut damaged_at = None;
        let mut skipped = 0usize;
        while pos < bytes.len() {
            match record_at(bytes, pos) {
                Some((payload, next)) => match decode(payload) {
                    Some(record) => {
                        self.apply(record);
                        pos = next;
                    }
                    None => {
                        damaged_at.get_or_insert(pos);
                        skipped += 1;
                        pos = next;
                    }
                },
                None => {
                    damaged_at.get_or_insert(pos);
                    skipped += 1;
                    match (pos + 1..bytes.len())
                        .find(|&p| record_at(bytes, p).is_some_and(|(pl, _)| decode(pl).is_some()))
                    {
                        Some(p) => pos = p,
                        None => break,
                    }
                }
            }
        }
        damaged_at.map(|at| {
            format!(
                "kiln's state was damaged at byte {at} ({} bytes in all); kept {} intact records, the rest will be rebuilt",
                bytes.len(),
                self.records
            )
        })
        .filter(|_| skipped > 0)
    }

    fn apply(&mut self, record: Record) {
        self.records += 1;
        match record {
            Record::File(path, rec) => {
                self.files.insert(path, rec);
            }
            Record::Task(t) => {
                self.tasks.insert(t.key.clone(), t);
            }
            Record::Forget(key) => {
                self.tasks.remove(&key);
            }
        }
    }

    /// Appends records with one write, and applies them to the maps.
    pub fn append(&mut self, records: Vec<Record>) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some(file) = &mut self.file {
            let mut buf = Vec::new();
            for r in &records {
                frame(r, &mut buf);
            }
            file.write_all(&buf)?;
        }
        for r in records {
            self.apply(r);
        }
        Ok(())
    }

    /// Rewrites the store with only its live records: a new file, fsync, rename, fsync the directory.
    pub fn rewrite(&mut self) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut buf = Vec::with_capacity(HEADER_LEN + 64 * (self.files.len() + self.tasks.len()));
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        let mut files: Vec<_> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.cmp(b.0));
        for (path, rec) in files {
            frame(&Record::File(path.clone(), *rec), &mut buf);
        }
        let mut tasks: Vec<_> = self.tasks.values().collect();
        tasks.sort_by(|a, b| a.key.cmp(&b.key));
        for t in tasks {
            frame(&Record::Task(t.clone()), &mut buf);
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.records = self.files.len() + self.tasks.len();
        if self.file.is_some() {
            self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        }
        Ok(())
    }

    /// Drops every task record (after `clean`), keeping file hashes.
    pub fn forget_tasks(&mut self) -> io::Result<()> {
        self.tasks.clear();
        self.rewrite()
    }
}

/// The payload of an intact record at `pos` and where the next record starts.
fn record_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let head = bytes.get(pos..pos + RECORD_HEAD)?;
    if head[0] != MARK {
        return None;
    }
    let len = u32::from_le_bytes(head[1..5].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[5..9].try_into().ok()?);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(pos + RECORD_HEAD..pos + RECORD_HEAD + len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, pos + RECORD_HEAD + len))
}

/// Appends a framed record to `buf`.
fn frame(record: &Record, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[MARK, 0, 0, 0, 0, 0, 0, 0, 0]);
    encode(record, buf);
    let payload = &buf[start + RECORD_HEAD..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    buf[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
    buf[start + 5..start + 9].copy_from_slice(&crc.to_le_bytes());
}

fn put_u64(buf: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

fn put_i64(buf: &mut Vec<u8>, v: i64) {
    put_u64(buf, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_u64(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

fn put_hashed(buf: &mut Vec<u8>, items: &[(String, Hash)]) {
    put_u64(buf, items.len() as u64);
    for (s, h) in items {
        put_str(buf, s);
        buf.extend_from_slice(h);
    }
}

fn put_strings(buf: &mut Vec<u8>, items: &[String]) {
    put_u64(buf, items.len() as u64);
    for s in items {
        put_str(buf, s);
    }
}

fn encode(record: &Record, buf: &mut Vec<u8>) {
    match record {
        Record::File(path, r) => {
            buf.push(TAG_FILE);
            put_str(buf, path);
            put_u64(buf, r.stat.size);
            put_i64(buf, r.stat.mtime);
            put_i64(buf, r.stat.ctime);
            put_u64(buf, r.stat.ino);
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
            put_hashed(buf, &t.inputs);
            put_strings(buf, &t.commands);
            put_u64(buf, t.env.len() as u64);
            for (k, v) in &t.env {
                put_str(buf, k);
                put_str(buf, v);
            }
        }
        Record::Forget(key) => {
            buf.push(TAG_FORGET);
            put_str(buf, key);
        }
    }
}

/// A cursor over a payload; every read checks bounds.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn u64(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn i64(&mut self) -> Option<i64> {
        let v = self.u64()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn len(&mut self) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n <= self.bytes.len() - self.pos).then_some(n)
    }

    fn str(&mut self) -> Option<String> {
        let n = self.len()?;
        let s = std::str::from_utf8(self.bytes.get(self.pos..self.pos + n)?).ok()?;
        self.pos += n;
        Some(s.to_string())
    }

    fn hash(&mut self) -> Option<Hash> {
        let h: Hash = self.bytes.get(self.pos..self.pos + 32)?.try_into().ok()?;
        self.pos += 32;
        Some(h)
    }

    fn hashed(&mut self) -> Option<Vec<(String, Hash)>> {
        let n = self.len()?;
        (0..n).map(|_| Some((self.str()?, self.hash()?))).collect()
    }

    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.len()?;
        (0..n).map(|_| self.str()).collect()
    }
}

/// Decodes a payload; `None` if it is not a whole, well-formed record.
fn decode(payload: &[u8]) -> Option<Record> {
    let mut r = Reader {
        bytes: payload,
        pos: 0,
    };
    let record = match r.u8()? {
        TAG_FILE => {
            let path = r.str()?;
            let stat = Stat {
                size: r.u64()?,
                mtime: r.i64()?,
                ctime: r.i64()?,
                ino: r.u64()?,
            };
            let hash = r.hash()?;
            let recorded_at = r.i64()?;
            Record::File(
                path,
                Recorded {
                    stat,
                    hash,
                    recorded_at,
                },
            )
        }
        TAG_TASK => {
            let key = r.str()?;
            let group = r.str()?;
            let signature = r.hash()?;
            let duration_ms = r.u64()?;
            let update_outputs = r.u8()? != 0;
            let outputs = r.hashed()?;
            let implicit = r.hashed()?;
            let inputs = r.hashed()?;
            let commands = r.strings()?;
            let n = r.len()?;
            let env = (0..n)
                .map(|_| Some((r.str()?, r.str()?)))
                .collect::<Option<Vec<_>>>()?;
            Record::Task(TaskRecord {
                key,
                group,
                signature,
                duration_ms,
                update_outputs,
                outputs,
                implicit,
                inputs,
                commands,
                env,
            })
        }
        TAG_FORGET => Record::Forget(r.str()?),
        _ => return None,
    };
    (r.pos == payload.len()).then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        s.append(vec![
            Record::Task(task("build/a.o", 2)),
            Record::Task(task("build/b.o", 1)),
            Record::Forget("build/b.o".into()),
        ])
        .unwrap();
        drop(s);
        let (s, w) = Store::open(&path, false).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.files["a.c"], file(5));
        assert_eq!(s.tasks["build/a.o"], task("build/a.o", 2));
        assert!(!s.tasks.contains_key("build/b.o"));
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
        assert_eq!(s.tasks.len(), 4);
        assert_eq!(w.len(), 1, "{w:?}");
        drop(s);
        // Repaired: the next load is clean.
        let (s, w) = Store::open(&path, false).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(s.tasks.len(), 4);
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
        assert_eq!(s.tasks.len(), 4);
        assert!(w[0].contains("damaged"), "{w:?}");
    }

    #[test]
    fn other_versions_and_garbage_start_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&99u32.to_le_bytes());
        fs::write(&path, &bytes).unwrap();
        let (s, w) = Store::open(&path, true).unwrap();
        assert!(s.tasks.is_empty());
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
        assert_eq!(s.tasks["t1"].signature, [4; 32]);
    }
}
