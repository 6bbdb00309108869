//! The framing both of the store's logs share: a header (eight bytes of magic and a little-endian
//! u32 version), then records `[0xA5][u32 payload length][u32 crc32 of payload][payload]`. This
//! module writes records, reads them in place or from a file with their checksum checked, and scans
//! a whole log for its intact records, resynchronising after damage. What a payload holds is
//! [`super::record`]'s business.

use std::fs::File;
use std::os::unix::fs::FileExt;

pub(super) const MAGIC: &[u8; 8] = b"KILNSTOR";
pub(super) const DETAILS_MAGIC: &[u8; 8] = b"KILNDETL";
pub(super) const PATHS_MAGIC: &[u8; 8] = b"KILNPATH";
/// The store format version; a store of another version is discarded.
pub const VERSION: u32 = 3;
const MARK: u8 = 0xA5;
pub(super) const HEADER_LEN: usize = 12;
pub(super) const RECORD_HEAD: usize = 9;
/// No record is larger than this; a larger length is damage.
const MAX_RECORD: usize = 256 << 20;

/// Appends the header of a log that starts with `magic`.
pub(super) fn put_header(buf: &mut Vec<u8>, magic: &[u8; 8]) {
    buf.extend_from_slice(magic);
    buf.extend_from_slice(&VERSION.to_le_bytes());
}

/// The version in the header of `bytes` (a whole log), if they start with `magic`.
pub(super) fn version(bytes: &[u8], magic: &[u8; 8]) -> Option<u32> {
    if bytes.len() < HEADER_LEN || &bytes[..8] != magic {
        return None;
    }
    Some(u32::from_le_bytes(
        bytes[8..12].try_into().expect("4 bytes"),
    ))
}

/// Whether `f` starts with `magic`.
pub(super) fn has_magic(f: &File, magic: &[u8; 8]) -> bool {
    let mut head = [0u8; 8];
    f.read_exact_at(&mut head, 0).is_ok() && &head == magic
}

/// Appends a framed record, its payload written by `body`; returns where in `buf` the payload
/// starts.
pub(super) fn frame(buf: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[MARK, 0, 0, 0, 0, 0, 0, 0, 0]);
    body(buf);
    let payload = &buf[start + RECORD_HEAD..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    buf[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
    buf[start + 5..start + 9].copy_from_slice(&crc.to_le_bytes());
    start + RECORD_HEAD
}

/// The payload length a record head at `pos` claims, if it is a head whose payload fits.
fn framed_len(bytes: &[u8], pos: usize) -> Option<usize> {
    let head = bytes.get(pos..pos + RECORD_HEAD)?;
    let len = u32::from_le_bytes(head[1..5].try_into().ok()?) as usize;
    (head[0] == MARK && len != 0 && len <= MAX_RECORD && pos + RECORD_HEAD + len <= bytes.len())
        .then_some(len)
}

/// The payload of an intact record at `pos` and where the next record starts.
pub(super) fn record_at(bytes: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let len = framed_len(bytes, pos)?;
    let crc = u32::from_le_bytes(bytes[pos + 5..pos + 9].try_into().ok()?);
    let payload = &bytes[pos + RECORD_HEAD..pos + RECORD_HEAD + len];
    (crc32fast::hash(payload) == crc).then_some((payload, pos + RECORD_HEAD + len))
}

/// The payload that starts at `at`, as long as its frame header says (its checksum already
/// checked).
pub(super) fn payload(bytes: &[u8], at: usize) -> &[u8] {
    let len = bytes
        .get(at - RECORD_HEAD + 1..at - RECORD_HEAD + 5)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| u32::from_le_bytes(b) as usize);
    bytes.get(at..at + len).unwrap_or_default()
}

/// The payload of the intact record at `offset` in `file`, read from disk.
pub(super) fn read_record(file: &File, offset: u64) -> Option<Vec<u8>> {
    let mut head = [0u8; RECORD_HEAD];
    file.read_exact_at(&mut head, offset).ok()?;
    let len = u32::from_le_bytes(head[1..5].try_into().ok()?) as usize;
    if head[0] != MARK || len > MAX_RECORD {
        return None;
    }
    let mut payload = vec![0u8; len];
    file.read_exact_at(&mut payload, offset + RECORD_HEAD as u64)
        .ok()?;
    (crc32fast::hash(&payload) == u32::from_le_bytes(head[5..9].try_into().ok()?))
        .then_some(payload)
}

/// The payload offsets of the intact records in `bytes` (a whole log) whose payload `wanted`
/// accepts, and the first position where damage was found. After damage, reading resumes where
/// such a record starts.
pub(super) fn scan(bytes: &[u8], wanted: impl Fn(&[u8]) -> bool) -> (Vec<usize>, Option<usize>) {
    let mut pos = HEADER_LEN;
    let mut damaged_at = None;
    let mut offsets = Vec::new();
    let mut budget = bytes.len().saturating_mul(4).saturating_add(1 << 20);
    while pos < bytes.len() {
        match record_at(bytes, pos) {
            Some((payload, next)) if wanted(payload) => {
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
                    record_at(bytes, p).is_some_and(|(pl, _)| wanted(pl))
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

#[cfg(test)]
mod tests {
    //! Recovery, through the store that loads a log: what survives a torn tail, a flipped bit or
    //! garbage.

    use super::*;
    use crate::store::record::{TAG_TASK, key_at};
    use crate::store::tests::{file, owned, store_with, task};
    use crate::store::{Record, Store};
    use std::fs;
    use std::path::Path;

    const FIVE: [&str; 5] = ["t0", "t1", "t2", "t3", "t4"];

    #[test]
    fn a_torn_tail_keeps_every_whole_record() {
        let (_dir, path, s) = store_with(&FIVE);
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
        let (_dir, path, s) = store_with(&FIVE);
        drop(s);
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let (s, w) = Store::open(&path, false).unwrap();
        assert_eq!(s.tasks().count(), 4);
        assert!(w[0].contains("damaged"), "{w:?}");
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
        let paths = fs::read(dir.path().join("paths")).unwrap();
        for cut in 0..=bytes.len() {
            fs::write(&path, &bytes[..cut]).unwrap();
            fs::write(dir.path().join("details"), &details).unwrap();
            fs::write(dir.path().join("paths"), &paths).unwrap();
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
}
