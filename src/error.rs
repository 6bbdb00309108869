//! Errors for people: a build-file diagnostic carries the file, the byte span, what was wrong and what
//! would be right, and renders as `build.toml:LINE:COL: error: ...` followed by the source line and a
//! caret. Every error knows the exit status it maps to.

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The text of a build file, kept so that diagnostics can quote it.
#[derive(Debug)]
pub struct SourceText {
    /// The file's name as the user would type it (relative to the current directory where possible).
    pub name: String,
    pub text: String,
}

impl SourceText {
    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }
}

/// The build files of a project (the top one and the parts its `subdirs` name), placed one after
/// another in a single span space, so that a span anywhere in the project says which file it is in.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Each file with the offset its spans start at, in order of that offset.
    files: Vec<(usize, Arc<SourceText>)>,
}

impl Sources {
    /// The sources of a project of one build file.
    pub fn single(source: Arc<SourceText>) -> Sources {
        Sources {
            files: vec![(0, source)],
        }
    }

    /// Places `source` after the files already here; returns the offset its spans start at.
    pub fn add(&mut self, source: Arc<SourceText>) -> usize {
        let base = self.next_base();
        self.files.push((base, source));
        base
    }

    /// Places `source` at `base` (a project read back from kiln's cache, without its texts).
    pub fn add_at(&mut self, base: usize, source: Arc<SourceText>) {
        self.files.push((base, source));
    }

    /// Where the next file's spans would start: past every file here, with a gap.
    fn next_base(&self) -> usize {
        self.files
            .last()
            .map_or(0, |(b, s)| b + s.text.len().max(1) + 1)
    }

    /// The top build file.
    pub fn top(&self) -> &Arc<SourceText> {
        &self.files[0].1
    }

    pub fn files(&self) -> impl Iterator<Item = (usize, &Arc<SourceText>)> {
        self.files.iter().map(|(b, s)| (*b, s))
    }

    /// The file a span lies in and the span inside it.
    pub fn locate(&self, span: &Range<usize>) -> (&Arc<SourceText>, Range<usize>) {
        let i = self
            .files
            .partition_point(|(b, _)| *b <= span.start)
            .saturating_sub(1);
        let (base, source) = &self.files[i];
        (source, span.start - base..span.end.saturating_sub(*base))
    }

