//! File states: a file's stat (size, mtime and ctime in nanoseconds, inode) and the blake3 hash of its
//! content, and the rule that lets a recorded hash stand for the content without reading it: the
//! stat is identical and the file's mtime is strictly older than the moment the hash was taken,
//! measured on the file system's own clock (git's racy-timestamp rule). A file modified in the same
//! timestamp tick as its hash was taken could change again unseen, so it is hashed again.
//!
//! The file system's clock is read by touching a file under the build directory and reading back
//! its mtime ([`FsClock`]). Stats and hashes of many files are spread over the cores ([`par_map`]).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A content hash.
pub type Hash = [u8; 32];

/// The hash that stands for "this file does not exist".
pub const MISSING: Hash = [0; 32];

/// What a stat says about a file, as far as kiln compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub size: u64,
    pub mtime: i64,
    pub ctime: i64,
    pub ino: u64,
}

impl Stat {
    pub fn of(m: &std::fs::Metadata) -> Stat {
        Stat {
            size: m.size(),
            mtime: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
            ino: m.ino(),
        }
    }
}

/// The stat of `path` (following symlinks), or `None` if it does not exist or cannot be read.
pub fn stat(path: &Path) -> Option<Stat> {
    std::fs::metadata(path).ok().map(|m| Stat::of(&m))
}

/// A directory to stat paths relative to: the kernel walks only the relative part.
pub struct Dir(std::os::fd::OwnedFd);

impl Dir {
    pub fn open(path: &Path) -> std::io::Result<Dir> {
        use rustix::fs::{Mode, OFlags};
        Ok(Dir(rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?))
    }

    /// The stat of `rel` (relative to this directory, or absolute), following symlinks.
    pub fn stat(&self, rel: &str) -> Option<Stat> {
        let st = rustix::fs::statat(&self.0, rel, rustix::fs::AtFlags::empty()).ok()?;
        Some(Stat {
            size: st.st_size as u64,
            mtime: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
            ctime: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec as i64,
            ino: st.st_ino,
        })
    }
}

/// The blake3 hash of a file's content. A directory hashes to a fixed marker.
pub fn hash_file(path: &Path) -> io::Result<Hash> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| stat_and_hash(path, buf).map(|(_, h)| h))
}

/// A file's stat and content hash through one open: the stat is taken from the open file, so it
/// describes what was read. `buf` is scratch space, reused between calls.
pub fn stat_and_hash(path: &Path, buf: &mut Vec<u8>) -> io::Result<(Stat, Hash)> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let stat = Stat::of(&meta);
    if meta.is_dir() {
        return Ok((stat, *blake3::hash(b"kiln directory").as_bytes()));
    }
    buf.resize(64 * 1024, 0);
    let mut hasher = blake3::Hasher::new();
    // Exactly the size the stat gave: what is hashed is what the stat describes, and no read is
    // spent learning that the end was reached.
    let mut left = stat.size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                left -= n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let hash = *hasher.finalize().as_bytes();
    // An all-zero hash means "missing"; a real file never gets it (2^-256).
    Ok((stat, if hash == MISSING { [1; 32] } else { hash }))
}

/// A recorded hash and when it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub stat: Stat,
    pub hash: Hash,
    /// The file system's time when the hash was taken (a lower bound), in nanoseconds.
    pub recorded_at: i64,
}

/// The racy-timestamp rule: a file stat'ed as `before` when the file system's clock read
/// `recorded_at` is known unchanged if its stat is the same now and its mtime is strictly older
/// than that reading (a write within the same tick could leave the stat as it was).
pub fn unchanged_since(before: &Stat, now: &Stat, recorded_at: i64) -> bool {
    before == now && now.mtime < recorded_at
}

impl Recorded {
    /// Whether this record still tells the content of a file whose stat is now `now`.
    pub fn trusted_for(&self, now: &Stat) -> bool {
        unchanged_since(&self.stat, now, self.recorded_at)
    }
}

/// What the build needs of the file system (ninja's DiskInterface): stats and hashes of files, and
/// output directories made without writing through a symlink out of where outputs belong.
/// [`RealDisk`] is the file system; tests put a fake in memory behind it.
pub trait Disk: Sync {
    fn stat(&self, path: &Path) -> Option<Stat>;
    /// The stats of `paths` (relative to `root`), in order, spread over the cores.
    fn stat_all(&self, root: &Path, paths: &[&str]) -> Vec<Option<Stat>>;
    fn hash(&self, path: &Path) -> io::Result<Hash>;
    /// Creates directory `dir` and its parents, unless the part of it that exists, or the whole
    /// once made, resolves outside `allowed`.
    fn make_dir(&self, dir: &Path, allowed: &Path) -> Result<(), DirRefused>;
}

/// Why [`Disk::make_dir`] made no directory.
#[derive(Debug)]
pub enum DirRefused {
    /// It resolves to this path, outside where it may be.
    Outside(std::path::PathBuf),
    Unresolved(io::Error),
    Uncreated(io::Error),
}

/// The real file system.
pub struct RealDisk;

impl Disk for RealDisk {
    fn stat(&self, path: &Path) -> Option<Stat> {
        stat(path)
    }

    fn stat_all(&self, root: &Path, paths: &[&str]) -> Vec<Option<Stat>> {
        stat_all(root, paths, |p| p)
    }

    fn hash(&self, path: &Path) -> io::Result<Hash> {
        hash_file(path)
    }

