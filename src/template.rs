//! Scriptlets: the `${...}` templates of commands, depfiles, sources and targets. A template is
//! parsed once into pieces; expanding it substitutes `${SRC}`, `${TGT}`, `${SRC[i]}`, `${TGT[i]}`,
//! `${OUT}`, `${NAME}` (an env value, list items joined by one space) and `${A:B}` (each item of B
//! through the format A, which contains `%s`). `$${` is a literal `${`. Paths are shell-quoted in
//! commands; env values are inserted as they are.

use crate::paths;
use std::fmt;

/// Names that are not env values.
pub const RESERVED: [&str; 3] = ["SRC", "TGT", "OUT"];

/// Looks up env values by name.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<&[String]>;
}

/// The paths a task's template may refer to, relative to the build file's directory.
pub struct Paths<'a> {
    pub src: &'a [&'a str],
    pub tgt: &'a [&'a str],
    pub out: &'a str,
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<(usize, Piece)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    List(List),
    At(List, usize),
    /// `${SRC[a:b]}`: the items from `a` up to (not including) `b`; either may be left out, and a
    /// negative bound counts from the end, as in Python.
    Slice(List, Option<i64>, Option<i64>),
    Var(String),
    Map(String, List),
}

/// Something that expands to a list of items.
#[derive(Debug, Clone, PartialEq)]
enum List {
    Src,
    Tgt,
    Out,
    Var(String),
}

/// What went wrong parsing or expanding, at a byte offset of the template text.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub offset: usize,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    Unclosed,
    Invalid(String),
    Undefined(String),
    OutOfRange {
        list: &'static str,
        index: usize,
        len: usize,
    },
    NoPercent(String),
    PathsNotAllowed(&'static str),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Unclosed => write!(
                f,
                "unclosed `${{`: expected `}}` (write `$${{` for a literal `${{`)"
            ),
            ErrorKind::Invalid(s) => write!(
                f,
                "invalid substitution `${{{s}}}`: expected `${{NAME}}`, `${{SRC}}`, `${{TGT}}`, `${{SRC[0]}}`, `${{SRC[1:]}}`, `${{OUT}}` or `${{FORMAT:LIST}}`"
            ),
            ErrorKind::Undefined(name) => write!(f, "undefined variable `${{{name}}}`"),
            ErrorKind::OutOfRange { list, index, len } => write!(
                f,
                "`${{{list}[{index}]}}` is out of range: the task has {len} {}",
                if *list == "SRC" {
                    plural(*len, "input")
                } else {
                    plural(*len, "output")
                }
            ),
            ErrorKind::NoPercent(name) => write!(
                f,
                "the format `{name}` in `${{{name}:...}}` must contain `%s`"
            ),
            ErrorKind::PathsNotAllowed(name) => {
                write!(
                    f,
                    "`${{{name}}}` cannot be used here: only env values and `${{OUT}}` can"
                )
            }
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_list(s: &str) -> Option<List> {
    match s {
        "SRC" => Some(List::Src),
        "TGT" => Some(List::Tgt),
        "OUT" => Some(List::Out),
        _ if is_name(s) => Some(List::Var(s.to_string())),
        _ => None,
    }
}