    /// A diagnostic pointing at `span`, in whichever file it lies.
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (source, local) = self.locate(&span);
        Diagnostic::at(source, local, message)
    }

    /// The text at `span`, if the file's text is at hand.
    pub fn text(&self, span: &Range<usize>) -> Option<&str> {
        let (source, local) = self.locate(span);
        source.text.get(local)
    }

    /// `file:line` of a span, for notes that point at a second place.
    pub fn place(&self, span: &Range<usize>) -> String {
        let (source, local) = self.locate(span);
        if source.text.is_empty() {
            return source.name.clone();
        }
        let (line, _) = source.line_col(local.start);
        format!("{}:{line}", source.name)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A problem in the build file (or with the build it describes), located where possible.
#[derive(Debug)]
pub struct Diagnostic {
    pub source: Option<Arc<SourceText>>,
    pub span: Option<Range<usize>>,
    pub message: String,
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// A diagnostic pointing at `span` of the build file.
    pub fn at(source: &Arc<SourceText>, span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            source: Some(source.clone()),
            span: Some(span),
            message: message.into(),
            notes: Vec::new(),
        }
    }

    /// A diagnostic about no place in a build file (a configure check that failed, say).
    pub fn plain(message: impl Into<String>) -> Self {
        Diagnostic {
            source: None,
            span: None,
            message: message.into(),
            notes: Vec::new(),
        }
    }

    /// A diagnostic about the build file as a whole.
    pub fn in_file(source: &Arc<SourceText>, message: impl Into<String>) -> Self {
        Diagnostic {
            source: Some(source.clone()),
            span: None,
            message: message.into(),
            notes: Vec::new(),
        }
    }

    /// Points the diagnostic at another span of the same file.
    pub fn with_span(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }

    /// Adds a line of help ("did you mean", "expected ...").
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Adds "did you mean `x`?" when `word` is close to one of `candidates`.
    pub fn suggest<'a>(self, word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        match did_you_mean(word, candidates) {
            Some(best) => self.note(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    /// `file:line:col` of the diagnostic, or the file name alone.
    pub fn location(&self) -> Option<String> {
        let source = self.source.as_ref()?;
        Some(match &self.span {
            // Without the text (a project read from kiln's cache) there is no line to name.
            Some(_) if source.text.is_empty() => source.name.clone(),
            Some(span) => {
                let (line, col) = source.line_col(span.start);
                format!("{}:{line}:{col}", source.name)
            }
            None => source.name.clone(),
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location() {
            Some(loc) => writeln!(f, "{loc}: error: {}", self.message)?,
            None => writeln!(f, "error: {}", self.message)?,
        }
        if let (Some(source), Some(span)) = (&self.source, &self.span)
            && !source.text.is_empty()
        {
            let (line, _) = source.line_col(span.start);
            let quote = Quote::of(&source.text, span.clone());
            let gutter = line.to_string().len();
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{line} | {}", quote.text)?;
            writeln!(
                f,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(quote.caret_at),
                "^".repeat(quote.caret_width)
            )?;
        }
        for note in &self.notes {
            writeln!(f, "  = {note}")?;
        }
        Ok(())
    }
}

/// The source line quoted under a diagnostic, as a terminal shows it, and where its caret goes.
///
/// Positions here are display columns, not characters: `日本語` and most emoji take two columns, a
/// combining accent none. A tab is shown as four spaces, as rustc shows it, so that the caret line
/// (all spaces) lines up whatever the terminal's tab stops are; any other control character is
/// shown as a visible symbol that cannot move the cursor.
#[derive(Debug, PartialEq)]
struct Quote {
    text: String,
    /// Columns of `text` before the caret.
    caret_at: usize,
    /// Columns the caret covers: the span on its first line, at least one.
    caret_width: usize,
}

/// At most about this many columns of a line are quoted under a diagnostic.
const SHOWN: usize = 100;

/// How a tab in a quoted line is shown.
const TAB: &str = "    ";

/// Marks where a long line was cut.
const CUT: &str = "...";

impl Quote {
    /// Quotes the line of `text` that holds the start of `span`, with a caret under the span.
    fn of(text: &str, span: Range<usize>) -> Quote {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let mut line = &text[line_start..line_end];
        if line_end < text.len() {
            line = line.strip_suffix('\r').unwrap_or(line);
        }
        let at = (start - line_start).min(line.len());
        let end = floor_char_boundary(line, span.end.saturating_sub(line_start).min(line.len()));
        Quote::line(line, at, end.max(at))
    }

    /// Quotes `line` with a caret under its bytes `at..end` (both on character boundaries). A line
    /// wider than [`SHOWN`] is cut to a window of whole characters around the caret.
    fn line(line: &str, at: usize, end: usize) -> Quote {
        let (from, to) = window(line, at);
        let mut text = String::new();
        if from > 0 {
            text.push_str(CUT);
        }
        let caret_at = columns(&text) + columns(&line[from..at]);
        push_shown(&mut text, &line[from..to]);
        if to < line.len() {
            text.push_str(CUT);
        }
        let caret_width = columns(&line[at..end.min(to).max(at)]).max(1);
        Quote {
            text,
            caret_at,
            caret_width,
        }
    }
}

/// The bytes of `line` to quote for a caret at byte `at`: all of it when it fits in [`SHOWN`]
/// columns, else about that many columns of whole characters around the caret, `from <= at`.
/// "About" because the window is measured by each character's own width, in one pass: a few
/// sequences (an emoji and its variation selector) are wider together than apart.
fn window(line: &str, at: usize) -> (usize, usize) {
    let before: usize = line[..at].chars().map(char_columns).sum();
    let total = before + line[at..].chars().map(char_columns).sum::<usize>();
    if total <= SHOWN {
        return (0, line.len());
    }
    let first = before.saturating_sub(SHOWN / 2).min(total - SHOWN);
    let mut from = None;
    let mut col = 0;
    for (i, c) in line.char_indices() {
        let width = char_columns(c);
        match from {
            // Starting on a zero-width character would show a lone accent.
            None if i >= at || (col >= first && width > 0) => from = Some((i, col)),
            Some((shown_from, start)) if col + width > start + SHOWN => return (shown_from, i),
            _ => {}
        }
        col += width;
    }
    (from.map_or(at, |(i, _)| i), line.len())
}

/// The columns a terminal gives `text` once shown (see [`Quote`]).
fn columns(text: &str) -> usize {
    // The width of a run of printable text depends on its neighbours (emoji sequences), so runs
    // are measured whole, split only at control characters.
    text.split_inclusive(char::is_control)
        .map(|run| match run.chars().next_back() {
            Some(c) if c.is_control() => run[..run.len() - c.len_utf8()].width() + char_columns(c),
            _ => run.width(),
        })
        .sum()
}

/// The columns one character takes once shown, on its own.
fn char_columns(c: char) -> usize {
    match c {
        '\t' => TAB.len(),
        c if c.is_control() => 1,
        c => c.width().unwrap_or(0),
    }
}

/// Appends `text` as a terminal should be given it: tabs as spaces, control characters as the
/// symbols that picture them.
fn push_shown(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\t' => out.push_str(TAB),
            '\0'..='\x1f' => out.push(char::from_u32(0x2400 + u32::from(c)).unwrap_or('\u{fffd}')),
            '\x7f' => out.push('\u{2421}'),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// Everything that can stop kiln before or around a build. Task failures are not errors: they are
/// reported by the build itself and folded into its exit status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The build file is wrong: exit 2, nothing runs, nothing is deleted.
    #[error("{0}")]
    BuildFile(Box<Diagnostic>),
    /// The command line is wrong (an unknown target, a bad -D): exit 2.
    #[error("error: {0}")]
    Usage(String),
    /// kiln refused to do something unsafe (e.g. distclean of the project root): exit 2.
    #[error("error: {0}")]
    Refused(String),
    /// The file system failed kiln itself (not a task): exit 1.
    #[error("error: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The process exit status this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BuildFile(_) | Error::Usage(_) | Error::Refused(_) => 2,
            Error::Io { .. } => 1,
        }
    }

    /// Wraps an I/O error with what kiln was doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Self {
        Error::BuildFile(Box::new(d))
    }
}

