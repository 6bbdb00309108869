//! The store's bytes, read in place: the store file mapped read-only, so that a build touches,
//! and keeps resident, only the pages of the records it reads (a build its snapshot vouches for
//! reads a few records at known offsets). Records a build appends are written to the file and
//! seen through the mapping, which leaves room after the file's end for them and is made anew
//! when that room runs out. A store built in memory (tests, a rewrite under way) owns its bytes.
//!
//! The mapping is shared with the file. kiln alone writes the store, under the build lock, and
//! only appends to it; a rewrite renames a new file into place and maps that. A store truncated
//! by something else while a build has it mapped would end that build with SIGBUS.

use rustix::mm::{Advice, MapFlags, ProtFlags, madvise, mmap, munmap};
use std::fs::File;
use std::io;
use std::ops::Deref;
use std::path::Path;
use std::ptr::NonNull;

/// The store's bytes: owned, or the store file mapped.
pub(super) enum Bytes {
    Owned(Vec<u8>),
    Mapped(Map),
}

/// A read-only shared mapping of the store file: `len` bytes of it are the store, `cap` are
/// mapped.
pub(super) struct Map {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// The mapping is never written through, and unmapped only when dropped.
unsafe impl Send for Map {}
unsafe impl Sync for Map {}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `cap` are those of a mapping this value made and no borrow of it
        // outlives `self`.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.cap) };
    }
}

impl Default for Bytes {
    fn default() -> Self {
        Bytes::Owned(Vec::new())
    }
}

impl Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            // SAFETY: the first `len` bytes of the mapping are in the file (it only grows while
            // mapped), so reading them cannot fault.
            Bytes::Mapped(m) => unsafe { std::slice::from_raw_parts(m.ptr.as_ptr(), m.len) },
        }
    }
}

/// Room mapped after the file's end for what a build appends: a quarter of the store, at least
/// 16 MiB. Room not read costs nothing but address space.
fn room(len: usize) -> usize {
    (len / 4).max(16 << 20)
}

impl Bytes {
    /// The file at `path`, mapped; read whole if it is empty or cannot be mapped.
    pub(super) fn map(path: &Path) -> io::Result<Bytes> {
        let file = File::open(path)?;
        let len = file.metadata()?.len() as usize;
        Ok(match Map::new(&file, len) {
            Some(m) => Bytes::Mapped(m),
            None => Bytes::Owned(std::fs::read(path)?),
        })
    }

    /// Lets the kernel take back the pages of a mapping that reading has made resident: they
    /// stay in the page cache, and the next read maps them again. Records read one here and
    /// one there (a decision's file records) would otherwise leave most of the store resident
    /// and counted in kiln's memory for the rest of the build.
    pub(super) fn release(&self) {
        if let Bytes::Mapped(m) = self {
            // SAFETY: the range is this mapping, read-only and shared: dropping its pages loses
            // nothing, and no reference into it is invalidated (the bytes read back the same).
            let _ = unsafe { madvise(m.ptr.as_ptr().cast(), m.cap, Advice::LinuxDontNeed) };
        }
    }

    /// Takes in `more`, which has just been appended to the file at `path` (mapped bytes) or is
    /// appended now (owned bytes).
    pub(super) fn appended(&mut self, path: &Path, more: &[u8]) -> io::Result<()> {
        match self {
            Bytes::Owned(v) => v.extend_from_slice(more),
            Bytes::Mapped(m) if m.len + more.len() <= m.cap => m.len += more.len(),
            Bytes::Mapped(m) => {
                let len = m.len + more.len();
                let file = File::open(path)?;
                *self = match Map::new(&file, len) {
                    Some(m) => Bytes::Mapped(m),
                    None => Bytes::Owned(std::fs::read(path)?),
                };
            }
        }
        Ok(())
    }

}

impl Map {
    /// The first `len` bytes of `file` mapped, with room after them; `None` for an empty file or
    /// when mapping fails.
    fn new(file: &File, len: usize) -> Option<Map> {
        if len == 0 {
            return None;
        }
        let cap = len.checked_add(room(len))?;
        // SAFETY: a new read-only mapping of a file, at an address the kernel chooses.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                cap,
                ProtFlags::READ,
                MapFlags::SHARED,
                file,
                0,
            )
        }
        .ok()?;
        Some(Map {
            ptr: NonNull::new(ptr.cast())?,
            len,
            cap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn appends_are_seen_through_the_mapping_and_past_its_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        std::fs::write(&path, b"head").unwrap();
        let mut bytes = Bytes::map(&path).unwrap();
        assert!(matches!(bytes, Bytes::Mapped(_)));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"+tail").unwrap();
        bytes.appended(&path, b"+tail").unwrap();
        assert_eq!(&bytes[..], b"head+tail");
        // More than the room: mapped anew.
        let big = vec![7u8; room(9) + 1];
        file.write_all(&big).unwrap();
        bytes.appended(&path, &big).unwrap();
        assert!(matches!(bytes, Bytes::Mapped(_)));
        assert_eq!(bytes.len(), 9 + big.len());
        assert_eq!(bytes[9..], big[..]);
    }
}
