//! The snapshot, `<out>/.kiln/snapshot`: how the last build ended, for the graph it built (named
//! by the graph cache's id). For every file, its stat when its hash was taken; for every task,
//! whether it was up to date and the implicit dependencies its record names; and the store's
//! stat at that moment.
//!
//! The snapshot lets a build decide without reading the store: if the store is exactly as the
//! snapshot saw it, a task that was up to date then and none of whose files (inputs, manual and
//! implicit dependencies, outputs) has a different stat, trusted under the racy-timestamp rule,
//! is up to date now, since unchanged stats stand for unchanged contents and so for an unchanged
//! signature. When every task was up to date and no file has changed, nothing needs even the
//! graph's tasks: a null build reads the paths and this file, and stats. The store remains the
//! record; the snapshot only shortens the way to it.
//!
//! It also says where in the store each task's and each file's latest record starts, so that a
//! build that finds the store as the snapshot saw it reads those records in place instead of
//! indexing the whole store.
//!
//! Format: `KILNSNAP`, u32 format version, the graph's 16-byte id, the store's stat, a byte that
//! is 1 when every task was up to date and every file known, the file count as a u64 and one
//! fixed-size mark per file (so that marks are read in place), the task count as a u64, one byte
//! per task (up to date or not), the offset plus one of each task's record and then of each
//! file's record as little-endian u64s (0: none), the implicit dependencies (per task a count and
//! file ids, varints), and a crc32 of everything before it.

use crate::graph_cache::GraphId;
use crate::codec::{CheckedFile, Reader, checked_body, put_opt_stat, put_u32s};
use crate::filestate::{self, Stat};
use crate::ids::FileId;
use std::io;
use std::path::Path;

const MAGIC: &[u8; 8] = b"KILNSNAP";
const FORMAT: u32 = 1;
/// Tag, size, mtime, ctime, inode, recorded_at.
const MARK_LEN: usize = 41;

/// What the snapshot knew about a file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FileMark {
    Unknown,
    Missing,
    /// Present with this stat, its hash taken at `recorded_at`.
    Present {
        stat: Stat,
        recorded_at: i64,
    },
}

impl FileMark {
    /// Whether a file whose stat is now `now` is as the snapshot knew it.
    pub fn unchanged(&self, now: Option<&Stat>) -> bool {
        match (self, now) {
            (FileMark::Missing, None) => true,
            (FileMark::Present { stat, recorded_at }, Some(now)) => {
                filestate::unchanged_since(stat, now, *recorded_at)
            }
            _ => false,
        }
    }

    fn put(&self, buf: &mut Vec<u8>) {
        let (tag, stat, at) = match *self {
            FileMark::Unknown => (0u8, Stat::default(), 0),
            FileMark::Missing => (1, Stat::default(), 0),
            FileMark::Present { stat, recorded_at } => (2, stat, recorded_at),
        };
        buf.push(tag);
        buf.extend_from_slice(&stat.size.to_le_bytes());
        buf.extend_from_slice(&stat.mtime.to_le_bytes());
        buf.extend_from_slice(&stat.ctime.to_le_bytes());
        buf.extend_from_slice(&stat.ino.to_le_bytes());
        buf.extend_from_slice(&at.to_le_bytes());
    }

    fn read(b: &[u8]) -> FileMark {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[1 + 8 * i..9 + 8 * i]);
            w
        };
        match b[0] {
            1 => FileMark::Missing,
            2 => FileMark::Present {
                stat: Stat {
                    size: u64::from_le_bytes(word(0)),
                    mtime: i64::from_le_bytes(word(1)),
                    ctime: i64::from_le_bytes(word(2)),
                    ino: u64::from_le_bytes(word(3)),
                },
                recorded_at: i64::from_le_bytes(word(4)),
            },
            _ => FileMark::Unknown,
        }
    }
}

/// The store file's identity and size: unchanged means nothing was appended or rewritten.
pub fn store_mark(store: &Path) -> Option<Stat> {
    filestate::stat(store)
}