/// The closest candidate to `word` if it is close enough to be a likely typo: at most one edit in
/// three characters, ignoring case, where swapping two neighbours is one edit (optimal string
/// alignment), so that `mian` is one step from `main`.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::osa_distance(&word_lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Arc<SourceText> {
        Arc::new(SourceText {
            name: "build.toml".into(),
            text: text.into(),
        })
    }

    #[test]
    fn line_and_column_count_characters() {
        let s = source("a = 1\nbé = 2\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(10), (2, 4));
    }

    #[test]
    fn a_long_line_is_shown_around_the_column() {
        let text = format!("x = {}@{}\n", "a".repeat(5000), "b".repeat(5000));
        let source = Arc::new(SourceText {
            name: "build.toml".into(),
            text: text.clone(),
        });
        let d = Diagnostic::at(&source, 5004..5005, "here");
        let shown = d.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines[0], "build.toml:1:5005: error: here");
        assert!(
            lines[2].len() < 120 && lines[2].starts_with("1 | ...a"),
            "{shown}"
        );
        assert!(lines[2].ends_with("b..."), "{shown}");
        let caret = lines[3].find('^').unwrap();
        assert_eq!(&lines[2][caret..caret + 1], "@", "{shown}");
        // At the very end of a long line (found by the build_file fuzzer).
        let text = format!("[[\"{}\r\n", "O".repeat(100));
        let source = Arc::new(SourceText {
            name: "build.toml".into(),
            text: text.clone(),
        });
        let shown = Diagnostic::at(&source, 103..105, "unclosed").to_string();
        assert!(shown.lines().nth(3).unwrap().ends_with('^'), "{shown}");
    }

    #[test]
    fn renders_location_line_and_caret() {
        let s = source("[project]\nsorce = 1\n");
        let d =
            Diagnostic::at(&s, 10..15, "unknown key `sorce`").suggest("sorce", ["source", "name"]);
        assert_eq!(
            d.to_string(),
            "build.toml:2:1: error: unknown key `sorce`\n  |\n2 | sorce = 1\n  | ^^^^^\n  = did you mean `source`?\n"
        );
    }

    /// The quote of `line` with a caret under the first `needle` in it.
    fn quote_at(line: &str, needle: &str) -> Quote {
        let at = line.find(needle).expect("the needle is in the line");
        Quote::of(line, at..at + needle.len())
    }

    fn quote(text: &str, caret_at: usize, caret_width: usize) -> Quote {
        Quote {
            text: text.into(),
            caret_at,
            caret_width,
        }
    }

    #[test]
    fn a_tab_is_shown_as_four_spaces_and_the_caret_follows() {
        assert_eq!(
            quote_at("\tsorce = 1", "sorce"),
            quote("    sorce = 1", 4, 5)
        );
        assert_eq!(quote_at("a\t\tb = 1", "b"), quote("a        b = 1", 9, 1));
        // A span that covers a tab covers its four columns.
        assert_eq!(quote_at("x =\t3", "=\t3"), quote("x =    3", 2, 6));
    }

    #[test]
    fn wide_characters_take_two_columns() {
        let q = quote_at("env = { N = \"日本語\", BAD = 3 }", "3");
        assert_eq!(q, quote("env = { N = \"日本語\", BAD = 3 }", 28, 1));
        assert_eq!(quote_at("a = \"日本語\"", "日本語").caret_width, 6);
        // Emoji, alone, with a skin tone, and a family joined by ZWJ, are each two columns.
        assert_eq!(quote_at("🦀 x", "x").caret_at, 3);
        assert_eq!(quote_at("👍🏽 x", "x").caret_at, 3);
        assert_eq!(quote_at("👨\u{200d}👩\u{200d}👧 x", "x").caret_at, 3);
        // A heart made an emoji by a variation selector.
        assert_eq!(quote_at("\u{2764}\u{fe0f} x", "x").caret_at, 3);
    }

    #[test]
    fn combining_marks_take_no_column() {
        // `é` written as `e` and a combining acute accent: two characters, one column.
        assert_eq!(quote_at("e\u{301} = x", "x").caret_at, 4);
        assert_eq!(quote_at("e\u{301} = x", "e\u{301}").caret_width, 1);
    }

    #[test]
    fn control_characters_cannot_move_the_cursor() {
        assert_eq!(quote_at("a\rb\x1b[2J c", "c"), quote("a␍b␛[2J c", 8, 1));
        assert_eq!(quote_at("a\u{85}b", "b"), quote("a\u{fffd}b", 2, 1));
    }

    #[test]
    fn the_reported_column_counts_characters_not_columns() {
        let s = source("\tx = 1\n日本語 = 2\n");
        assert_eq!(s.line_col(1), (1, 2));
        assert_eq!(s.line_col("\tx = 1\n日本語 ".len()), (2, 5));
    }

    #[test]
    fn a_long_line_of_wide_characters_is_windowed_by_columns() {
        let line = format!(
            "x = \"{}\" @ \"{}\"",
            "日本語".repeat(1000),
            "\t🦀".repeat(1000)
        );
        let q = quote_at(&line, "@");
        assert!(
            q.text.starts_with("...") && q.text.ends_with("..."),
            "{q:?}"
        );
        let width = columns(&q.text);
        assert!(
            (SHOWN..=SHOWN + 2 * CUT.len()).contains(&width),
            "{width} columns: {q:?}"
        );
        // The caret's column is that of the `@` in the shown text.
        let before_at = &q.text[..q.text.find('@').unwrap()];
        assert_eq!(columns(before_at), q.caret_at, "{q:?}");
    }

    #[test]
    fn every_offset_of_a_mixed_long_line_quotes_without_a_panic() {
        let line = "a\t日🦀e\u{301}\u{2764}\u{fe0f}".repeat(40);
        let text = format!("{line}\r\n{line}");
        for start in 0..=text.len() {
            for end in [start, start + 1, start + 5, text.len()] {
                let q = Quote::of(&text, start..end);
                assert!(q.caret_at <= columns(&q.text), "{start}..{end}: {q:?}");
                // The window is chosen by the characters' own widths, which can be less than
                // their width together (a heart and a variation selector): hence "about".
                let own: usize = q.text.chars().map(char_columns).sum();
                assert!(own <= SHOWN + 2 * CUT.len(), "{start}..{end}: {q:?}");
                assert!(q.caret_width >= 1);
            }
        }
    }

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(did_you_mean("CFALGS", ["CFLAGS", "CC"]), Some("CFLAGS"));
        assert_eq!(did_you_mean("zzz", ["CFLAGS", "CC"]), None);
        assert_eq!(did_you_mean("mian", ["main", "codegen"]), Some("main"));
    }
}
