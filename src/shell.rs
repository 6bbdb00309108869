//! Reading a command line as `sh` would, without running it: its simple commands (the parts between
//! `&&`, `||`, `;`, `|`, `&`, newlines and parentheses), each as the words the program would get.
//! Quotes and backslashes are removed as the shell removes them; redirections (`> f`, `2>&1`,
//! `<f`) and the variable assignments before a command (`LANG=C cc ...`) are set aside, since they
//! are not arguments. Expansions (`$X`, `` `cmd` ``, globs) are left as written: kiln has already
//! expanded its own `${...}`, and what is left is for the shell to decide when it runs.

/// One simple command of a line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Simple {
    /// `NAME=value` words before the program.
    pub assignments: Vec<String>,
    /// The program and its arguments.
    pub words: Vec<String>,
}

/// A lexical piece of a command line.
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    /// An operator that ends a simple command.
    Control,
    /// A redirection operator; `true` when its target is the next word (`>` but not `>&1`).
    Redirect(bool),
}

/// The simple commands of `line`, in order; empty ones (`a ;; b`, a trailing `&`) are left out.
pub fn simple_commands(line: &str) -> Vec<Simple> {
    let mut out = Vec::new();
    let mut current = Simple::default();
    let mut redirect_target = false;
    for token in tokens(line) {
        match token {
            Token::Word(w) => {
                if redirect_target {
                    redirect_target = false;
                } else if current.words.is_empty() && is_assignment(&w) {
                    current.assignments.push(w);
                } else {
                    current.words.push(w);
                }
            }
            Token::Redirect(takes_next) => redirect_target = takes_next,
            Token::Control => {
                redirect_target = false;
                if !current.words.is_empty() {
                    out.push(std::mem::take(&mut current));
                } else {
                    current = Simple::default();
                }
            }
        }
    }
    if !current.words.is_empty() {
        out.push(current);
    }
    out
}

/// `NAME=value` with NAME a shell identifier.
fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        None => false,
    }
}

fn tokens(line: &str) -> Vec<Token> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    // Whether a word has started (`''` is an empty word).
    let mut in_word = false;
    let mut i = 0;
    let finish = |word: &mut String, in_word: &mut bool, out: &mut Vec<Token>| {
        if *in_word {
            out.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => finish(&mut word, &mut in_word, &mut out),
            '\n' | ';' | '(' | ')' => {
                finish(&mut word, &mut in_word, &mut out);
                out.push(Token::Control);
            }
            '&' | '|' => {
                finish(&mut word, &mut in_word, &mut out);
                // `&&`, `||`, `|`, `&`; `|&` (bash) too.
                if chars.get(i + 1).is_some_and(|&n| n == c || n == '&') {
                    i += 1;
                }
                out.push(Token::Control);
            }
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '<' | '>' => {
                // An all-digit word just before is the redirected descriptor (`2>`).
                if in_word && word.bytes().all(|b| b.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                finish(&mut word, &mut in_word, &mut out);
                let mut j = i + 1;
                // `>>`, `<<`, `<>`, `>|`
                if chars
                    .get(j)
                    .is_some_and(|&n| n == c || (c == '<' && n == '>') || (c == '>' && n == '|'))
                {
                    j += 1;
                }
                if chars.get(j) == Some(&'&') {
                    // `>&2`, `2>&1`, `<&-`: the descriptor is part of the operator.
                    j += 1;
                    while chars
                        .get(j)
                        .is_some_and(|n| n.is_ascii_digit() || *n == '-')
                    {
                        j += 1;
                    }
                    out.push(Token::Redirect(false));
                } else {
                    out.push(Token::Redirect(true));
                }
                i = j;
                continue;
            }
            '\\' => {
                match chars.get(i + 1) {
                    // A line continuation: it joins, and starts no word.
                    Some('\n') => {}
                    Some(&n) => {
                        in_word = true;
                        word.push(n);
                    }
                    None => {
                        in_word = true;
                        word.push('\\');
                    }
                }
                i += 2;
                continue;
            }
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\'
                        && chars
                            .get(i + 1)
                            .is_some_and(|n| matches!(n, '$' | '`' | '"' | '\\' | '\n'))
                    {
                        if chars[i + 1] != '\n' {
                            word.push(chars[i + 1]);
                        }
                        i += 2;
                        continue;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
        i += 1;
    }
    finish(&mut word, &mut in_word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<String>> {
        simple_commands(line).into_iter().map(|s| s.words).collect()
    }

    #[test]
    fn a_plain_command_splits_at_blanks() {
        assert_eq!(
            words("cc  -c\ta.c -o a.o"),
            [["cc", "-c", "a.c", "-o", "a.o"]]
        );
    }

    #[test]
    fn quotes_and_backslashes_are_removed_as_the_shell_removes_them() {
        assert_eq!(
            words(r#"cc '-DNAME="x y"' "-DP=\"a\\b\" \$HOME" a\ b.c ''"#),
            [[
                "cc",
                r#"-DNAME="x y""#,
                r#"-DP="a\b" $HOME"#,
                "a b.c",
                ""
            ]]
        );
    }

    #[test]
    fn a_chain_is_cut_into_its_simple_commands() {
        assert_eq!(
            words("mkdir -p d && cc -c a.c -o d/a.o || (echo failed; exit 1) | tee log & wait"),
            vec![
                vec!["mkdir", "-p", "d"],
                vec!["cc", "-c", "a.c", "-o", "d/a.o"],
                vec!["echo", "failed"],
                vec!["exit", "1"],
                vec!["tee", "log"],
                vec!["wait"],
            ]
        );
    }

    #[test]
    fn redirections_and_assignments_are_not_arguments() {
        let s = simple_commands("LANG=C X=1 cc -c a.c 2>&1 >log 2> err <in -o a.o # note");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].assignments, ["LANG=C", "X=1"]);
        assert_eq!(s[0].words, ["cc", "-c", "a.c", "-o", "a.o"]);
        // An `=` after the program is an argument.
        assert_eq!(words("cc -DX=1 a.c"), [["cc", "-DX=1", "a.c"]]);
    }

    #[test]
    fn a_line_continuation_joins_lines() {
        assert_eq!(words("cc -c \\\n a.c"), [["cc", "-c", "a.c"]]);
    }
}
