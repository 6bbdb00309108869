//! Whose build directory it is. kiln marks a build directory when it creates it, with a
//! `CACHEDIR.TAG` that says kiln wrote it (backup tools skip such directories; cargo writes one
//! too), and adopts no directory it did not make: a project may ship a `build/` of its own (CMake
//! or meson files) that kiln must neither build into nor delete. kiln's state directory inside it,
//! [`STATE_DIR`], counts as a mark as well, so that the build directories of earlier versions are
//! still kiln's. An empty directory may be adopted, and so may one that holds only build
//! directories of kiln's (where a variant's `<out>/<name>` was built before the default build).
//! Globs skip every marked directory (see `glob.rs`).

use crate::error::Error;
use std::io::{self, Read};
use std::path::Path;

/// The name of kiln's state directory inside the build directory.
pub const STATE_DIR: &str = ".kiln";

/// The cache directory tag's file name (<https://bford.info/cachedir/>).
pub const TAG: &str = "CACHEDIR.TAG";

/// The line every cache directory tag starts with.
const SIGNATURE: &str = "Signature: 8a477f597d28d172789f06886806bc55";

/// The line that tells kiln's tag from other tools'.
const MADE_BY: &str = "# This file is a cache directory tag created by kiln.";

/// What a would-be build directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing there.
    Absent,
    /// An empty directory without a mark, or one holding only build directories of kiln's (a
    /// variant's `<out>/<name>`, built before the default): kiln may adopt it.
    Empty,
    /// A directory kiln made.
    Marked,
    /// A directory holding files and no mark: someone else's.
    Foreign,
    /// A file, or anything else that is not a directory.
    NotADirectory,
}

/// Looks at `dir` (following a symlink).
pub fn inspect(dir: &Path) -> io::Result<Found> {
    let meta = match dir.metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Ok(Found::NotADirectory);
    }
    if is_marked(dir) {
        return Ok(Found::Marked);
    }
    let only_kilns = std::fs::read_dir(dir)?.all(|e| {
        e.is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_dir()) && is_marked(&e.path()))
    });
    Ok(if only_kilns {
        Found::Empty
    } else {
        Found::Foreign
    })
}

/// Whether `dir` holds kiln's state or kiln's tag.
pub fn is_marked(dir: &Path) -> bool {
    dir.join(STATE_DIR).is_dir() || has_kiln_tag(dir)
}

/// Whether `dir` holds a cache directory tag written by kiln.
fn has_kiln_tag(dir: &Path) -> bool {
    let path = dir.join(TAG);
    // Only a regular file is read: opening a FIFO would block.
    if !path.is_file() {
        return false;
    }
    let mut head = Vec::new();
    let read = std::fs::File::open(&path).and_then(|f| f.take(512).read_to_end(&mut head));
    let head = String::from_utf8_lossy(&head);
    read.is_ok() && head.starts_with(SIGNATURE) && head.lines().any(|l| l == MADE_BY)
}

/// Makes `out` (named `shown` in messages) ready to be the build directory, before the build runs
/// or deletes anything: creates and marks it when absent, marks an empty directory or one of an
/// earlier kiln, and refuses anything else. A dry run only looks.
pub fn prepare(out: &Path, shown: &str, dry_run: bool) -> Result<(), Error> {
    let found = inspect(out).map_err(|e| Error::io(format!("cannot read {shown}"), e))?;
    match found {
        Found::Foreign | Found::NotADirectory => return Err(refuse_build(shown, found)),
        _ if dry_run => return Ok(()),
        Found::Absent | Found::Empty | Found::Marked => {}
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("cannot create {shown}"), e))?;
    let tag = out.join(TAG);
    // Another tool's tag is left as it is: `.kiln/` marks the directory then.
    if tag.symlink_metadata().is_err() {
        let text = format!(
            "{SIGNATURE}\n{MADE_BY}\n# For information about cache directory tags see https://bford.info/cachedir/\n"
        );
        std::fs::write(&tag, text)
            .map_err(|e| Error::io(format!("cannot write {shown}/{TAG}"), e))?;
    }
    Ok(())
}

/// Refuses to delete in `out` unless kiln made it. Otherwise returns what is there: `Marked`, or
/// `Absent` or `Empty` (nothing to delete).
pub fn check_owned(out: &Path, shown: &str) -> Result<Found, Error> {
    match inspect(out).map_err(|e| Error::io(format!("cannot read {shown}"), e))? {
        found @ (Found::Absent | Found::Empty | Found::Marked) => Ok(found),
        found => Err(refuse_delete(shown, found)),
    }
}

/// Why kiln will not delete in `shown`, which it found as `found`.
pub fn refuse_delete(shown: &str, found: Found) -> Error {
    Error::Refused(format!(
        "{}; kiln deletes only build directories it made",
        not_kilns(shown, found)
    ))
}

/// Why kiln will not build into `shown`.
fn refuse_build(shown: &str, found: Found) -> Error {
    Error::Refused(format!(
        "{}, and it will not build into it (it may be another tool's, with sources in it); nothing was run\n  \
         = build elsewhere: `kiln --out {shown}-kiln`, or `out = \"{shown}-kiln\"` under [project] in the build file",
        not_kilns(shown, found)
    ))
}

fn not_kilns(shown: &str, found: Found) -> String {
    if found == Found::NotADirectory {
        format!("`{shown}` is not a directory")
    } else {
        format!(
            "`{shown}` holds no kiln state (no {TAG} of kiln's, no {shown}/{STATE_DIR}): kiln did not make it"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_what_it_makes_and_refuses_what_it_did_not() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("build");
        assert_eq!(inspect(&out).unwrap(), Found::Absent);
        prepare(&out, "build", true).unwrap();
        assert_eq!(
            inspect(&out).unwrap(),
            Found::Absent,
            "a dry run only looks"
        );
        prepare(&out, "build", false).unwrap();
        assert_eq!(inspect(&out).unwrap(), Found::Marked);
        assert!(
            std::fs::read_to_string(out.join(TAG))
                .unwrap()
                .starts_with(SIGNATURE)
        );

        let theirs = d.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        assert_eq!(inspect(&theirs).unwrap(), Found::Empty);
        // Another tool's tag is not kiln's mark.
        std::fs::write(theirs.join(TAG), format!("{SIGNATURE}\n# made by cargo\n")).unwrap();
        assert_eq!(inspect(&theirs).unwrap(), Found::Foreign);
        assert!(prepare(&theirs, "theirs", false).is_err());
        assert!(check_owned(&theirs, "theirs").is_err());
        // `.kiln/` of an earlier kiln is.
        std::fs::create_dir(theirs.join(STATE_DIR)).unwrap();
        assert_eq!(check_owned(&theirs, "theirs").unwrap(), Found::Marked);

        // A directory holding only kiln's build directories (a variant's) may be adopted.
        let parent = d.path().join("parent");
        prepare(&parent.join("debug"), "parent/debug", false).unwrap();
        assert_eq!(inspect(&parent).unwrap(), Found::Empty);
        std::fs::write(parent.join("CMakeLists.txt"), "").unwrap();
        assert_eq!(inspect(&parent).unwrap(), Found::Foreign);

        let file = d.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(inspect(&file).unwrap(), Found::NotADirectory);
        assert!(prepare(&file, "file", true).is_err());
    }
}
