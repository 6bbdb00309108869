//! The ids kiln names things by, and the hasher of maps keyed by them. Files and tasks are `u32`
//! newtypes into the graph's dense tables; generators, groups and rules are indices into the
//! project's lists. Maps keyed by paths or by their hashes use [`Fast`], a cheap hasher whose
//! collisions are resolved by comparing the stored key.

use std::hash::{BuildHasherDefault, Hasher};

/// Index of a rule in [`crate::project::Project::rules`].
pub type RuleId = usize;
/// Index of a group in [`crate::project::Project::groups`].
pub type GroupId = usize;
/// Index of a generator in [`crate::project::Project::gens`].
pub type GenId = usize;

/// A file known to the build, an index into the graph's file table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A task, an index into the graph's task list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u32);

impl FileId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl TaskId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A fast hash of keys; collisions are resolved by comparing the stored key.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // Every bit of the result depends on every bit of the state (hash maps index by the low
        // bits, which the multiplications alone leave depending on the low bytes only).
        mix(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Hash maps keyed by strings or their hashes, with [`KeyHasher`].
pub type Fast = BuildHasherDefault<KeyHasher>;

/// A 64-bit hash of a key, well mixed.
pub fn key_hash(key: &str) -> u64 {
    let mut h = KeyHasher(key.len() as u64);
    h.write(key.as_bytes());
    h.finish()
}

fn mix(x: u64) -> u64 {
    (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (x >> 32)
}