/// How the last build ended.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The graph it describes.
    pub graph: GraphId,
    /// The store as it was when the snapshot was taken.
    pub store: Option<Stat>,
    /// Every task was up to date and every file's state known.
    pub all_clean: bool,
    /// By task id: up to date when the build ended.
    pub clean: Vec<bool>,
    /// The file as read; the parts below are ranges of it (not copies).
    bytes: Vec<u8>,
    marks: std::ops::Range<usize>,
    /// Record offsets plus one, tasks then files.
    records: std::ops::Range<usize>,
    implicit: std::ops::Range<usize>,
    tasks: usize,
}

/// Where each task's and each file's record starts in the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordOffsets {
    pub tasks: Vec<Option<usize>>,
    pub files: Vec<Option<usize>>,
}

impl Snapshot {
    /// The number of files it has a mark for.
    pub fn file_count(&self) -> usize {
        self.marks.len() / MARK_LEN
    }

    /// What it knew about file `i`.
    pub fn mark(&self, i: usize) -> FileMark {
        let at = self.marks.start + i * MARK_LEN;
        FileMark::read(&self.bytes[at..at + MARK_LEN])
    }

    /// Where each task's and file's record starts in the store the snapshot saw.
    pub fn records(&self) -> RecordOffsets {
        let read = |b: &[u8]| {
            let v = u64::from_le_bytes(b.try_into().expect("8 bytes"));
            v.checked_sub(1).and_then(|v| usize::try_from(v).ok())
        };
        let (tasks, files) = self.bytes[self.records.clone()].split_at(self.tasks * 8);
        RecordOffsets {
            tasks: tasks.chunks_exact(8).map(read).collect(),
            files: files.chunks_exact(8).map(read).collect(),
        }
    }

    /// By task id: the implicit dependencies the task's record named.
    pub fn implicit(&self) -> Option<Vec<Vec<FileId>>> {
        let mut all = Vec::with_capacity(self.tasks);
        self.each_implicit(|_, ids| all.push(ids.to_vec()))?;
        Some(all)
    }

    /// Calls `each` with every task's id and implicit dependencies, in order, without holding
    /// them all; `None` (after some calls, maybe) if the list is damaged.
    pub fn each_implicit(&self, mut each: impl FnMut(usize, &[FileId])) -> Option<()> {
        let files = self.file_count();
        let mut r = Reader::new(&self.bytes[self.implicit.clone()]);
        let mut ids = Vec::new();
        for t in 0..self.tasks {
            ids.clear();
            r.u32s_below(files, |f| ids.push(FileId(f)))?;
            each(t, &ids);
        }
        r.at_end().then_some(())
    }

    /// Reads the snapshot at `path` if it describes graph `graph` with `files` files; `None` if
    /// there is none, or it is damaged or of another graph.
    pub fn load(path: &Path, graph: &GraphId, files: usize) -> Option<Snapshot> {
        let bytes = std::fs::read(path).ok()?;
        let body = checked_body(&bytes)?;
        let mut r = Reader::new(body);
        if r.take(8)? != MAGIC || r.take(4)? != FORMAT.to_le_bytes() || r.take(16)? != graph {
            return None;
        }
        let store = r.opt_stat()?;
        let all_clean = r.bool()?;
        let n = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
        if n != files as u64 {
            return None;
        }
        let at = |r: &Reader| body.len() - r.rest().len();
        let marks_at = at(&r);
        r.take(files.checked_mul(MARK_LEN)?)?;
        let marks = marks_at..at(&r);
        let tasks = usize::try_from(u64::from_le_bytes(r.take(8)?.try_into().ok()?)).ok()?;
        let clean = r
            .take(tasks)?
            .iter()
            .map(|&b| match b {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            })
            .collect::<Option<Vec<bool>>>()?;
        let records_at = at(&r);
        r.take(tasks.checked_add(files)?.checked_mul(8)?)?;
        let records = records_at..at(&r);
        let implicit = at(&r)..body.len();
        let body_len = body.len();
        let mut bytes = bytes;
        bytes.truncate(body_len);
        Some(Snapshot {
            graph: *graph,
            store,
            all_clean,
            clean,
            bytes,
            marks,
            records,
            implicit,
            tasks,
        })
    }