/// A slice bound: empty (`None` inside `Some`), or an integer that may be negative.
fn parse_bound(s: &str) -> Option<Option<i64>> {
    if s.is_empty() {
        return Some(None);
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().map(Some)
}

/// The range of `len` items that a slice's bounds select, clamped as Python clamps it.
fn slice_range(len: usize, from: Option<i64>, to: Option<i64>) -> std::ops::Range<usize> {
    let at = |bound: i64| -> usize {
        let len = len as i64;
        (if bound < 0 { len + bound } else { bound }).clamp(0, len) as usize
    };
    let start = from.map_or(0, at);
    let end = to.map_or(len, at);
    start..end.max(start)
}

fn parse_inner(inner: &str) -> Option<Piece> {
    // `${SRC[1:]}` is a slice, not the format `SRC[1` over the list ``.
    let slice = matches!((inner.find('['), inner.find(':')), (Some(b), Some(c)) if b < c);
    if !slice && let Some((fmt, list)) = inner.split_once(':') {
        if is_name(fmt) && !RESERVED.contains(&fmt) {
            return parse_list(list).map(|l| Piece::Map(fmt.to_string(), l));
        }
        return None;
    }
    if let Some(open) = inner.find('[') {
        let (name, rest) = inner.split_at(open);
        let index = rest.strip_prefix('[')?.strip_suffix(']')?;
        let list = match name {
            "SRC" => List::Src,
            "TGT" => List::Tgt,
            _ => return None,
        };
        if let Some((from, to)) = index.split_once(':') {
            return Some(Piece::Slice(list, parse_bound(from)?, parse_bound(to)?));
        }
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return Some(Piece::At(list, index.parse().ok()?));
    }
    match parse_list(inner)? {
        List::Var(name) => Some(Piece::Var(name)),
        list => Some(Piece::List(list)),
    }
}

impl Template {
    /// Parses a template.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        // Most values substitute nothing.
        if !text.contains('$') {
            let pieces = if text.is_empty() {
                Vec::new()
            } else {
                vec![(0, Piece::Text(text.to_string()))]
            };
            return Ok(Template { pieces });
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut literal_start = 0;
        let mut i = 0;
        while i < text.len() {
            if literal.is_empty() {
                literal_start = i;
            }
            if text[i..].starts_with("$${") {
                literal.push_str("${");
                i += 3;
            } else if text[i..].starts_with("${") {
                let close = text[i + 2..].find('}').ok_or(TemplateError {
                    offset: i,
                    kind: ErrorKind::Unclosed,
                })?;
                let inner = &text[i + 2..i + 2 + close];
                let piece = parse_inner(inner).ok_or_else(|| TemplateError {
                    offset: i,
                    kind: ErrorKind::Invalid(inner.to_string()),
                })?;
                if !literal.is_empty() {
                    pieces.push((literal_start, Piece::Text(std::mem::take(&mut literal))));
                }
                pieces.push((i, piece));
                i += close + 3;
            } else {
                // Up to the next `$` (or a lone `$` itself), in one piece.
                let from = if text.as_bytes()[i] == b'$' { i + 1 } else { i };
                let next = text[from..].find('$').map_or(text.len(), |d| from + d);
                literal.push_str(&text[i..next]);
                i = next;
            }
        }
        if !literal.is_empty() {
            pieces.push((literal_start, Piece::Text(literal)));
        }
        Ok(Template { pieces })
    }

    /// The env names the template uses, in order of appearance (with repeats).
    pub fn names(&self) -> impl Iterator<Item = (usize, &str)> {
        self.pieces.iter().flat_map(|(offset, piece)| {
            let (a, b) = match piece {
                Piece::Var(n) => (Some(n.as_str()), None),
                Piece::Map(f, List::Var(l)) => (Some(f.as_str()), Some(l.as_str())),
                Piece::Map(f, _) => (Some(f.as_str()), None),
                Piece::List(List::Var(l)) | Piece::At(List::Var(l), _) => (Some(l.as_str()), None),
                _ => (None, None),
            };
            a.into_iter().chain(b).map(move |n| (*offset, n))
        })
    }

    /// Where the template first refers to `${TGT}` (with `targets`) or `${SRC}`, in any form.
    pub fn uses_list(&self, targets: bool) -> Option<usize> {
        let wanted = if targets { List::Tgt } else { List::Src };
        self.pieces.iter().find_map(|(offset, piece)| match piece {
            Piece::List(l) | Piece::At(l, _) | Piece::Slice(l, ..) | Piece::Map(_, l)
                if *l == wanted =>
            {
                Some(*offset)
            }
            _ => None,
        })
    }

    /// Whether the template refers to `${SRC}` or `${TGT}` in any form.
    pub fn uses_task_paths(&self) -> Option<(usize, &'static str)> {
        self.pieces.iter().find_map(|(offset, piece)| {
            let list = match piece {
                Piece::List(l) | Piece::At(l, _) | Piece::Slice(l, ..) | Piece::Map(_, l) => l,
                _ => return None,
            };
            match list {
                List::Src => Some((*offset, "SRC")),
                List::Tgt => Some((*offset, "TGT")),
                _ => None,
            }
        })
    }

    /// Expands the template into `buf`. With `quote`, paths are shell-quoted (commands); without,
    /// they are inserted as they are (a depfile path, a source entry).
    pub fn expand(
        &self,
        env: &dyn Lookup,
        paths: &Paths,
        quote: bool,
        buf: &mut String,
    ) -> Result<(), TemplateError> {
        for (offset, piece) in &self.pieces {
            let err = |kind| TemplateError {
                offset: *offset,
                kind,
            };
            match piece {
                Piece::Text(t) => buf.push_str(t),
                Piece::Var(name) => {
                    let value = env
                        .get(name)
                        .ok_or_else(|| err(ErrorKind::Undefined(name.clone())))?;
                    join_into(buf, value.iter().map(String::as_str), false);
                }
                Piece::List(list) => {
                    let items = list_items(list, env, paths).map_err(err)?;
                    join_into(buf, items.iter().map(|(s, _)| *s), quote);
                }
                Piece::At(list, index) => {
                    let items = list_items(list, env, paths).map_err(err)?;
                    let name = if *list == List::Src { "SRC" } else { "TGT" };
                    let (item, _) = items.get(*index).ok_or_else(|| {
                        err(ErrorKind::OutOfRange {
                            list: name,
                            index: *index,
                            len: items.len(),
                        })
                    })?;
                    push_path(buf, item, quote);
                }
                Piece::Slice(list, from, to) => {
                    let items = list_items(list, env, paths).map_err(err)?;
                    let range = slice_range(items.len(), *from, *to);
                    join_into(buf, items[range].iter().map(|(s, _)| *s), quote);
                }
                Piece::Map(format, list) => {
                    let format_value = env
                        .get(format)
                        .ok_or_else(|| err(ErrorKind::Undefined(format.clone())))?;
                    let format_text = format_value.join(" ");
                    if !format_text.contains("%s") {
                        return Err(err(ErrorKind::NoPercent(format.clone())));
                    }
                    let items = list_items(list, env, paths).map_err(err)?;
                    let mut first = true;
                    for (item, is_path) in items {
                        if !first {
                            buf.push(' ');
                        }
                        first = false;
                        let mut formatted = String::new();
                        if is_path {
                            push_path(&mut formatted, item, quote);
                        } else {
                            formatted.push_str(item);
                        }
                        buf.push_str(&format_text.replace("%s", &formatted));
                    }
                }
            }
        }
        Ok(())
    }

    /// Expands a template that may use env values and `${OUT}` only (sources, targets, deps).
    pub fn expand_plain(&self, env: &dyn Lookup, out: &str) -> Result<String, TemplateError> {
        if let Some((offset, name)) = self.uses_task_paths() {
            return Err(TemplateError {
                offset,
                kind: ErrorKind::PathsNotAllowed(name),
            });
        }
        let mut buf = String::new();
        let paths = Paths {
            src: &[],
            tgt: &[],
            out,
        };
        self.expand(env, &paths, false, &mut buf)?;
        Ok(buf)
    }

    /// When the whole template is exactly one `${NAME}`, that name (for list splicing).
    pub fn sole_var(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [(_, Piece::Var(name))] => Some(name),
            _ => None,
        }
    }
}

