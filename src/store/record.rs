//! The store's records and their encoding: [`Record`] (one change a build appends),
//! [`TaskRecord`] (a task's record, owned), [`TaskView`] (one read in place, decoding nothing it is
//! not asked for) and [`Details`] (what is kept apart in the details log).
//!
//! A `store` payload starts with a tag (1 a file's recorded hash, 2 a task's record, 3 forget a
//! task) and the key it is about. A task names its implicit dependencies by path id, as ninja's
//! deps log does: the path log (`paths.rs`) holds each path once, in a record tagged 4 (the path,
//! then its id). The hashes the run saw of them are details. A task
//! record ends with where its details start in the details log, plus one (0: none); a details
//! payload starts with its task's key, so a record never shows another task's details. Strings
//! are a varint length and UTF-8 bytes; integers LEB128 varints (zigzag for signed); hashes 32
//! bytes.

use crate::codec::{
    Reader, put_hashed, put_i64, put_pairs, put_stat, put_str, put_strings, put_u64,
};
use crate::filestate::{Hash, Recorded};

pub(super) const TAG_FILE: u8 = 1;
pub(super) const TAG_TASK: u8 = 2;
pub(super) const TAG_FORGET: u8 = 3;
pub(super) const TAG_PATH: u8 = 4;

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
    /// Implicit dependencies from the depfile, with their hashes (details: the store keeps the
    /// paths, by id, and the signature that covers the hashes).
    pub implicit: Vec<(String, Hash)>,
    /// Details, kept apart: the inputs and manual dependencies with the hashes the run saw.
    pub inputs: Vec<(String, Hash)>,
    /// Details: the command chain as run.
    pub commands: Vec<String>,
    /// Details: the env values the signature covered.
    pub env: Vec<(String, String)>,
}

impl TaskRecord {
    /// The record `v` reads in place, owned, with its implicit dependencies' paths (as the store
    /// names their ids) and its details. Hashes the details do not have are all zeros.
    pub(super) fn from_view(v: &TaskView, implicit: Vec<&str>, details: Details) -> TaskRecord {
        let hashes = details.implicit.iter().copied().chain(std::iter::repeat([0; 32]));
        TaskRecord {
            key: v.key.to_string(),
            group: v.group.to_string(),
            signature: v.signature,
            duration_ms: v.duration_ms,
            update_outputs: v.update_outputs,
            outputs: v.outputs().map(|(p, h)| (p.to_string(), h)).collect(),
            implicit: implicit.iter().map(|p| p.to_string()).zip(hashes).collect(),
            inputs: details.inputs,
            commands: details.commands,
            env: details.env,
        }
    }
}

/// One change to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    File(String, Recorded),
    Task(TaskRecord),
    Forget(String),
}

/// A path record: the path, and the id task records name it by.
pub(super) fn encode_path(path: &str, id: u32, buf: &mut Vec<u8>) {
    buf.push(TAG_PATH);
    put_str(buf, path);
    put_u64(buf, u64::from(id));
}

/// The id of a path record's payload.
pub(super) fn path_id(payload: &[u8]) -> Option<u32> {
    if payload.first() != Some(&TAG_PATH) {
        return None;
    }
    let mut r = Reader::new(payload.get(1..)?);
    r.str_ref()?;
    r.u32()
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
    /// Path ids, as varints.
    implicit: (usize, &'a [u8]),
    /// Where its details start in the details log.
    pub(super) details: Option<u64>,
}

impl<'a> TaskView<'a> {
    pub fn outputs(&self) -> PathHashes<'a> {
        PathHashes {
            left: self.outputs.0,
            reader: Reader::new(self.outputs.1),
        }
    }

    /// The ids of the paths of its implicit dependencies ([`crate::store::Store::path`]).
    pub fn implicit_ids(&self) -> impl Iterator<Item = u32> + 'a {
        let mut reader = Reader::new(self.implicit.1);
        (0..self.implicit.0).map_while(move |_| reader.u32())
    }

    pub fn implicit_count(&self) -> usize {
        self.implicit.0
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
    /// The hashes of the implicit dependencies, in the record's order.
    pub implicit: Vec<Hash>,
}

/// The key of the record whose payload starts at `at` (file path or task key).
pub(super) fn key_at(bytes: &[u8], at: usize) -> Option<&str> {
    let mut r = Reader::new(bytes.get(at + 1..)?);
    r.str_ref()
}

