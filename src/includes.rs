//! The C/C++ include scanner (`scan = "c"`, waf's scanner methods): a file's `#include` lines,
//! the search path a compile command gives (`-I`, `-iquote`, `-isystem`), and the headers a task's
//! sources reach through them, recursively, before the task runs. What a file includes is kept by
//! the hash of its content, so a header is parsed once whatever the number of sources that include
//! it, and, through `<out>/.kiln/includes` ([`Scanner::open`], [`Scanner::save`]), once across
//! builds while its content stays the same.
//!
//! The cache file: `KILNINCL`, u32 format version, then a body of entries (the content's blake3
//! hash, its directives) and a crc32 of the body; missing, damaged or of another format, it is an
//! empty cache.
//!
//! The scan over-approximates, as waf's does: an `#include` inside `#if 0` or a branch not taken
//! counts. `#include MACRO` cannot be followed and is reported. A header found nowhere is a system
//! header (or one the compiler will not find either) and is left out. A header that another task
//! declares as its output counts as found where it will be, and is followed once it exists.

use crate::codec::{Reader, checked_body, put_crc, put_str, put_u64, replace_file};
use crate::paths;
use std::collections::{BTreeSet, HashMap};

/// One `#include` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `#include "name"`: the including file's directory first.
    Quote(String),
    /// `#include <name>`.
    Angle(String),
    /// `#include NAME`: a macro, which the scanner cannot follow.
    Macro(String),
}

/// The `#include` (and `#import`) lines of a C or C++ file, in order, comments removed.
pub fn directives(text: &[u8]) -> Vec<Directive> {
    let text = String::from_utf8_lossy(text);
    let clean = strip_comments(&text);
    let mut out = Vec::new();
    for line in clean.lines() {
        let Some(rest) = line.trim_start().strip_prefix('#') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(rest) = rest
            .strip_prefix("include_next")
            .or_else(|| rest.strip_prefix("include"))
            .or_else(|| rest.strip_prefix("import"))
        else {
            continue;
        };
        let rest = rest.trim();
        if let Some(r) = rest.strip_prefix('"') {
            if let Some(end) = r.find('"') {
                out.push(Directive::Quote(r[..end].to_string()));
            }
        } else if let Some(r) = rest.strip_prefix('<') {
            if let Some(end) = r.find('>') {
                out.push(Directive::Angle(r[..end].to_string()));
            }
        } else if !rest.is_empty() {
            out.push(Directive::Macro(rest.to_string()));
        }
    }
    out
}

/// The text with `/* */` and `//` comments blanked (newlines kept) and backslash-newline joined,
/// so that a directive is one line.
fn strip_comments(text: &str) -> String {
    let joined = text.replace("\\\r\n", "").replace("\\\n", "");
    let mut out = String::with_capacity(joined.len());
    let mut chars = joined.chars().peekable();
    let mut in_string: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == q || c == '\n' {
                in_string = None;
            }
            continue;
        }
        match c {
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
                    }
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                out.push(' ');
            }
            '/' if chars.peek() == Some(&'/') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            // `#include "a"` and `'<'` hold quotes too: a quote starts a literal only after the
            // directive's own, which `directives` reads itself; elsewhere literals are skipped so
            // that a `/*` inside one is not a comment.
            '"' | '\'' if !line_is_directive(&out) => {
                in_string = Some(c);
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Whether the line being written so far starts with `#`.
fn line_is_directive(out: &str) -> bool {
    let line = out.rsplit('\n').next().unwrap_or("");
    line.trim_start().starts_with('#')
}

/// Where a compile command looks for headers: `-iquote` directories for `"..."` only, then `-I`,
/// then `-isystem`, each a kiln path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SearchPath {
    pub quote: Vec<String>,
    pub dirs: Vec<String>,
}

impl SearchPath {
    /// The search path of a command line (shell words split on whitespace; quotes removed).
    pub fn of_command(command: &str) -> SearchPath {
        let words: Vec<&str> = command.split_whitespace().collect();
        let mut quote = Vec::new();
        let (mut normal, mut system) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let mut take = |flag: &str, into: &mut Vec<String>| -> bool {
                let Some(rest) = w.strip_prefix(flag) else {
                    return false;
                };
                let dir = if rest.is_empty() {
                    i += 1;
                    words.get(i).copied().unwrap_or("")
                } else {
                    rest
                };
                let dir = dir.trim_matches(|c| c == '\'' || c == '"');
                if !dir.is_empty() {
                    into.push(paths::normalize(dir));
                }
                true
            };
            let _ = take("-iquote", &mut quote)
                || take("-isystem", &mut system)
                || take("-I", &mut normal);
            i += 1;
        }
        normal.extend(system);
        SearchPath {
            quote,
            dirs: normal,
        }
    }
}

/// What the scanner needs of the build: what exists and what tasks will make.
pub trait Files {
    /// Whether `path` (a kiln path) is another task's declared output.
    fn is_output(&self, path: &str) -> bool;
    /// The content of `path` if it is a file that exists now.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
}

