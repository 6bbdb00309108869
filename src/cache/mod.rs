//! Output caches, as waf's `cache_outputs`: a task about to run looks itself up under its
//! [`Key`]; on a hit its outputs are restored, verified, instead of running it; a successful run
//! stores them. An [`Entry`] names the task's outputs by their content ([`Digest`]: SHA-256 and
//! size, as the Remote Execution API names blobs) and the implicit dependencies its run
//! reported, with their content hashes: a lookup hits only while those still hold (ccache's
//! direct mode).
//!
//! A [`Backend`] keeps entries and blobs: the local cache directory (`local.rs`) or a remote
//! speaking the Bazel HTTP cache protocol (`http.rs`). Backends verify every blob they return
//! against its digest; nothing unverified reaches the build directory.

use std::path::Path;

pub mod http;
pub mod key;
pub mod local;
pub mod reapi;

/// A cache key: what the task's signature covers but its implicit dependencies, with paths as
/// the project names them and the build directory and project root left out (see `key.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// 64 lower-case hex digits: the entry's name (the `/ac/` name over HTTP).
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

/// A blob's name: the SHA-256 of its content, and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        use sha2::Digest as _;
        Digest {
            sha256: sha2::Sha256::digest(bytes).into(),
            size: bytes.len() as u64,
        }
    }

    /// Whether `bytes` are what this digest names.
    pub fn verifies(&self, bytes: &[u8]) -> bool {
        bytes.len() as u64 == self.size && Digest::of(bytes).sha256 == self.sha256
    }

    pub fn hex(&self) -> String {
        hex(&self.sha256)
    }
}

/// One output of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Its path as the project names it, the build directory written `${OUT}` (`${OUT}/src/a.o`).
    pub path: String,
    pub digest: Digest,
    pub executable: bool,
}

/// What a cache keeps of one successful run of a task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Every declared output, in the task's order.
    pub outputs: Vec<OutputFile>,
    /// The implicit dependencies the run reported (paths as `OutputFile::path` writes them, or
    /// absolute outside the project) and the blake3 hash of their content then.
    pub implicit: Vec<(String, [u8; 32])>,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched<T> {
    Hit(T),
    /// Not there.
    Miss,
    /// Not usable, and worth a warning: damaged, wrong bytes, a server that failed or timed
    /// out. A miss for the build.
    Trouble(String),
}

/// Where entries and blobs are kept.
pub trait Backend: Send + Sync {
    /// Says where it is, for messages (`/var/cache/kiln`, `http://cache:8080`).
    fn name(&self) -> String;
    /// The entry stored under `key`.
    fn get_entry(&self, key: &Key) -> Fetched<Entry>;
    /// A blob's bytes, verified against `digest` (bytes that do not match are `Trouble`).
    fn get_blob(&self, digest: &Digest) -> Fetched<Vec<u8>>;
    /// Stores `entry` under `key`, after the blobs it names (each read from its file in
    /// `blobs`); an entry is never visible before its blobs.
    fn put(&self, key: &Key, entry: &Entry, blobs: &[(Digest, &Path)]) -> Result<(), String>;
}

/// An output's bytes and whether it is executable, to store in a cache.
pub fn read_output(path: &Path) -> std::io::Result<(Vec<u8>, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = std::fs::read(path)?;
    let executable = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
    Ok((bytes, executable))
}

/// Writes an output restored from a cache (or fetched from a remote engine): a temporary file beside it, then a rename, with the
/// executable bits as stored.
pub fn write_output(path: &std::path::Path, bytes: &[u8], executable: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_file_name(format!(
        ".{}.kiln-restore-{}",
        path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if executable {
            let mode = f.metadata()?.permissions().mode();
            f.set_permissions(std::fs::Permissions::from_mode(mode | ((mode & 0o444) >> 2)))?;
        }
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// 32 bytes from 64 hex digits (either case): a SHA-256 or blake3 hash as `hex` writes it.
pub fn unhex(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_sha256_and_size() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.size, 3);
        assert!(d.verifies(b"abc"));
        assert!(!d.verifies(b"abd") && !d.verifies(b"abcd"));
    }
}