    /// Writes a snapshot of graph `graph` (a temporary file renamed into place).
    pub fn save(
        path: &Path,
        graph: &GraphId,
        store: Option<Stat>,
        marks: &[FileMark],
        clean: &[bool],
        records: &RecordOffsets,
        implicit: &[Vec<FileId>],
    ) -> io::Result<()> {
        // Written as it is encoded, a chunk at a time: never a copy of it all in memory.
        const CHUNK: usize = 1 << 16;
        let mut file = CheckedFile::create(path)?;
        let mut buf = Vec::with_capacity(CHUNK + 1024);
        let mut drain = |buf: &mut Vec<u8>| {
            if buf.len() >= CHUNK {
                file.drain(buf)
            } else {
                Ok(())
            }
        };
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&FORMAT.to_le_bytes());
        buf.extend_from_slice(graph);
        put_opt_stat(&mut buf, &store);
        let all_clean = clean.iter().all(|&c| c) && !marks.contains(&FileMark::Unknown);
        buf.push(u8::from(all_clean));
        buf.extend_from_slice(&(marks.len() as u64).to_le_bytes());
        for m in marks {
            m.put(&mut buf);
            drain(&mut buf)?;
        }
        buf.extend_from_slice(&(clean.len() as u64).to_le_bytes());
        for chunk in clean.chunks(CHUNK) {
            buf.extend(chunk.iter().map(|&c| u8::from(c)));
            drain(&mut buf)?;
        }
        debug_assert!(records.tasks.len() == clean.len() && records.files.len() == marks.len());
        for r in records.tasks.iter().chain(&records.files) {
            let v = r.map_or(0, |at| at as u64 + 1);
            buf.extend_from_slice(&v.to_le_bytes());
            drain(&mut buf)?;
        }
        for ids in implicit {
            put_u32s(&mut buf, ids.iter().map(|f| f.0));
            drain(&mut buf)?;
        }
        file.drain(&mut buf)?;
        file.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(n: u64) -> Stat {
        Stat {
            size: n,
            mtime: 10 * n as i64,
            ctime: 11 * n as i64,
            ino: 7 + n,
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_written_and_only_for_its_graph() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot");
        let marks = vec![
            FileMark::Missing,
            FileMark::Present {
                stat: stat(3),
                recorded_at: 99,
            },
            FileMark::Present {
                stat: stat(4),
                recorded_at: -5,
            },
        ];
        let implicit = vec![vec![FileId(2), FileId(0)], vec![]];
        let records = RecordOffsets {
            tasks: vec![Some(12), None],
            files: vec![None, Some(0), Some(1 << 40)],
        };
        Snapshot::save(
            &path,
            &[1; 16],
            Some(stat(9)),
            &marks,
            &[true, false],
            &records,
            &implicit,
        )
        .unwrap();

        let s = Snapshot::load(&path, &[1; 16], 3).unwrap();
        assert_eq!(s.store, Some(stat(9)));
        assert!(!s.all_clean);
        assert_eq!(s.clean, vec![true, false]);
        assert_eq!((0..3).map(|i| s.mark(i)).collect::<Vec<_>>(), marks);
        assert_eq!(s.implicit().unwrap(), implicit);
        assert_eq!(s.records(), records);
        // Another graph, another file count: not this snapshot's.
        assert!(Snapshot::load(&path, &[2; 16], 3).is_none());
        assert!(Snapshot::load(&path, &[1; 16], 4).is_none());
        // Damage anywhere is seen.
        let bytes = std::fs::read(&path).unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            std::fs::write(&path, &b).unwrap();
            assert!(Snapshot::load(&path, &[1; 16], 3).is_none(), "flip at {i}");
        }
    }

    #[test]
    fn all_clean_needs_every_task_clean_and_every_file_known() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot");
        let known = [FileMark::Missing];
        let records = RecordOffsets {
            tasks: vec![None],
            files: vec![None],
        };
        let save = |marks: &[FileMark], clean: bool| {
            Snapshot::save(&path, &[0; 16], None, marks, &[clean], &records, &[vec![]]).unwrap();
            Snapshot::load(&path, &[0; 16], 1).unwrap().all_clean
        };
        assert!(save(&known, true));
        assert!(!save(&[FileMark::Unknown], true));
        assert!(!save(&known, false));
    }
}