/// A file record's content.
pub(super) fn file_record(payload: &[u8]) -> Option<Recorded> {
    let mut r = Reader::new(payload.get(1..)?);
    r.str_ref()?;
    let stat = r.stat()?;
    Some(Recorded {
        stat,
        hash: r.hash()?,
        recorded_at: r.i64()?,
    })
}

/// Encodes `record`; a task's implicit dependencies as `ids`, the ids of their paths.
pub(super) fn encode(record: &Record, details: Option<u64>, ids: &[u32], buf: &mut Vec<u8>) {
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
            put_u64(buf, ids.len() as u64);
            for &id in ids {
                put_u64(buf, u64::from(id));
            }
            put_u64(buf, details.map_or(0, |d| d + 1));
        }
        Record::Forget(key) => {
            buf.push(TAG_FORGET);
            put_str(buf, key);
        }
    }
}

pub(super) fn encode_details(t: &TaskRecord, buf: &mut Vec<u8>) {
    put_str(buf, &t.key);
    put_strings(buf, &t.commands);
    put_pairs(buf, &t.env);
    put_hashed(buf, &t.inputs);
    put_u64(buf, t.implicit.len() as u64);
    for (_, h) in &t.implicit {
        buf.extend_from_slice(h);
    }
}

pub(super) fn decode_details(payload: &[u8], key: &str) -> Option<Details> {
    let mut r = Reader::new(payload);
    if r.str_ref()? != key {
        return None;
    }
    let commands = r.strings()?;
    let env = r.pairs()?;
    let inputs = r.hashed()?;
    let implicit = (0..r.read_len()?)
        .map(|_| r.hash())
        .collect::<Option<Vec<Hash>>>()?;
    r.at_end().then_some(Details {
        commands,
        env,
        inputs,
        implicit,
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

/// Reads a count and that many varints, returning the bytes they span.
fn skip_ids<'a>(r: &mut Reader<'a>) -> Option<(usize, &'a [u8])> {
    let n = r.read_len()?;
    let start = r.rest();
    for _ in 0..n {
        r.u32()?;
    }
    let used = start.len() - r.rest().len();
    Some((n, &start[..used]))
}

/// A task record read in place from its payload.
pub(super) fn task_view(payload: &[u8]) -> Option<TaskView<'_>> {
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
    let implicit = skip_ids(&mut r)?;
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
pub(super) fn indexable(payload: &[u8]) -> bool {
    matches!(payload.first(), Some(&(TAG_FILE | TAG_TASK | TAG_FORGET)))
        && Reader::new(&payload[1..]).str_ref().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::log::frame;

    #[test]
    fn a_task_record_reads_back_in_place() {
        let t = TaskRecord {
            key: "out/a.o".into(),
            group: "default".into(),
            signature: [1; 32],
            duration_ms: 300,
            update_outputs: true,
            outputs: vec![("out/a.o".into(), [2; 32]), ("out/a.d".into(), [3; 32])],
            implicit: vec![("a.h".into(), [4; 32])],
            ..TaskRecord::default()
        };
        let mut buf = Vec::new();
        let at = frame(&mut buf, |b| encode(&Record::Task(t.clone()), Some(7), &[3], b));
        assert_eq!(key_at(&buf, at), Some("out/a.o"));
        assert!(indexable(&buf[at..]));
        let v = task_view(&buf[at..]).unwrap();
        assert_eq!((v.details, v.output_count()), (Some(7), 2));
        assert_eq!(v.implicit_ids().collect::<Vec<_>>(), [3]);
        let details = Details {
            implicit: vec![[4; 32]],
            ..Details::default()
        };
        assert_eq!(TaskRecord::from_view(&v, vec!["a.h"], details), t);
        assert!(task_view(&buf[at..buf.len() - 1]).is_none(), "cut short");
    }

    #[test]
    fn details_name_their_task() {
        let t = TaskRecord {
            key: "x".into(),
            commands: vec!["cc -c x.c".into()],
            env: vec![("CC".into(), "cc".into())],
            inputs: vec![("x.c".into(), [5; 32])],
            implicit: vec![("x.h".into(), [6; 32])],
            ..TaskRecord::default()
        };
        let mut buf = Vec::new();
        encode_details(&t, &mut buf);
        let d = decode_details(&buf, "x").unwrap();
        assert_eq!((d.commands, d.env, d.inputs), (t.commands, t.env, t.inputs));
        assert_eq!(d.implicit, [[6; 32]]);
        assert!(decode_details(&buf, "y").is_none());
    }
}
