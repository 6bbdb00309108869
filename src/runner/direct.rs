//! Commands that need no shell. A command made only of plain words (letters, digits and
//! `_ . / , : = + @ % ^ -`), naming a program that is not a shell builtin or keyword, with at most
//! a `> FILE` or `>> FILE` at its end, means the same to `sh -c` as to `execvp`: the shell would
//! split it at spaces, open the file and exec the program. kiln runs such a command directly,
//! saving a shell's start per command (waf runs its commands without a shell in the same way);
//! anything else, or a direct start that fails, goes through `/bin/sh -c` as written.

/// A command to run without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direct<'a> {
    /// The program and its arguments.
    pub argv: Vec<&'a str>,
    /// Where stdout goes, and whether it is appended to.
    pub stdout: Option<(&'a str, bool)>,
}

/// What dash and bash treat as builtins or reserved words: these keep their shell meaning.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "[", "alias", "bg", "break", "case", "cd", "chdir", "command", "continue", "do",
    "done", "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc", "fg",
    "fi", "for", "function", "getopts", "hash", "if", "in", "jobs", "kill", "local", "printf",
    "pwd", "read", "readonly", "return", "select", "set", "shift", "source", "test", "then",
    "time", "times", "trap", "true", "type", "typeset", "ulimit", "umask", "unalias", "unset",
    "until", "wait", "while",
];

fn plain_word(w: &str) -> bool {
    !w.is_empty()
        && w.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'.' | b'/' | b',' | b':' | b'=' | b'+' | b'@' | b'%' | b'^' | b'-'
                )
        })
}

/// The command as a program and arguments, if the shell would run it as exactly that.
pub fn parse(command: &str) -> Option<Direct<'_>> {
    let words: Vec<&str> = command.split(' ').filter(|w| !w.is_empty()).collect();
    let (argv, stdout) = match words.as_slice() {
        [argv @ .., op, file] if *op == ">" || *op == ">>" => (argv, Some((*file, *op == ">>"))),
        argv => (argv, None),
    };
    let program = *argv.first()?;
    if program.contains('=') || SHELL_WORDS.contains(&program) {
        return None;
    }
    if !argv.iter().all(|w| plain_word(w)) || !stdout.is_none_or(|(f, _)| plain_word(f)) {
        return None;
    }
    Some(Direct {
        argv: argv.to_vec(),
        stdout,
    })
}

/// Where `execvp` would find `program` along `path` (the `PATH` value): the first regular file
/// with an execute bit. `None` for a name with a `/`, a `PATH` with a relative (or empty) entry,
/// or no such file; the caller then leaves the search to `execvp` or the shell.
pub fn resolve(program: &str, path: &std::ffi::OsStr) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return None;
    }
    let dirs: Vec<std::path::PathBuf> = std::env::split_paths(path).collect();
    if dirs.iter().any(|d| !d.is_absolute()) {
        return None;
    }
    dirs.into_iter().map(|d| d.join(program)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_commands_run_directly() {
        assert_eq!(
            parse("cat src/a.c src/a.h > out/a.o"),
            Some(Direct {
                argv: vec!["cat", "src/a.c", "src/a.h"],
                stdout: Some(("out/a.o", false)),
            })
        );
        assert_eq!(
            parse("gcc -O2 -c src/a.c -o out/a.o -MD -MF out/a.d"),
            Some(Direct {
                argv: vec![
                    "gcc", "-O2", "-c", "src/a.c", "-o", "out/a.o", "-MD", "-MF", "out/a.d"
                ],
                stdout: None,
            })
        );
        assert_eq!(
            parse("./gen.sh  x >> log"),
            Some(Direct {
                argv: vec!["./gen.sh", "x"],
                stdout: Some(("log", true)),
            })
        );
    }

    #[test]
    fn programs_are_found_along_an_absolute_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("tool"), "").unwrap(); // not executable: passed over
        std::fs::write(b.join("tool"), "").unwrap();
        let exe = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(b.join("tool"), exe).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(resolve("tool", &path), Some(b.join("tool")));
        assert_eq!(resolve("missing", &path), None);
        assert_eq!(resolve("./tool", &path), None);
        let relative = std::env::join_paths([std::path::Path::new("bin"), &b]).unwrap();
        assert_eq!(resolve("tool", &relative), None);
    }

    #[test]
    fn anything_the_shell_reads_differently_goes_to_the_shell() {
        for c in [
            "",
            "   ",
            "echo hi > x",
            "true",
            "cd sub",
            "CC=gcc make",
            "cat a | wc",
            "cat a; cat b",
            "cat 'a b' > c",
            "cat \"a\" > c",
            "cat $X > c",
            "cat ${SRC}",
            "cat a* > c",
            "cat a? > c",
            "cat [ab] > c",
            "cat ~/x > c",
            "cat a # comment",
            "cat a > b > c",
            "cat a >",
            "cat a 2> err",
            "cat < a",
            "cat a && cat b",
            "cat a\ncat b",
            "cat\ta",
            "cat a\\ b",
            "cat `x`",
            "(cat a)",
            "cat {a,b}",
            "! cat a",
            "for x in a; do cat $x; done",
            "cat é",
        ] {
            assert_eq!(parse(c), None, "{c:?}");
        }
    }
}