    fn make_dir(&self, dir: &Path, allowed: &Path) -> Result<(), DirRefused> {
        // Checked before anything is created, so that nothing is made through a symlink out.
        let mut existing = dir;
        while existing.symlink_metadata().is_err() {
            match existing.parent() {
                Some(p) => existing = p,
                None => break,
            }
        }
        for (at, create) in [(existing, true), (dir, false)] {
            let canon = at.canonicalize().map_err(DirRefused::Unresolved)?;
            if !canon.starts_with(allowed) {
                return Err(DirRefused::Outside(canon));
            }
            if create {
                std::fs::create_dir_all(dir).map_err(DirRefused::Uncreated)?;
            }
        }
        Ok(())
    }
}

/// The file system's clock, as the racy-timestamp rule needs it. [`FsClock`] reads the real one;
/// tests give a fake.
pub trait Clock: Send + Sync {
    /// A moment no later than now, in nanoseconds (a recent reading may be reused).
    fn now(&self) -> i64;
    /// A reading taken now, never reused: no earlier than any timestamp the file system gave
    /// before this call.
    fn fresh(&self) -> i64;
}

impl Clock for FsClock {
    fn now(&self) -> i64 {
        FsClock::now(self)
    }

    fn fresh(&self) -> i64 {
        FsClock::fresh(self)
    }
}

/// Reads the file system's current time by touching a file and reading its mtime. Readings are
/// shared for a short while: an older reading is still a valid lower bound.
pub struct FsClock {
    file: File,
    last: Mutex<Option<(Instant, i64)>>,
}

/// How long a reading is reused. Timestamp ticks are coarser than this on common file systems.
const CLOCK_REUSE: Duration = Duration::from_millis(2);

impl FsClock {
    pub fn open(path: &Path) -> io::Result<FsClock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        Ok(FsClock {
            file,
            last: Mutex::new(None),
        })
    }

    /// A moment no later than now, on the file system's clock, in nanoseconds.
    pub fn now(&self) -> i64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, value)) = *last
            && at.elapsed() < CLOCK_REUSE
        {
            return value;
        }
        self.read(&mut last)
    }

    /// A reading taken now, never reused: no earlier than any timestamp the file system gave
    /// before this call.
    pub fn fresh(&self) -> i64 {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        self.read(&mut last)
    }

    fn read(&self, last: &mut Option<(Instant, i64)>) -> i64 {
        let taken = Instant::now();
        let value = self
            .file
            .write_at(b"k", 0)
            .and_then(|_| self.file.metadata())
            .map(|m| Stat::of(&m).mtime)
            // Without a reading, claim the earliest time: nothing hashed now will be trusted.
            .unwrap_or(i64::MIN);
        *last = Some((taken, value));
        value
    }
}

/// The stat of each item's path (relative to `root`), in parallel: through one handle on `root`
/// when it opens, else path by path.
pub fn stat_all<'p, T: Sync>(
    root: &Path,
    items: &[T],
    path: impl Fn(&T) -> &'p str + Sync,
) -> Vec<Option<Stat>> {
    match Dir::open(root) {
        Ok(dir) => par_map(items, |i| dir.stat(path(i))),
        Err(_) => par_map(items, |i| stat(&crate::paths::absolute(root, path(i)))),
    }
}

/// Applies `f` to every item, spread over the available cores, keeping the order.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(16);
    if threads == 1 || items.len() < 256 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let f = &f;
                scope.spawn(move || part.iter().map(f).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a stat thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_follows_content_not_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, "one").unwrap();
        let h1 = hash_file(&p).unwrap();
        std::fs::write(&p, "one").unwrap();
        assert_eq!(hash_file(&p).unwrap(), h1);
        std::fs::write(&p, "two").unwrap();
        assert_ne!(hash_file(&p).unwrap(), h1);
        assert!(stat(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn racy_rule_distrusts_a_record_taken_in_the_files_tick() {
        let stat = Stat {
            size: 3,
            mtime: 1_000,
            ctime: 1_000,
            ino: 7,
        };
        let hash = [9; 32];
        assert!(
            Recorded {
                stat,
                hash,
                recorded_at: 1_001
            }
            .trusted_for(&stat)
        );
        assert!(
            !Recorded {
                stat,
                hash,
                recorded_at: 1_000
            }
            .trusted_for(&stat)
        );
        assert!(
            !Recorded {
                stat,
                hash,
                recorded_at: 999
            }
            .trusted_for(&stat)
        );
        let touched = Stat {
            ctime: 2_000,
            ..stat
        };
        assert!(
            !Recorded {
                stat,
                hash,
                recorded_at: 5_000
            }
            .trusted_for(&touched)
        );
    }

    #[test]
    fn the_clock_moves_with_the_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let clock = FsClock::open(&dir.path().join("clock")).unwrap();
        let before = clock.now();
        std::thread::sleep(Duration::from_millis(30));
        let p = dir.path().join("later");
        std::fs::write(&p, "x").unwrap();
        assert!(stat(&p).unwrap().mtime > before);
        std::thread::sleep(Duration::from_millis(30));
        assert!(clock.now() > stat(&p).unwrap().mtime);
    }

    #[test]
    fn stat_relative_to_a_directory_agrees_with_metadata() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), "abc").unwrap();
        let d = Dir::open(dir.path()).unwrap();
        assert_eq!(d.stat("sub/a"), stat(&dir.path().join("sub/a")));
        assert_eq!(d.stat("sub/a").unwrap().size, 3);
        assert!(d.stat("sub/missing").is_none());
    }

    #[test]
    fn par_map_keeps_order() {
        let items: Vec<u32> = (0..10_000).collect();
        assert_eq!(
            par_map(&items, |x| x * 2),
            items.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
    }
}