/// What a task's sources reach.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    /// Every header found (on disk, or a declared output): a file's includes in order, then
    /// what each of them includes.
    pub headers: Vec<String>,
    /// Declared outputs among them that do not exist yet, so were not followed.
    pub unfollowed: Vec<String>,
    /// `#include MACRO` lines, with the file they are in.
    pub unresolved: Vec<(String, String)>,
}

/// The scanner with its cache of what each content includes.
#[derive(Default)]
pub struct Scanner {
    directives: HashMap<blake3::Hash, Vec<Directive>>,
    /// Where the cache is kept between builds, once read from there.
    file: Option<std::path::PathBuf>,
    /// Contents parsed since it was read.
    added: usize,
    /// Contents asked for in this build.
    used: std::collections::HashSet<blake3::Hash>,
}

const MAGIC: &[u8; 8] = b"KILNINCL";
const FORMAT: u32 = 1;

impl Scanner {
    /// Reads the cache kept at `path` (once: later calls do nothing), so that contents parsed
    /// in earlier builds are not parsed again.
    pub fn open(&mut self, path: &std::path::Path) {
        if self.file.is_some() {
            return;
        }
        self.file = Some(path.to_path_buf());
        let Ok(bytes) = std::fs::read(path) else {
            return;
        };
        if let Some(entries) = read_cache(&bytes) {
            for (k, v) in entries {
                self.directives.entry(k).or_insert(v);
            }
        }
    }

    /// Writes the cache back where it was read from, if anything was parsed since.
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        if self.added == 0 {
            return Ok(());
        }
        let mut buf = Vec::new();
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&FORMAT.to_le_bytes());
        let body_at = buf.len();
        // Old contents are dropped once they outnumber this build's twice over (and 10,000).
        let keep_all = self.directives.len() <= 2 * self.used.len() + 10_000;
        let kept: Vec<(&blake3::Hash, &Vec<Directive>)> = self
            .directives
            .iter()
            .filter(|(h, _)| keep_all || self.used.contains(*h))
            .collect();
        put_u64(&mut buf, kept.len() as u64);
        for (hash, list) in kept {
            buf.extend_from_slice(hash.as_bytes());
            put_u64(&mut buf, list.len() as u64);
            for d in list {
                let (tag, text) = match d {
                    Directive::Quote(t) => (0, t),
                    Directive::Angle(t) => (1, t),
                    Directive::Macro(t) => (2, t),
                };
                put_u64(&mut buf, tag);
                put_str(&mut buf, text);
            }
        }
        put_crc(&mut buf, body_at);
        replace_file(path, &buf)
    }

    /// How many distinct contents have been parsed.
    #[cfg(test)]
    pub fn parsed(&self) -> usize {
        self.directives.len()
    }

    fn directives_of(&mut self, content: &[u8]) -> &[Directive] {
        let key = blake3::hash(content);
        self.used.insert(key);
        self.directives.entry(key).or_insert_with(|| {
            crate::stats::count("includes parsed", 1);
            self.added += 1;
            directives(content)
        })
    }

    /// The headers `sources` reach through `search`, recursively. The sources themselves are
    /// not among them.
    pub fn scan(&mut self, sources: &[&str], search: &SearchPath, files: &dyn Files) -> Found {
        let mut found = Found::default();
        let mut seen: BTreeSet<String> = sources.iter().map(|s| s.to_string()).collect();
        let mut stack: Vec<String> = sources.iter().rev().map(|s| s.to_string()).collect();
        while let Some(file) = stack.pop() {
            let Some(content) = files.read(&file) else {
                continue;
            };
            let dir = paths::parent(&file).to_string();
            let list = self.directives_of(&content).to_vec();
            let mut next = Vec::new();
            for d in list {
                let (name, quoted) = match &d {
                    Directive::Quote(n) => (n, true),
                    Directive::Angle(n) => (n, false),
                    Directive::Macro(m) => {
                        found.unresolved.push((file.clone(), m.clone()));
                        continue;
                    }
                };
                let Some(path) = resolve(name, quoted, &dir, search, files) else {
                    continue;
                };
                if seen.insert(path.clone()) {
                    found.headers.push(path.clone());
                    if files.read(&path).is_some() {
                        next.push(path);
                    } else {
                        found.unfollowed.push(path);
                    }
                }
            }
            stack.extend(next.into_iter().rev());
        }
        found
    }
}

/// The entries of a cache file, if it is whole and of this format.
fn read_cache(bytes: &[u8]) -> Option<Vec<(blake3::Hash, Vec<Directive>)>> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (format, rest) = rest.split_at_checked(4)?;
    if format != FORMAT.to_le_bytes() {
        return None;
    }
    let mut r = Reader::new(checked_body(rest)?);
    let mut entries = Vec::new();
    for _ in 0..r.read_len()? {
        let hash = blake3::Hash::from_bytes(r.take(32)?.try_into().ok()?);
        let mut list = Vec::new();
        for _ in 0..r.read_len()? {
            let tag = r.u64()?;
            let text = r.str()?;
            list.push(match tag {
                0 => Directive::Quote(text),
                1 => Directive::Angle(text),
                2 => Directive::Macro(text),
                _ => return None,
            });
        }
        entries.push((hash, list));
    }
    r.at_end().then_some(entries)
}

