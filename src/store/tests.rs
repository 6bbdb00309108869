//! The store's own tests: records round trip, damage, compaction, path ids.

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
    let mentions = |file: &str| {
        let bytes = fs::read(dir.path().join(file)).unwrap();
        bytes
            .windows(header.len())
            .filter(|w| *w == header.as_bytes())
            .count()
    };
    assert_eq!((mentions("store"), mentions("paths")), (0, 1));
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
    let paths = dir.path().join("paths");
    let mut bytes = fs::read(&paths).unwrap();
    let at = bytes.windows(3).position(|w| w == b"a.h").unwrap();
    bytes[at] = b'b';
    fs::write(&paths, bytes).unwrap();
    let (s, warnings) = Store::open(&path, false).unwrap();
    assert!(warnings[0].contains("dependency paths"), "{warnings:?}");
    let v = s.task("t").expect("the task record is intact");
    assert_eq!(v.implicit_count(), 1);
    assert!(s.implicit_paths(&v).is_none());
    drop(s);
    // Repaired when opened for writing: the task keeps its record without the lost path, so its
    // signature no longer matches and it runs again.
    let (s, warnings) = Store::open(&path, true).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(owned(&s, "t").unwrap().implicit.is_empty());
    drop(s);
    let (_, warnings) = Store::open(&path, true).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
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
