//! The local cache: a directory (`--cache DIR`, `KILN_CACHE`) that several kilns, on one machine
//! or sharing a file system, use at once.
//!
//! ```text
//! DIR/CACHEDIR.TAG
//! DIR/entries/ab/<key hex>      one entry per key (text, ending in its own checksum)
//! DIR/blobs/ab/<sha256 hex>     content-addressed blobs
//! DIR/tmp/                      files being written: then renamed into place
//! DIR/log                       one line per build: hits, misses, stores (appended)
//! DIR/size                      the size as last measured, plus what builds stored since
//! ```
//!
//! An entry or a blob appears whole or not at all: written under a unique temporary name, then
//! renamed. Blobs are stored before the entry that names them. Every blob read is checked
//! against its digest; an entry is checked against its checksum. A lookup's mtime touch keeps
//! the least recently used order that `gc` evicts by.
//!
//! Entry format: `kiln-cache-entry 1`, then `output SHA256 SIZE x|- PATH` and `implicit BLAKE3
//! PATH` lines, then `end BLAKE3` of all the bytes before that line.

use super::{Backend, Digest, Entry, Fetched, Key, OutputFile, hex, unhex};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

const HEADER: &str = "kiln-cache-entry 1\n";

/// A cache directory.
pub struct LocalCache {
    dir: PathBuf,
}

/// What a cache holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub stores: u64,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

