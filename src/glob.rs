//! Globs over the project tree: `*`, `**`, `?` and `[..]` relative to the build file's directory.
//! A pattern is matched with globset (`*` stays within one directory) while walkdir walks from the
//! pattern's literal prefix. The build directory and every other directory marked as a build
//! directory of kiln's (see `outdir.rs`) are skipped unless the walk starts inside them,
//! dot-directories unless the pattern names them; symlinked directories are not entered (no
//! loops); results are sorted. The directories walked are returned too, so that a cached expansion
//! can tell when a glob could match differently.

use crate::filestate::Stat;
use crate::paths;
use globset::{GlobBuilder, GlobMatcher};
use std::path::Path;

/// Whether a source entry is a pattern rather than a path.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A compiled pattern.
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    /// Compiles a normalised kiln path pattern.
    pub fn new(text: &str) -> Result<Pattern, String> {
        let glob = GlobBuilder::new(text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("invalid pattern `{text}`: {}", e.kind()))?;
        Ok(Pattern {
            text: text.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    pub fn is_match(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }

    /// The leading components without wildcards: where the walk starts.
    fn literal_prefix(&self) -> String {
        let parts: Vec<&str> = self.text.split('/').take_while(|c| !is_glob(c)).collect();
        let n = parts.len();
        // The last component is the file pattern unless the whole pattern is literal.
        let prefix = if n == self.text.split('/').count() {
            &parts[..n.saturating_sub(1)]
        } else {
            &parts[..]
        };
        if prefix.is_empty() {
            ".".to_string()
        } else {
            prefix.join("/")
        }
    }

    /// How deep below the prefix a match can lie, when the pattern has no `**`.
    fn max_depth(&self, prefix: &str) -> Option<usize> {
        if self.text.contains("**") {
            return None;
        }
        let total = self.text.split('/').count();
        let skipped = if prefix == "." {
            0
        } else {
            prefix.split('/').count()
        };
        Some(total - skipped)
    }

    /// Whether the pattern names a dot-directory, so that dot-directories are searched.
    fn names_dot_dirs(&self) -> bool {
        self.text
            .split('/')
            .any(|c| c.starts_with('.') && c != "." && c != "..")
    }
}

/// What a glob found.
#[derive(Debug, Default)]
pub struct Matches {
    /// Matching files, sorted, as kiln paths.
    pub files: Vec<String>,
    /// Every directory the walk listed, as kiln paths, with its stat when it was listed; a
    /// starting directory that does not exist is listed without a stat.
    pub dirs: Vec<(String, Option<Stat>)>,
    /// Entries that were passed over, for a warning (e.g. non-UTF-8 names).
    pub skipped: Vec<String>,
}

/// Expands `pattern` under `root`; `out` is the build directory (a kiln path), skipped unless the
/// pattern's literal prefix lies inside it.
pub fn expand(root: &Path, pattern: &Pattern, out: &str) -> Matches {
    let mut found = Matches::default();
    let prefix = pattern.literal_prefix();
    let start = paths::absolute(root, &prefix);
    if !start.is_dir() {
        found.dirs.push((prefix, crate::filestate::stat(&start)));
        return found;
    }
    let inside_out = paths::is_within(&prefix, out);
    let state_dir = paths::join(out, crate::outdir::STATE_DIR);
    let dot_dirs = pattern.names_dot_dirs();
    let mut walk = walkdir::WalkDir::new(&start)
        .follow_links(false)
        .sort_by_file_name();
    if let Some(depth) = pattern.max_depth(&prefix) {
        walk = walk.max_depth(depth);
    }
    let rel_of = |p: &Path| -> Option<String> {
        let sub = p.strip_prefix(&start).ok()?.to_str()?;
        Some(if sub.is_empty() {
            prefix.clone()
        } else {
            paths::join(&prefix, sub)
        })
    };
    let walker = walk.into_iter().filter_entry(|e| {
        if e.depth() == 0 || !e.file_type().is_dir() {
            return true;
        }
        let Some(rel) = rel_of(e.path()) else {
            return true;
        };
        if rel == state_dir || (!inside_out && rel == out) {
            return false;
        }
        // Another build directory (`--out`, a variant), whichever build made it.
        if crate::outdir::is_marked(e.path()) {
            return false;
        }
        dot_dirs || !e.file_name().to_string_lossy().starts_with('.')
    });
    for entry in walker {
        let Ok(entry) = entry else { continue };
        let Some(rel) = rel_of(entry.path()) else {
            found
                .skipped
                .push(entry.path().to_string_lossy().into_owned());
            continue;
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            found
                .dirs
                .push((rel, entry.metadata().ok().map(|m| Stat::of(&m))));
            continue;
        }
        let is_file =
            ft.is_file() || (ft.is_symlink() && entry.path().metadata().is_ok_and(|m| m.is_file()));
        if is_file && pattern.is_match(&rel) {
            found.files.push(rel);
        }
    }
    found.files.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "x").unwrap();
        }
        dir
    }

    fn glob(dir: &tempfile::TempDir, pattern: &str) -> Vec<String> {
        expand(dir.path(), &Pattern::new(pattern).unwrap(), "build").files
    }

    #[test]
    fn star_stays_in_one_directory_and_double_star_descends() {
        let d = tree(&["src/b.c", "src/a.c", "src/sub/c.c", "src/x.h", "top.c"]);
        assert_eq!(glob(&d, "src/*.c"), vec!["src/a.c", "src/b.c"]);
        assert_eq!(
            glob(&d, "src/**/*.c"),
            vec!["src/a.c", "src/b.c", "src/sub/c.c"]
        );
        assert_eq!(glob(&d, "*.c"), vec!["top.c"]);
        assert_eq!(
            glob(&d, "src/?.[ch]"),
            vec!["src/a.c", "src/b.c", "src/x.h"]
        );
        assert!(glob(&d, "nope/*.c").is_empty());
    }

    #[test]
    fn skips_build_and_dot_directories_unless_named() {
        let d = tree(&["a.c", "build/gen/g.c", ".hidden/h.c", "build/.kiln/s.c"]);
        assert_eq!(glob(&d, "**/*.c"), vec!["a.c"]);
        assert_eq!(glob(&d, "build/gen/*.c"), vec!["build/gen/g.c"]);
        assert_eq!(glob(&d, "build/**/*.c"), vec!["build/gen/g.c"]);
        assert_eq!(glob(&d, ".hidden/*.c"), vec![".hidden/h.c"]);
    }

    #[test]
    fn skips_other_build_directories_of_kiln() {
        let d = tree(&[
            "a.c",
            "debug/g.c",
            "debug/.kiln/store",
            "other/CACHEDIR.TAG",
            "other/o.c",
        ]);
        crate::outdir::prepare(&d.path().join("tagged"), "tagged", false).unwrap();
        fs::write(d.path().join("tagged/g.c"), "x").unwrap();
        // Another tool's tag does not make a directory kiln's.
        assert_eq!(glob(&d, "**/*.c"), vec!["a.c", "other/o.c"]);
        assert_eq!(glob(&d, "debug/*.c"), vec!["debug/g.c"]);
    }

    #[test]
    fn does_not_loop_through_symlinked_directories() {
        let d = tree(&["src/a.c"]);
        std::os::unix::fs::symlink(d.path().join("src"), d.path().join("src/loop")).unwrap();
        assert_eq!(glob(&d, "src/**/*.c"), vec!["src/a.c"]);
    }
}
