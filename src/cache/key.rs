//! A task's cache key, and the paths of an entry as every checkout can read them.
//!
//! The key covers what the task's signature covers except implicit dependencies: its expanded
//! commands, the env values they use (and `vars`), each input's and manual dependency's path and
//! content, its declared outputs' paths; plus the cache format, the OS and architecture, and the
//! identity (resolved path and content) of each program its commands start. Two checkouts share
//! keys: the project root's absolute path is written `${ROOT}` wherever it appears, and the build
//! directory `${OUT}` where a path word starts with it (`build/a.o`, `-Ibuild`, `-MF=build/a.d`).

use super::Key;
use crate::filestate::Hash;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Changes when what a key covers, or an entry's form, changes.
pub const FORMAT: u32 = 1;

/// What a task's key is made of, as the build knows it.
pub struct Parts<'a> {
    pub commands: &'a [String],
    pub env: &'a [(String, String)],
    /// Inputs and manual dependencies: kiln path and content hash.
    pub reads: Vec<(&'a str, Hash)>,
    pub outputs: Vec<&'a str>,
}

/// Computes keys for one project and build directory.
pub struct Keyer {
    root: String,
    out: String,
    /// Programs by the name a command starts them with: resolved path and content hash (None:
    /// not found, or a shell builtin), looked up once per build.
    programs: Mutex<HashMap<String, Option<(PathBuf, Hash)>>>,
    path_var: Option<std::ffi::OsString>,
}

impl Keyer {
    /// For the project at `root` (absolute) building into `out` (a kiln path).
    pub fn new(root: &Path, out: &str) -> Keyer {
        Keyer {
            root: root.to_string_lossy().into_owned(),
            out: out.trim_end_matches('/').to_string(),
            programs: Mutex::new(HashMap::new()),
            path_var: std::env::var_os("PATH"),
        }
    }

    /// The key of a task.
    pub fn key(&self, parts: &Parts) -> Key {
        let mut h = blake3::Hasher::new();
        let mut put = |bytes: &[u8]| {
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        put(b"kiln cache key");
        put(&FORMAT.to_le_bytes());
        put(std::env::consts::OS.as_bytes());
        put(std::env::consts::ARCH.as_bytes());
        put(&(parts.commands.len() as u64).to_le_bytes());
        for c in parts.commands {
            put(self.text(c).as_bytes());
            for program in programs(c) {
                put(program.as_bytes());
                match self.program(&program) {
                    Some((path, hash)) => {
                        // A tool of the project's own is named from the root.
                        put(self.text(&path.to_string_lossy()).as_bytes());
                        put(&hash);
                    }
                    None => put(b"-"),
                }
            }
        }
        put(&(parts.env.len() as u64).to_le_bytes());
        for (k, v) in parts.env {
            put(k.as_bytes());
            put(self.text(v).as_bytes());
        }
        put(&(parts.reads.len() as u64).to_le_bytes());
        for (p, hash) in &parts.reads {
            put(self.path(p).as_bytes());
            put(hash);
        }
        put(&(parts.outputs.len() as u64).to_le_bytes());
        for p in &parts.outputs {
            put(self.path(p).as_bytes());
        }
        Key(*h.finalize().as_bytes())
    }

    /// `text` with the project root written `${ROOT}` and the build directory `${OUT}` where a
    /// path word starts with it.
    pub fn text(&self, text: &str) -> String {
        let text = text.replace(&self.root, "${ROOT}");
        if self.out.is_empty() || self.out == "." {
            return text;
        }
        let bytes = text.as_bytes();
        let out = self.out.as_bytes();
        let mut result = String::with_capacity(text.len());
        let mut i = 0;
        let mut last = 0;
        while i + out.len() <= bytes.len() {
            if &bytes[i..i + out.len()] == out && starts_word(bytes, i) && ends_word(bytes, i + out.len())
            {
                result.push_str(&text[last..i]);
                result.push_str("${OUT}");
                i += out.len();
                last = i;
            } else {
                i += 1;
            }
        }
        result.push_str(&text[last..]);
        result
    }

    /// A kiln path as an entry writes it: `${OUT}/...` under the build directory.
    pub fn path(&self, path: &str) -> String {
        if path == self.out {
            "${OUT}".to_string()
        } else if let Some(rest) = path.strip_prefix(&self.out).filter(|r| r.starts_with('/')) {
            format!("${{OUT}}{rest}")
        } else {
            path.to_string()
        }
    }

    /// The kiln path an entry's path names in this checkout.
    pub fn unpath(&self, path: &str) -> String {
        match path.strip_prefix("${OUT}") {
            Some(rest) => format!("{}{rest}", self.out),
            None => path.to_string(),
        }
    }

    fn program(&self, name: &str) -> Option<(PathBuf, Hash)> {
        let mut programs = self.programs.lock().unwrap_or_else(|e| e.into_inner());
        programs
            .entry(name.to_string())
            .or_insert_with(|| {
                let path = if name.contains('/') {
                    let p = Path::new(&self.root).join(name);
                    p.is_file().then_some(p)?
                } else {
                    crate::runner::direct::resolve(name, self.path_var.as_deref()?)?
                };
                let hash = crate::filestate::hash_file(&path).ok()?;
                Some((path, hash))
            })
            .clone()
    }
}

/// The programs a command line starts: the first word of each of its simple commands.
fn programs(command: &str) -> Vec<String> {
    crate::shell::simple_commands(command)
        .into_iter()
        .filter_map(|s| s.words.into_iter().next())
        .collect()
}

/// Whether a path word may start at `i`: at the start, after a blank, quote, `=`, `,` or `:`, or
/// after a one-letter option (`-I`, `-L`, `-o`) that does.
fn starts_word(bytes: &[u8], i: usize) -> bool {
    let delimiter = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'"' | b'\'' | b'=' | b',' | b':' | b'(' | b';');
    if i == 0 || delimiter(bytes[i - 1]) {
        return true;
    }
    i >= 2
        && bytes[i - 1].is_ascii_alphabetic()
        && bytes[i - 2] == b'-'
        && (i == 2 || delimiter(bytes[i - 3]))
}

