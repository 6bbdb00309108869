//! Depfiles: the implicit dependencies a command reports in the Makefile syntax gcc and clang write
//! (`-MD`, `-MMD`, `-MP`). Several rules and several targets per rule (`a.o:a.c` too), `\` line continuations, CRLF
//! line ends, `\ ` for a space in a name (2N+1 backslashes and a space are N backslashes and a
//! space; 2N backslashes end the name), `\#` for `#`, `$$` for `$`, and `#` comments. The result is
//! every prerequisite of every rule, in order of first appearance.

/// Parses a depfile's text into the prerequisites it names.
pub fn parse(text: &[u8]) -> Result<Vec<String>, String> {
    let mut deps: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut in_prereqs = false;
    let mut i = 0;
    let n = text.len();
    while i < n {
        let c = text[i];
        match c {
            b' ' | b'\t' | b'\r' => i += 1,
            b'\n' => {
                in_prereqs = false;
                i += 1;
            }
            b'\\' if continuation_at(text, i).is_some() => {
                i = continuation_at(text, i).unwrap_or(i + 1)
            }
            b'#' => {
                while i < n && text[i] != b'\n' {
                    i += 1;
                }
            }
            _ => {
                let (token, is_target, next) = token(text, i, !in_prereqs);
                i = next;
                if is_target {
                    if in_prereqs {
                        // "a: b c: d" is not a rule gcc writes.
                        return Err(format!("unexpected `:` after `{token}`"));
                    }
                    in_prereqs = true;
                } else if in_prereqs {
                    if !token.is_empty() && seen.insert(token.clone()) {
                        deps.push(token);
                    }
                } else {
                    // A target among several of one rule: skip until its colon.
                    let rest = next_target_colon(text, i);
                    if rest.is_none() {
                        return Err(format!("expected `:` after `{token}`"));
                    }
                }
            }
        }
    }
    Ok(deps)
}

/// If a backslash at `i` starts a line continuation, the index after it.
fn continuation_at(text: &[u8], i: usize) -> Option<usize> {
    match (text.get(i + 1), text.get(i + 2)) {
        (Some(b'\n'), _) => Some(i + 2),
        (Some(b'\r'), Some(b'\n')) => Some(i + 3),
        _ => None,
    }
}

/// Whether a `:` follows later on the same logical line (for multi-target rules).
fn next_target_colon(text: &[u8], mut i: usize) -> Option<()> {
    while i < text.len() {
        match text[i] {
            b'\n' => return None,
            b'\\' if continuation_at(text, i).is_some() => i = continuation_at(text, i)?,
            b' ' | b'\t' | b'\r' => i += 1,
            _ => {
                let (_, is_target, next) = token(text, i, true);
                if is_target {
                    return Some(());
                }
                i = next;
            }
        }
    }
    None
}

/// Reads one name starting at `i`: its text, whether it ended with a target's `:`, and where the
/// scan stopped. Where a target may stand, a `:` ends it even without a space after it
/// (`a.o:a.c`), except before `\` or `/` (a drive letter, `c:\path`).
fn token(text: &[u8], mut i: usize, target_position: bool) -> (String, bool, usize) {
    let mut out: Vec<u8> = Vec::new();
    let n = text.len();
    while i < n {
        let c = text[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => break,
            b'\\' => {
                let start = i;
                while i < n && text[i] == b'\\' {
                    i += 1;
                }
                let count = i - start;
                match text.get(i) {
                    Some(b' ') => {
                        out.extend(std::iter::repeat_n(b'\\', count / 2));
                        if count % 2 == 1 {
                            out.push(b' ');
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    Some(b'#') if count % 2 == 1 => {
                        out.extend(std::iter::repeat_n(b'\\', count / 2));
                        out.push(b'#');
                        i += 1;
                    }
                    Some(b'\n') => {
                        // The last backslash continues the line.
                        out.extend(std::iter::repeat_n(b'\\', count - 1));
                        i -= 1;
                        break;
                    }
                    Some(b'\r') if text.get(i + 1) == Some(&b'\n') => {
                        out.extend(std::iter::repeat_n(b'\\', count - 1));
                        i -= 1;
                        break;
                    }
                    _ => out.extend(std::iter::repeat_n(b'\\', count)),
                }
            }
            b'$' if text.get(i + 1) == Some(&b'$') => {
                out.push(b'$');
                i += 2;
            }
            b':' if matches!(text.get(i + 1), None | Some(b' ' | b'\t' | b'\n' | b'\r'))
                || (target_position && !matches!(text.get(i + 1), Some(b'\\' | b'/'))) =>
            {
                return (String::from_utf8_lossy(&out).into_owned(), true, i + 1);
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), false, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(text: &str) -> Vec<String> {
        parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn gcc_mmd_with_continuations() {
        assert_eq!(
            deps("build/src/main.o: src/main.c include/greet.h \\\n  build/version.h\n"),
            vec!["src/main.c", "include/greet.h", "build/version.h"]
        );
    }

    #[test]
    fn several_targets_and_rules_and_phony_headers() {
        assert_eq!(deps("a.o a.d: a.c a.h\n\na.h:\nb.h:\n"), vec!["a.c", "a.h"]);
        assert_eq!(deps("a.o: a.c\nb.o: b.c a.c\n"), vec!["a.c", "b.c"]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            deps("a.o: my\\ file.h dollar$$sign.h hash\\#.h\n"),
            vec!["my file.h", "dollar$sign.h", "hash#.h"]
        );
        assert_eq!(deps("a.o: two\\\\ spaces.h\n"), vec!["two\\", "spaces.h"]);
        assert_eq!(deps("a.o: three\\\\\\ x.h\n"), vec!["three\\ x.h"]);
        assert_eq!(deps("a.o: c:\\path\\x.h\n"), vec!["c:\\path\\x.h"]);
        assert_eq!(deps("a.o:a.c b.h\n"), vec!["a.c", "b.h"]);
        assert_eq!(deps("a.o: x:y.h\n"), vec!["x:y.h"]);
    }

    #[test]
    fn crlf_comments_and_empty() {
        assert_eq!(deps("a.o: a.c \\\r\n b.h\r\n"), vec!["a.c", "b.h"]);
        assert_eq!(deps("# generated\na.o: a.c\n"), vec!["a.c"]);
        assert!(deps("").is_empty());
        assert!(deps("a.o:\n").is_empty());
    }

    #[test]
    fn rejects_what_is_not_a_depfile() {
        assert!(parse(b"just some words\n").is_err());
    }
}
