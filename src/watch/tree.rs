//! What watch mode watches: every directory under the project root but kiln's state directory,
//! each with an inotify watch of its own, new directories watched as they appear. notify's
//! recursive mode is not used: it gives up at the first directory past the kernel's limit on
//! watches (`fs.inotify.max_user_watches`). Here a directory past it is scanned every
//! [`SCAN_EVERY`] instead (its entries' stats compared with the last scan), and kiln says so once.

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the directories past the limit are scanned.
pub const SCAN_EVERY: Duration = Duration::from_secs(1);

/// The watches, and the directories scanned instead.
pub(super) struct Tree {
    watcher: RecommendedWatcher,
    /// kiln's state directory, neither watched nor scanned (every build writes there).
    ignored: Option<PathBuf>,
    /// The directories past the limit, each with what it held at its last scan.
    scanned: BTreeMap<PathBuf, Listing>,
    warned: bool,
    /// Warnings to print.
    pub(super) messages: Vec<String>,
}

/// A directory's entries as a scan saw them.
type Listing = BTreeMap<PathBuf, Entry>;

/// What a scan compares of an entry: for a directory, only which one it is (what is in it is
/// watched or scanned on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Tree {
    pub(super) fn new(watcher: RecommendedWatcher) -> Tree {
        Tree {
            watcher,
            ignored: None,
            scanned: BTreeMap::new(),
            warned: false,
            messages: Vec::new(),
        }
    }

    pub(super) fn ignored(&self) -> Option<&Path> {
        self.ignored.as_deref()
    }

    pub(super) fn set_ignored(&mut self, dir: PathBuf) {
        self.ignored = Some(dir);
    }

    /// Whether some directories are scanned rather than watched.
    pub(super) fn scanning(&self) -> bool {
        !self.scanned.is_empty()
    }

    /// Watches `top` and every directory under it (or, past the limit, scans them); the files
    /// found under it go to `found`.
    pub(super) fn add(&mut self, top: &Path, found: &mut Vec<PathBuf>) {
        let ignored = self.ignored.clone();
        let walk = walkdir::WalkDir::new(top)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(move |e| ignored.as_deref().is_none_or(|i| !e.path().starts_with(i)));
        for entry in walk.flatten() {
            let path = entry.path();
            if !entry.file_type().is_dir() {
                found.push(path.to_path_buf());
                continue;
            }
            if self.scanned.contains_key(path) {
                continue;
            }
            match self.watcher.watch(path, RecursiveMode::NonRecursive) {
                Ok(()) => {}
                Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                    self.warn();
                    let listing = self.listing(path);
                    self.scanned.insert(path.to_path_buf(), listing);
                }
                // Gone since the walk saw it, or unreadable: nothing to watch.
                Err(_) => {}
            }
        }
    }

    fn warn(&mut self) {
        if std::mem::replace(&mut self.warned, true) {
            return;
        }
        let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());
        self.messages.push(format!(
            "warning: the kernel's inotify watch limit (fs.inotify.max_user_watches = {limit}) \
             is reached; directories past it are scanned every second instead"
        ));
    }

    /// Scans the directories past the limit; the paths that changed since the last scan go to
    /// `changed`, and new directories are watched (or scanned) from now on.
    pub(super) fn scan(&mut self, changed: &mut Vec<PathBuf>) {
        let dirs: Vec<PathBuf> = self.scanned.keys().cloned().collect();
        let mut new_dirs = Vec::new();
        for dir in dirs {
            let now = self.listing(&dir);
            let before = self.scanned.remove(&dir).unwrap_or_default();
            for (path, entry) in &now {
                match before.get(path) {
                    Some(b) if b == entry => {}
                    Some(_) => changed.push(path.clone()),
                    None => {
                        changed.push(path.clone());
                        if path.is_dir() {
                            new_dirs.push(path.clone());
                        }
                    }
                }
            }
            changed.extend(before.keys().filter(|p| !now.contains_key(*p)).cloned());
            // A directory that is gone is looked for again when its parent shows it anew.
            if dir.is_dir() {
                self.scanned.insert(dir, now);
            }
        }
        for dir in new_dirs {
            self.add(&dir, changed);
        }
    }

    /// What a directory holds now (nothing if it cannot be read).
    fn listing(&self, dir: &Path) -> Listing {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Listing::new();
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| self.ignored.as_deref().is_none_or(|i| !p.starts_with(i)))
            .filter_map(|p| {
                let m = p.symlink_metadata().ok()?;
                let entry = if m.is_dir() {
                    Entry {
                        ino: m.ino(),
                        size: 0,
                        mtime: (0, 0),
                        ctime: (0, 0),
                    }
                } else {
                    Entry {
                        ino: m.ino(),
                        size: m.size(),
                        mtime: (m.mtime(), m.mtime_nsec()),
                        ctime: (m.ctime(), m.ctime_nsec()),
                    }
                };
                Some((p, entry))
            })
            .collect()
    }
}
