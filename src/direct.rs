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