/// Where `name` is found: the including file's directory first for `"..."`, then `-iquote`
/// (for `"..."`), `-I` and `-isystem` directories; a declared output counts as found.
fn resolve(
    name: &str,
    quoted: bool,
    dir: &str,
    search: &SearchPath,
    files: &dyn Files,
) -> Option<String> {
    if name.starts_with('/') {
        let p = paths::normalize(name);
        return (files.is_output(&p) || files.read(&p).is_some()).then_some(p);
    }
    let local = quoted.then_some(dir);
    let quote_dirs = search.quote.iter().filter(|_| quoted).map(String::as_str);
    for d in local
        .into_iter()
        .chain(quote_dirs)
        .chain(search.dirs.iter().map(String::as_str))
    {
        let p = paths::join(d, name);
        if files.is_output(&p) || files.read(&p).is_some() {
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn directives_are_read_through_comments_and_continuations() {
        let text = b"#include \"a.h\"\n  #  include <b/c.h>\n// #include \"no.h\"\n/* #include \"no2.h\"\n */ #include \"d.h\"\n#if 0\n#include \"e.h\"\n#endif\n#include HEADER\n#inc\\\nlude \"f.h\"\nconst char *s = \"/* not a comment\";\n#include \"g.h\"\n#import \"h.h\"\n";
        assert_eq!(
            directives(text),
            vec![
                Directive::Quote("a.h".into()),
                Directive::Angle("b/c.h".into()),
                Directive::Quote("d.h".into()),
                Directive::Quote("e.h".into()),
                Directive::Macro("HEADER".into()),
                Directive::Quote("f.h".into()),
                Directive::Quote("g.h".into()),
                Directive::Quote("h.h".into()),
            ]
        );
    }

    #[test]
    fn a_search_path_comes_from_the_command() {
        let s = SearchPath::of_command(
            "cc -O2 -Iinclude -I build/gen -iquote q -isystem sys -I./x/../y -c a.c",
        );
        assert_eq!(s.quote, vec!["q"]);
        assert_eq!(s.dirs, vec!["include", "build/gen", "y", "sys"]);
    }

    struct Fake {
        files: BTreeMap<&'static str, &'static str>,
        outputs: Vec<&'static str>,
    }

    impl Files for Fake {
        fn is_output(&self, path: &str) -> bool {
            self.outputs.contains(&path)
        }
        fn read(&self, path: &str) -> Option<Vec<u8>> {
            self.files.get(path).map(|s| s.as_bytes().to_vec())
        }
    }

    #[test]
    fn headers_are_followed_through_the_search_path_and_generated_ones_wait() {
        let fake = Fake {
            files: BTreeMap::from([
                ("src/a.c", "#include \"local.h\"\n#include <lib.h>\n#include <stdio.h>\n#include \"gen.h\"\n#include NAME\n"),
                ("src/local.h", "#include \"local.h\"\n#include \"other.h\"\n"),
                ("src/other.h", "#include \"local.h\"\n"),
                ("include/lib.h", "#include \"detail/d.h\"\n"),
                ("include/detail/d.h", ""),
            ]),
            outputs: vec!["build/gen.h"],
        };
        let search = SearchPath::of_command("cc -Iinclude -Ibuild -c src/a.c");
        let mut scanner = Scanner::default();
        let found = scanner.scan(&["src/a.c"], &search, &fake);
        assert_eq!(
            found.headers,
            vec![
                "src/local.h",
                "include/lib.h",
                "build/gen.h",
                "src/other.h",
                "include/detail/d.h",
            ]
        );
        assert_eq!(found.unfollowed, vec!["build/gen.h"]);
        assert_eq!(
            found.unresolved,
            vec![("src/a.c".to_string(), "NAME".to_string())]
        );
        // Each content parsed once: a.c, local.h, other.h, lib.h, d.h ("" once).
        assert_eq!(scanner.parsed(), 5);
    }

    #[test]
    fn what_each_content_includes_is_kept_between_builds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("includes");
        let text = b"#include \"a.h\"\n#include <b.h>\n#include NAME\n";
        let mut first = Scanner::default();
        first.open(&path);
        first.directives_of(text);
        assert_eq!(first.added, 1);
        first.save().unwrap();
        let mut second = Scanner::default();
        second.open(&path);
        assert_eq!(second.directives_of(text), directives(text).as_slice());
        assert_eq!(second.added, 0, "read back, not parsed again");
        // A damaged file is an empty cache.
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 8;
        bytes[at] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let mut third = Scanner::default();
        third.open(&path);
        third.directives_of(text);
        assert_eq!(third.added, 1);
    }
}
