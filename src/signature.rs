//! Task signatures. A task's signature is blake3 over, in order: its expanded command chain, the
//! env names and values it uses (those its commands and depfile name, and its rule's `vars`), then
//! every input and manual dependency (path and content hash), then every implicit dependency its
//! depfile reported last time (path and content hash; a missing file hashes to zeros). Paths are
//! kiln paths, relative to the project root, so two checkouts of one project agree on signatures.
//! The first part depends on the task alone and is computed once ([`command_part`]).

use crate::filestate::Hash;
use crate::task::Task;

/// The signature recorded for a task whose last run failed: it never matches, so the task runs
/// again, and `--explain` can say why.
pub const FAILED: Hash = [0xff; 32];

fn put(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The hash of what a task runs: its commands and the env values it uses.
pub fn command_part(task: &Task) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"kiln command v1");
    h.update(&(task.commands.len() as u64).to_le_bytes());
    for c in &task.commands {
        put(&mut h, c.as_bytes());
    }
    h.update(&(task.env.len() as u64).to_le_bytes());
    for (k, v) in task.env.iter() {
        put(&mut h, k.as_bytes());
        put(&mut h, v.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// The signature from the command part and the files read: `reads` are inputs and manual
/// dependencies, `implicit` the depfile's dependencies.
pub fn signature<'a>(
    command: &Hash,
    reads: impl Iterator<Item = (&'a str, Hash)>,
    implicit: impl Iterator<Item = (&'a str, Hash)>,
) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"kiln signature v1");
    h.update(command);
    for list in [
        &mut reads.into_iter() as &mut dyn Iterator<Item = (&str, Hash)>,
        &mut implicit.into_iter(),
    ] {
        for (path, hash) in list {
            put(&mut h, path.as_bytes());
            h.update(&hash);
        }
        // No path is u64::MAX bytes long: this ends the list unambiguously.
        h.update(&u64::MAX.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(reads: &[(&'static str, u8)], implicit: &[(&'static str, u8)]) -> Hash {
        signature(
            &[1; 32],
            reads.iter().map(|&(p, b)| (p, [b; 32])),
            implicit.iter().map(|&(p, b)| (p, [b; 32])),
        )
    }

    #[test]
    fn every_part_counts() {
        let base = sig(&[("a.c", 1)], &[("a.h", 2)]);
        assert_eq!(base, sig(&[("a.c", 1)], &[("a.h", 2)]));
        assert_ne!(base, sig(&[("a.c", 9)], &[("a.h", 2)]));
        assert_ne!(base, sig(&[("b.c", 1)], &[("a.h", 2)]));
        assert_ne!(base, sig(&[("a.c", 1)], &[("a.h", 0)]));
        assert_ne!(base, sig(&[("a.c", 1), ("a.h", 2)], &[]));
    }
}