impl LocalCache {
    /// The cache in `dir`, made if missing.
    pub fn open(dir: &Path) -> Result<LocalCache, String> {
        for sub in ["entries", "blobs", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("cannot make the cache {}: {e}", dir.display()))?;
        }
        let tag = dir.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = std::fs::write(
                &tag,
                "Signature: 8a477f597d28d172789f06886806bc55\n# kiln's output cache\n",
            );
        }
        Ok(LocalCache {
            dir: dir.to_path_buf(),
        })
    }

    fn entry_path(&self, key: &Key) -> PathBuf {
        let h = key.hex();
        self.dir.join("entries").join(&h[..2]).join(h)
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        let h = digest.hex();
        self.dir.join("blobs").join(&h[..2]).join(h)
    }

    /// Writes `bytes` (or the file `from`) to `to` through a unique temporary file and a rename.
    fn place(&self, to: &Path, bytes: Option<&[u8]>, from: Option<&Path>) -> std::io::Result<()> {
        let tmp = self.dir.join("tmp").join(format!(
            "{}-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed),
            to.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ));
        let result = (|| {
            match (bytes, from) {
                (Some(b), _) => {
                    let mut f = std::fs::File::create(&tmp)?;
                    f.write_all(b)?;
                }
                (None, Some(from)) => {
                    std::fs::copy(from, &tmp)?;
                }
                (None, None) => return Ok(()),
            }
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&tmp, to)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Drops a damaged entry or blob, so that the next store repairs it.
    fn drop_file(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    /// Appends a build's counts to the log.
    pub fn log(&self, hits: u64, misses: u64, stores: u64, stored_bytes: u64) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
        {
            let _ = f.write_all(format!("{hits} {misses} {stores}\n").as_bytes());
        }
        if stored_bytes > 0 {
            let size = self.recorded_size() + stored_bytes;
            let _ = self.place(&self.dir.join("size"), Some(size.to_string().as_bytes()), None);
        }
    }

    /// The size as last measured plus what was stored since (an estimate, for trimming).
    pub fn recorded_size(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Entries, blobs, bytes, and the counts the log recorded.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for (sub, count) in [("entries", true), ("blobs", false)] {
            for e in walkdir::WalkDir::new(self.dir.join(sub)).min_depth(2).max_depth(2) {
                let Ok(e) = e else { continue };
                if let Ok(m) = e.metadata() {
                    s.bytes += m.len();
                    if count {
                        s.entries += 1;
                    } else {
                        s.blobs += 1;
                    }
                }
            }
        }
        for line in std::fs::read_to_string(self.dir.join("log"))
            .unwrap_or_default()
            .lines()
        {
            let n: Vec<u64> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
            if let [h, m, st] = n[..] {
                s.hits += h;
                s.misses += m;
                s.stores += st;
            }
        }
        s
    }

    /// Evicts the least recently used entries until the cache holds at most `max` bytes: the
    /// newest entries are kept, with their blobs, while they fit; the others go, and then every
    /// blob no kept entry names (except a blob no entry names at all that is younger than a
    /// minute: a kiln may be storing the entry for it). Returns the entries evicted and the size
    /// after.
    pub fn gc(&self, max: u64) -> (u64, u64) {
        let files = |sub: &str| -> Vec<(PathBuf, u64, SystemTime)> {
            walkdir::WalkDir::new(self.dir.join(sub))
                .min_depth(2)
                .max_depth(2)
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    let at = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    Some((e.path().to_path_buf(), m.len(), at))
                })
                .collect()
        };
        let mut entries = files("entries");
        let blobs = files("blobs");
        let blob_size: std::collections::HashMap<String, u64> = blobs
            .iter()
            .filter_map(|(p, len, _)| Some((p.file_name()?.to_string_lossy().into_owned(), *len)))
            .collect();
        // Newest use first.
        entries.sort_by_key(|e| std::cmp::Reverse(e.2));
        let mut size = 0u64;
        let mut kept_blobs = std::collections::HashSet::new();
        let mut named = std::collections::HashSet::new();
        let mut evicted = 0;
        for (path, len, _) in entries {
            let digests: Vec<String> = std::fs::read(&path)
                .ok()
                .and_then(|b| parse(&b))
                .map(|e| e.outputs.iter().map(|o| o.digest.hex()).collect())
                .unwrap_or_default();
            named.extend(digests.iter().cloned());
            let extra: u64 = digests
                .iter()
                .filter(|d| !kept_blobs.contains(*d))
                .map(|d| blob_size.get(d).copied().unwrap_or(0))
                .sum();
            if size + len + extra <= max {
                size += len + extra;
                kept_blobs.extend(digests);
            } else if std::fs::remove_file(&path).is_ok() {
                evicted += 1;
            }
        }
        let recent = SystemTime::now() - std::time::Duration::from_secs(60);
        for (path, len, at) in blobs {
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let in_flight = !named.contains(&name) && at >= recent;
            if kept_blobs.contains(&name) || in_flight {
                if !kept_blobs.contains(&name) {
                    size += len;
                }
                continue;
            }
            let _ = std::fs::remove_file(&path);
        }
        let _ = self.place(&self.dir.join("size"), Some(size.to_string().as_bytes()), None);
        (evicted, size)
    }

    /// Empties the cache (its entries, blobs, counts); the directory stays.
    pub fn clear(&self) -> Result<(), String> {
        for sub in ["entries", "blobs", "tmp"] {
            let p = self.dir.join(sub);
            if p.exists() {
                std::fs::remove_dir_all(&p)
                    .map_err(|e| format!("cannot empty {}: {e}", p.display()))?;
            }
            std::fs::create_dir_all(&p).map_err(|e| e.to_string())?;
        }
        let _ = std::fs::remove_file(self.dir.join("log"));
        let _ = std::fs::remove_file(self.dir.join("size"));
        Ok(())
    }

    /// Every entry whose checksum or blobs do not verify (for tests).
    #[cfg(any(test, feature = "internals"))]
    pub fn damaged(&self) -> Vec<PathBuf> {
        let mut bad = Vec::new();
        for e in walkdir::WalkDir::new(self.dir.join("entries"))
            .min_depth(2)
            .max_depth(2)
            .into_iter()
            .flatten()
        {
            let ok = std::fs::read(e.path()).ok().and_then(|b| parse(&b)).is_some_and(|entry| {
                entry.outputs.iter().all(|o| {
                    std::fs::read(self.blob_path(&o.digest)).is_ok_and(|b| o.digest.verifies(&b))
                })
            });
            if !ok {
                bad.push(e.path().to_path_buf());
            }
        }
        bad
    }
}

impl Backend for LocalCache {
    fn name(&self) -> String {
        self.dir.display().to_string()
    }

    fn get_entry(&self, key: &Key) -> Fetched<Entry> {
        let path = self.entry_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Fetched::Miss,
            Err(e) => return Fetched::Trouble(format!("cannot read {}: {e}", path.display())),
        };
        match parse(&bytes) {
            Some(entry) => {
                // A use: least recently used entries go first.
                if let Ok(f) = std::fs::File::options().write(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Fetched::Hit(entry)
            }
            None => {
                self.drop_file(&path);
                Fetched::Trouble(format!("the entry {} is damaged; dropped", path.display()))
            }
        }
    }

