//! Errors for people: a build-file diagnostic carries the file, the byte span, what was wrong and what
//! would be right, and renders as `build.toml:LINE:COL: error: ...` followed by the source line and a
//! caret. Every error knows the exit status it maps to.

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::Arc;

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
            let (line, col) = source.line_col(span.start);
            let text = source.text.lines().nth(line - 1).unwrap_or("");
            let gutter = line.to_string().len();
            // The caret covers the span on its first line, at least one character.
            let span_text = source.text.get(span.clone()).unwrap_or("");
            let first_line = span_text.split('\n').next().unwrap_or("");
            let width = first_line.chars().count().max(1);
            let width = width.min(text.chars().count().saturating_sub(col - 1).max(1));
            // A long line is shown as a window around the column.
            let (shown, caret_at, width) = window(text, col - 1, width);
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{line} | {shown}")?;
            writeln!(
                f,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(caret_at),
                "^".repeat(width)
            )?;
        }
        for note in &self.notes {
            writeln!(f, "  = {note}")?;
        }
        Ok(())
    }
}

/// At most this many characters of a line are shown under a diagnostic.
const SHOWN: usize = 100;

/// The part of `line` to show for a caret at character `at`, `width` wide: the whole line if it
/// is short, else a window around the caret with `...` where it was cut. Returns the text, where
/// the caret goes in it, and its width.
fn window(line: &str, at: usize, width: usize) -> (String, usize, usize) {
    let len = line.chars().count();
    if len <= SHOWN {
        return (line.to_string(), at, width);
    }
    let start = at.saturating_sub(SHOWN / 2).min(len - SHOWN);
    let end = start + SHOWN;
    let mut shown: String = line.chars().skip(start).take(SHOWN).collect();
    let mut caret = at - start;
    if start > 0 {
        shown.insert_str(0, "...");
        caret += 3;
    }
    if end < len {
        shown.push_str("...");
    }
    (shown, caret, width.min(end.saturating_sub(at)).max(1))
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

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance over characters, case-insensitive, counting an adjacent transposition as one edit
/// (optimal string alignment), so that `mian` is one step from `main`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
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

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(did_you_mean("CFALGS", ["CFLAGS", "CC"]), Some("CFLAGS"));
        assert_eq!(did_you_mean("zzz", ["CFLAGS", "CC"]), None);
        assert_eq!(did_you_mean("mian", ["main", "codegen"]), Some("main"));
    }
}