/// Whether a path word naming the build directory may end at `i`: at the end, a `/`, or a
/// delimiter.
fn ends_word(bytes: &[u8], i: usize) -> bool {
    i == bytes.len()
        || matches!(bytes[i], b'/' | b' ' | b'\t' | b'\n' | b'"' | b'\'' | b',' | b':' | b';' | b')')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyer(out: &str) -> Keyer {
        Keyer::new(Path::new("/home/ann/proj"), out)
    }

    #[test]
    fn the_root_and_the_build_directory_are_left_out() {
        let k = keyer("build");
        assert_eq!(
            k.text("cc -Ibuild -MF build/a.o.d -c a.c -o build/a.o -fdebug-prefix-map=/home/ann/proj=."),
            "cc -I${OUT} -MF ${OUT}/a.o.d -c a.c -o ${OUT}/a.o -fdebug-prefix-map=${ROOT}=."
        );
        // Words that only contain the name are left alone.
        assert_eq!(k.text("buildvm mybuild/x build2 -xxbuild"), "buildvm mybuild/x build2 -xxbuild");
        let other = keyer("../out-debug");
        assert_eq!(
            other.text("cc -I../out-debug -o ../out-debug/a.o"),
            "cc -I${OUT} -o ${OUT}/a.o"
        );
        assert_eq!(k.path("build/src/a.o"), "${OUT}/src/a.o");
        assert_eq!(k.path("buildx/a"), "buildx/a");
        assert_eq!(other.unpath("${OUT}/src/a.o"), "../out-debug/src/a.o");
    }

    #[test]
    fn two_checkouts_with_other_build_directories_share_a_key() {
        let a = Keyer::new(Path::new("/a/proj"), "build");
        let b = Keyer::new(Path::new("/b/elsewhere"), "out2");
        let h = [7u8; 32];
        let ka = a.key(&Parts {
            commands: &["cc -Ibuild -c x.c -o build/x.o -g -fdebug-prefix-map=/a/proj=.".into()],
            env: &[("CFLAGS".into(), "-g".into())],
            reads: vec![("x.c", h)],
            outputs: vec!["build/x.o"],
        });
        let kb = b.key(&Parts {
            commands: &["cc -Iout2 -c x.c -o out2/x.o -g -fdebug-prefix-map=/b/elsewhere=.".into()],
            env: &[("CFLAGS".into(), "-g".into())],
            reads: vec![("x.c", h)],
            outputs: vec!["out2/x.o"],
        });
        assert_eq!(ka, kb);
        let kc = b.key(&Parts {
            commands: &["cc -Iout2 -c x.c -o out2/x.o -g -fdebug-prefix-map=/b/elsewhere=.".into()],
            env: &[("CFLAGS".into(), "-g".into())],
            reads: vec![("x.c", [8u8; 32])],
            outputs: vec!["out2/x.o"],
        });
        assert_ne!(kb, kc);
    }
}