    fn get_blob(&self, digest: &Digest) -> Fetched<Vec<u8>> {
        let path = self.blob_path(digest);
        match std::fs::read(&path) {
            Ok(b) if digest.verifies(&b) => Fetched::Hit(b),
            Ok(_) => {
                self.drop_file(&path);
                Fetched::Trouble(format!(
                    "the blob {} does not match its digest; dropped",
                    path.display()
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Fetched::Trouble(format!("the blob {} is missing", path.display()))
            }
            Err(e) => Fetched::Trouble(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn put(&self, key: &Key, entry: &Entry, blobs: &[(Digest, &Path)]) -> Result<(), String> {
        for (digest, from) in blobs {
            let to = self.blob_path(digest);
            if std::fs::metadata(&to).is_ok_and(|m| m.len() == digest.size) {
                continue;
            }
            self.place(&to, None, Some(from))
                .map_err(|e| format!("cannot store {}: {e}", to.display()))?;
        }
        let to = self.entry_path(key);
        self.place(&to, Some(&render(entry)), None)
            .map_err(|e| format!("cannot store {}: {e}", to.display()))
    }
}

/// An entry's text.
pub fn render(entry: &Entry) -> Vec<u8> {
    let mut text = String::from(HEADER);
    for o in &entry.outputs {
        text.push_str(&format!(
            "output {} {} {} {}\n",
            o.digest.hex(),
            o.digest.size,
            if o.executable { "x" } else { "-" },
            o.path
        ));
    }
    for (path, hash) in &entry.implicit {
        text.push_str(&format!("implicit {} {path}\n", hex(hash)));
    }
    let sum = blake3::hash(text.as_bytes());
    text.push_str(&format!("end {}\n", sum.to_hex()));
    text.into_bytes()
}

/// An entry from its text; `None` when it is damaged in any way.
pub fn parse(bytes: &[u8]) -> Option<Entry> {
    let text = std::str::from_utf8(bytes).ok()?;
    let body_end = text.rfind("end ")?;
    let (body, end) = text.split_at(body_end);
    let sum = end.strip_prefix("end ")?.strip_suffix('\n')?;
    if sum != blake3::hash(body.as_bytes()).to_hex().as_str() {
        return None;
    }
    let mut lines = body.strip_prefix(HEADER)?.lines();
    let mut entry = Entry::default();
    for line in lines.by_ref() {
        if let Some(rest) = line.strip_prefix("output ") {
            let mut w = rest.splitn(4, ' ');
            let sha = unhex(w.next()?.as_bytes())?;
            let size = w.next()?.parse().ok()?;
            let executable = match w.next()? {
                "x" => true,
                "-" => false,
                _ => return None,
            };
            let path = w.next()?.to_string();
            entry.outputs.push(OutputFile {
                path,
                digest: Digest { sha256: sha, size },
                executable,
            });
        } else if let Some(rest) = line.strip_prefix("implicit ") {
            let (h, path) = rest.split_once(' ')?;
            entry.implicit.push((path.to_string(), unhex(h.as_bytes())?));
        } else {
            return None;
        }
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            outputs: vec![OutputFile {
                path: "${OUT}/a b.o".into(),
                digest: Digest::of(b"object"),
                executable: true,
            }],
            implicit: vec![("include/x.h".into(), [3u8; 32])],
        }
    }

    #[test]
    fn an_entry_reads_back_and_any_damage_is_seen() {
        let text = render(&entry());
        assert_eq!(parse(&text), Some(entry()));
        assert!(parse(&text[..text.len() - 3]).is_none(), "truncated");
        for i in [5, 30, text.len() / 2] {
            let mut flipped = text.clone();
            flipped[i] ^= 0x20;
            assert!(parse(&flipped).is_none(), "a flipped bit at {i}");
        }
    }

    #[test]
    fn blobs_and_entries_are_stored_verified_and_collected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::open(dir.path()).unwrap();
        let file = dir.path().join("obj");
        std::fs::write(&file, b"object").unwrap();
        let key = Key([1u8; 32]);
        assert_eq!(cache.get_entry(&key), Fetched::Miss);
        cache.put(&key, &entry(), &[(Digest::of(b"object"), &file)]).unwrap();
        assert_eq!(cache.get_entry(&key), Fetched::Hit(entry()));
        assert_eq!(cache.get_blob(&Digest::of(b"object")), Fetched::Hit(b"object".to_vec()));
        assert!(cache.damaged().is_empty());
        // A blob overwritten with other bytes is trouble, and dropped.
        std::fs::write(cache.blob_path(&Digest::of(b"object")), b"objecT").unwrap();
        assert!(matches!(cache.get_blob(&Digest::of(b"object")), Fetched::Trouble(_)));
        assert!(!cache.blob_path(&Digest::of(b"object")).exists());
        assert_eq!(cache.damaged().len(), 1);
        // gc down to nothing evicts the entry.
        assert_eq!(cache.gc(0).0, 1);
        assert_eq!(cache.get_entry(&key), Fetched::Miss);
    }
}