/// The items of a list with whether each is a path (to be quoted).
fn list_items<'a>(
    list: &'a List,
    env: &'a dyn Lookup,
    paths: &Paths<'a>,
) -> Result<Vec<(&'a str, bool)>, ErrorKind> {
    Ok(match list {
        List::Src => paths.src.iter().map(|s| (*s, true)).collect(),
        List::Tgt => paths.tgt.iter().map(|s| (*s, true)).collect(),
        List::Out => vec![(paths.out, true)],
        List::Var(name) => env
            .get(name)
            .ok_or_else(|| ErrorKind::Undefined(name.clone()))?
            .iter()
            .map(|s| (s.as_str(), false))
            .collect(),
    })
}

fn join_into<'a>(buf: &mut String, items: impl Iterator<Item = &'a str>, quote: bool) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            buf.push(' ');
        }
        push_path(buf, item, quote);
    }
}

fn push_path(buf: &mut String, path: &str, quote: bool) {
    if quote {
        paths::shell_quote_into(path, buf);
    } else {
        buf.push_str(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Env(HashMap<String, Vec<String>>);
    impl Lookup for Env {
        fn get(&self, name: &str) -> Option<&[String]> {
            self.0.get(name).map(Vec::as_slice)
        }
    }

    fn env() -> Env {
        let mut m = HashMap::new();
        m.insert("CC".to_string(), vec!["cc".to_string()]);
        m.insert(
            "CFLAGS".to_string(),
            vec!["-O2".to_string(), "-Wall".to_string()],
        );
        m.insert("INC_ST".to_string(), vec!["-I%s".to_string()]);
        m.insert(
            "INCLUDES".to_string(),
            vec!["include".to_string(), "a b".to_string()],
        );
        Env(m)
    }

    fn expand(t: &str, src: &[&str], tgt: &[&str]) -> Result<String, TemplateError> {
        let mut buf = String::new();
        let paths = Paths {
            src,
            tgt,
            out: "build",
        };
        Template::parse(t)?.expand(&env(), &paths, true, &mut buf)?;
        Ok(buf)
    }

    #[test]
    fn expands_every_form() {
        assert_eq!(
            expand(
                "${CC} ${CFLAGS} ${INC_ST:INCLUDES} -c ${SRC} -o ${TGT} ${TGT[0]}.d ${OUT}",
                &["a b.c", "x.c"],
                &["build/a.o"]
            )
            .unwrap(),
            "cc -O2 -Wall -Iinclude -Ia b -c 'a b.c' x.c -o build/a.o build/a.o.d build"
        );
        assert_eq!(
            expand("echo $${HOME} $$ $x ${SRC[1]}", &["a", "it's"], &[]).unwrap(),
            "echo ${HOME} $$ $x 'it'\\''s'"
        );
        assert_eq!(expand("${INC_ST:SRC}", &["a b"], &[]).unwrap(), "-I'a b'");
    }

    #[test]
    fn slices_select_a_range_of_sources_or_targets() {
        let src = ["build/buildvm", "lib_base.c", "lib_math.c", "it's.c"];
        assert_eq!(
            expand("${SRC[0]} -m libdef ${SRC[1:]}", &src, &[]).unwrap(),
            "build/buildvm -m libdef lib_base.c lib_math.c 'it'\\''s.c'"
        );
        assert_eq!(
            expand("${SRC[:-1]}", &src, &[]).unwrap(),
            "build/buildvm lib_base.c lib_math.c"
        );
        assert_eq!(expand("${SRC[1:3]}", &src, &[]).unwrap(), "lib_base.c lib_math.c");
        assert_eq!(expand("${SRC[-2:]}", &src, &[]).unwrap(), "lib_math.c 'it'\\''s.c'");
        assert_eq!(expand("${TGT[1:]}", &[], &["a", "b", "c"]).unwrap(), "b c");
        // Bounds are clamped, as in Python: past the end is empty, never an error.
        assert_eq!(expand("[${SRC[9:]}]", &src, &[]).unwrap(), "[]");
        assert_eq!(expand("[${SRC[3:1]}]", &src, &[]).unwrap(), "[]");
        assert_eq!(expand("${SRC[:]}", &src[..2], &[]).unwrap(), "build/buildvm lib_base.c");
        for bad in ["${SRC[a:]}", "${SRC[1:x]}", "${CC[1:]}", "${SRC[--1:]}"] {
            assert!(
                matches!(Template::parse(bad), Err(TemplateError { kind: ErrorKind::Invalid(_), .. })),
                "{bad}"
            );
        }
        assert_eq!(
            Template::parse("x ${SRC[1:]}").unwrap().uses_list(false),
            Some(2)
        );
    }

    #[test]
    fn reports_errors_with_offsets() {
        assert_eq!(
            expand("x ${CFALGS}", &[], &[]).unwrap_err(),
            TemplateError {
                offset: 2,
                kind: ErrorKind::Undefined("CFALGS".into())
            }
        );
        assert_eq!(
            expand("${SRC[2]}", &["a"], &[]).unwrap_err().kind,
            ErrorKind::OutOfRange {
                list: "SRC",
                index: 2,
                len: 1
            }
        );
        assert_eq!(
            expand("${CC:INCLUDES}", &[], &[]).unwrap_err().kind,
            ErrorKind::NoPercent("CC".into())
        );
        assert_eq!(
            Template::parse("a ${CC").unwrap_err(),
            TemplateError {
                offset: 2,
                kind: ErrorKind::Unclosed
            }
        );
        assert!(matches!(
            Template::parse("${1X}").unwrap_err().kind,
            ErrorKind::Invalid(_)
        ));
        assert!(matches!(
            Template::parse("${SRC:CC}").unwrap_err().kind,
            ErrorKind::Invalid(_)
        ));
    }

    #[test]
    fn names_and_sole_var() {
        let t = Template::parse("${CC} ${INC_ST:INCLUDES} ${SRC}").unwrap();
        let names: Vec<&str> = t.names().map(|(_, n)| n).collect();
        assert_eq!(names, vec!["CC", "INC_ST", "INCLUDES"]);
        assert_eq!(
            Template::parse("${CFLAGS}").unwrap().sole_var(),
            Some("CFLAGS")
        );
        assert_eq!(Template::parse("x${CFLAGS}").unwrap().sole_var(), None);
        let plain = Template::parse("${SRC}/x")
            .unwrap()
            .expand_plain(&env(), "build");
        assert_eq!(plain.unwrap_err().kind, ErrorKind::PathsNotAllowed("SRC"));
    }
}
