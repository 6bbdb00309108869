//! What the graph cache says of the last graph whatever has changed since (its id, its paths
//! and its tasks' digests), for carrying the last build's snapshot across a build-file edit.

use super::{DIGESTS, GraphId, path_at, read_head};
use crate::codec::checked_body;
use crate::graph::Graph;
use crate::ids::{FileId, TaskId};
use std::io::Read;
use std::path::Path;

/// What the cache says of the last graph, whatever has changed since: its id, its paths and
/// its tasks' digests.
pub struct Previous {
    pub id: GraphId,
    blob: String,
    ends: Vec<u32>,
    digests: Vec<u8>,
}

impl Previous {
    pub fn file_count(&self) -> usize {
        self.ends.len()
    }

    pub fn path(&self, i: usize) -> &str {
        path_at(&self.blob, &self.ends, i)
    }

    pub fn task_count(&self) -> usize {
        self.digests.len() / DIGESTS
    }

    /// Task `i`'s key digest and definition digest.
    pub fn digests(&self, i: usize) -> (&[u8], &[u8]) {
        self.digests[i * DIGESTS..(i + 1) * DIGESTS].split_at(DIGESTS / 2)
    }
}

/// Reads the last graph's head and task digests, without its body; `None` if there is none or it
/// is damaged.
pub fn previous(path: &Path) -> Option<Previous> {
    use std::io::{Seek, SeekFrom};
    let (mut file, head) = read_head(path)?;
    file.seek(SeekFrom::Start(head.body_at + head.body_len as u64))
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let digests = checked_body(&bytes)?;
    if digests.len() % DIGESTS != 0 {
        return None;
    }
    Some(Previous {
        id: head.id,
        digests: digests.to_vec(),
        blob: head.blob,
        ends: head.ends,
    })
}

/// Per task, [`DIGESTS`] bytes: the first half of blake3 of its key, and of its definition:
/// everything a decision reads from the graph (the command part of its signature, the paths it
/// reads, its outputs and depfile, whether it always runs). A task whose definition digest is
/// the same in two graphs is decided the same way on the same files.
/// Taken on every core: a graph's commands are most of its size.
pub fn task_digests(graph: &Graph) -> Vec<u8> {
    let tasks = graph.tasks().len();
    let mut out = vec![0u8; tasks * DIGESTS];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = tasks.div_ceil(threads).max(1024);
    std::thread::scope(|scope| {
        for (i, chunk) in out.chunks_mut(per * DIGESTS).enumerate() {
            scope.spawn(move || {
                for (j, d) in chunk.chunks_exact_mut(DIGESTS).enumerate() {
                    let t = TaskId((i * per + j) as u32);
                    d[..DIGESTS / 2].copy_from_slice(&key_digest(graph.key(t)));
                    d[DIGESTS / 2..].copy_from_slice(&definition_digest(graph, t));
                }
            });
        }
    });
    out
}

/// The first half of blake3 of a task key.
pub fn key_digest(key: &str) -> [u8; 16] {
    half(blake3::hash(key.as_bytes()))
}

pub(super) fn definition_digest(graph: &Graph, t: TaskId) -> [u8; 16] {
    let task = graph.task(t);
    let mut h = blake3::Hasher::new();
    h.update(b"kiln definition v1");
    h.update(&crate::signature::command_part(task));
    h.update(&[u8::from(task.always)]);
    let lists: [&mut dyn Iterator<Item = FileId>; 3] = [
        &mut task.reads(),
        &mut task.outputs.iter().copied(),
        &mut task.depfile.into_iter(),
    ];
    for list in lists {
        for f in list {
            let p = graph.path(f);
            h.update(&(p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
        }
        h.update(&u64::MAX.to_le_bytes());
    }
    half(h.finalize())
}

fn half(h: blake3::Hash) -> [u8; 16] {
    let mut d = [0u8; 16];
    d.copy_from_slice(&h.as_bytes()[..16]);
    d
}
