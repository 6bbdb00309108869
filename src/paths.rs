//! Paths as kiln names them: UTF-8 strings relative to the build file's directory (the project
//! root), normalised lexically, with `/` separators. A path outside the project keeps its `../`
//! (an out directory beside the project) or is absolute (a system header from a depfile). Also shell
//! quoting for commands.

use std::path::{Component, Path, PathBuf};

/// Normalises a path lexically: drops `.` and empty components and resolves `..` against what
/// precedes it. The project root itself is `.`.
pub fn normalize(path: &str) -> String {
    // Most paths are normal already: no empty, `.` or `..` component, no trailing slash.
    if !path.is_empty()
        && !path.ends_with('/')
        && path
            .split('/')
            .enumerate()
            .all(|(i, c)| (i == 0 || !c.is_empty()) && c != "." && c != "..")
    {
        return path.to_string();
    }
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// `rel` resolved against `base` (both kiln paths); an absolute `rel` stands alone.
pub fn join(base: &str, rel: &str) -> String {
    if rel.starts_with('/') || base == "." || base.is_empty() {
        normalize(rel)
    } else {
        normalize(&format!("{base}/{rel}"))
    }
}

/// Whether `path` is `dir` or lies below it (lexically; both normalised).
pub fn is_within(path: &str, dir: &str) -> bool {
    if dir == "." {
        return !path.starts_with("../") && path != ".." && !path.starts_with('/');
    }
    path == dir || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

/// Whether a normalised path escapes the project root.
pub fn is_outside_project(path: &str) -> bool {
    !is_within(path, ".")
}

/// The kiln path of an absolute path: relative when it lies under `root`, absolute otherwise.
pub fn from_absolute(root: &Path, abs: &Path) -> Option<String> {
    match abs.strip_prefix(root) {
        Ok(rel) => Some(normalize(rel.to_str()?)),
        Err(_) => Some(normalize(abs.to_str()?)),
    }
}

/// `path` (a kiln path) as an absolute path under `root`.
pub fn absolute(root: &Path, path: &str) -> PathBuf {
    if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        PathBuf::from(normalize(&format!("{}/{path}", root.display())))
    }
}

/// The path from directory `from` to `to`, both absolute and normalised, as a kiln path.
pub fn relative(from: &Path, to: &Path) -> String {
    let from: Vec<Component> = from.components().collect();
    let to_parts: Vec<Component> = to.components().collect();
    let common = from
        .iter()
        .zip(&to_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<String> = vec!["..".to_string(); from.len() - common];
    parts.extend(
        to_parts[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Replaces the suffix `ext_in` of `path` by `ext_out`.
pub fn swap_extension(path: &str, ext_in: &str, ext_out: &str) -> String {
    let stem = path.strip_suffix(ext_in).unwrap_or(path);
    format!("{stem}{ext_out}")
}

/// The parent directory of a kiln path (`.` for a top-level file).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => ".",
    }
}

fn needs_quoting(s: &str) -> bool {
    s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./+=:,@%^".contains(&b))
}

/// Appends `s` to `buf`, single-quoted for `sh` where it holds anything but safe characters.
pub fn shell_quote_into(s: &str, buf: &mut String) {
    if !needs_quoting(s) {
        buf.push_str(s);
        return;
    }
    buf.push('\'');
    for c in s.chars() {
        if c == '\'' {
            buf.push_str("'\\''");
        } else {
            buf.push(c);
        }
    }
    buf.push('\'');
}

/// `s` quoted for `sh` where needed.
pub fn shell_quote(s: &str) -> String {
    let mut buf = String::new();
    shell_quote_into(s, &mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize("./a//b/../c"), "a/c");
        assert_eq!(normalize("a/../.."), "..");
        assert_eq!(normalize("../x/../../y"), "../../y");
        assert_eq!(normalize("/a/../../b"), "/b");
        assert_eq!(normalize("a/.."), ".");
        assert_eq!(join("build", "gen/x.c"), "build/gen/x.c");
        assert_eq!(join("build", "/etc/x"), "/etc/x");
    }

    #[test]
    fn containment() {
        assert!(is_within("build/a.o", "build"));
        assert!(!is_within("builder/a.o", "build"));
        assert!(is_within("a", "."));
        assert!(!is_within("../a", "."));
        assert!(is_outside_project("/etc/passwd"));
        assert_eq!(parent("build/x/a.o"), "build/x");
        assert_eq!(parent("a.o"), ".");
    }

    #[test]
    fn relative_between_directories() {
        assert_eq!(
            relative(Path::new("/p/proj"), Path::new("/p/build-debug")),
            "../build-debug"
        );
        assert_eq!(
            relative(Path::new("/p/proj"), Path::new("/p/proj/build")),
            "build"
        );
        assert_eq!(relative(Path::new("/p/proj"), Path::new("/p/proj")), ".");
    }

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(shell_quote("build/a.o"), "build/a.o");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $x"), "'it'\\''s $x'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(swap_extension("src/a.tab.y", ".y", ".c"), "src/a.tab.c");
    }
}
