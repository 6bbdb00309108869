//! What a build prints, all on stderr (stdout is for queries): a `[n/N] rule: inputs -> outputs`
//! line per task that runs ([`Lines`]), or, when stderr is a terminal, a live display of the
//! running tasks ([`Live`], in `live.rs`); each task's output whole, never interleaved; warnings;
//! the summary line. A rule's name is shown in the [`Color`] its build file gives it, when colours
//! are wanted ([`ColorChoice`]). Writing never panics: a closed stream (a pipe into `head -1`) is
//! noticed and reported through [`Progress::broken`], and the build stops as it would on SIGPIPE.

mod frame;
mod live;

pub use live::Live;
use std::io::{IsTerminal, Write};

/// Terminal colours a rule may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Black,
    Red,
    Green,
    Yellow,
    Blue,
    Magenta,
    Cyan,
    White,
    Normal,
}

impl Color {
    /// The names a build file may give a colour (lower case), `pink` being magenta.
    pub const NAMES: [(&str, Color); 10] = [
        ("black", Color::Black),
        ("red", Color::Red),
        ("green", Color::Green),
        ("yellow", Color::Yellow),
        ("blue", Color::Blue),
        ("magenta", Color::Magenta),
        ("pink", Color::Magenta),
        ("cyan", Color::Cyan),
        ("white", Color::White),
        ("normal", Color::Normal),
    ];

    /// The ANSI SGR code.
    pub fn ansi(self) -> &'static str {
        match self {
            Color::Black => "30",
            Color::Red => "31",
            Color::Green => "32",
            Color::Yellow => "33",
            Color::Blue => "34",
            Color::Magenta => "35",
            Color::Cyan => "36",
            Color::White => "37",
            Color::Normal => "0",
        }
    }
}

/// A task as a progress line shows it.
pub struct TaskLine<'a> {
    pub rule: &'a str,
    pub color: Option<Color>,
    pub inputs: Vec<&'a str>,
    /// Inputs left out of `inputs` (shown as `(+K more)`).
    pub more_inputs: usize,
    pub outputs: Vec<&'a str>,
}

impl<'a> TaskLine<'a> {
    /// A line lists at most this many inputs; past that, the first [`Self::SHOWN_INPUTS`] and how
    /// many more there are.
    pub const MAX_INPUTS: usize = 8;
    pub const SHOWN_INPUTS: usize = 3;

    /// The line of a task; with `all`, every input is listed.
    pub fn new(
        rule: &'a str,
        color: Option<Color>,
        mut inputs: Vec<&'a str>,
        outputs: Vec<&'a str>,
        all: bool,
    ) -> TaskLine<'a> {
        let mut more_inputs = 0;
        if !all && inputs.len() > Self::MAX_INPUTS {
            more_inputs = inputs.len() - Self::SHOWN_INPUTS;
            inputs.truncate(Self::SHOWN_INPUTS);
        }
        TaskLine {
            rule,
            color,
            inputs,
            more_inputs,
            outputs,
        }
    }

    /// `rule: inputs -> outputs`, the rule coloured when `colors`.
    pub fn render(&self, colors: bool) -> String {
        let rule = match (colors, self.color) {
            (true, Some(c)) => format!("\x1b[{}m{}\x1b[0m", c.ansi(), self.rule),
            _ => self.rule.to_string(),
        };
        let mut inputs = self.inputs.join(" ");
        if self.more_inputs > 0 {
            inputs.push_str(&format!(" (+{} more)", self.more_inputs));
        }
        match (inputs.is_empty(), self.outputs.is_empty()) {
            (false, false) => format!("{rule}: {inputs} -> {}", self.outputs.join(" ")),
            (true, false) => format!("{rule}: -> {}", self.outputs.join(" ")),
            (false, true) => format!("{rule}: {inputs}"),
            (true, true) => rule,
        }
    }
}

/// A task that starts, as [`Progress::started`] is told of it.
pub struct Started<'a> {
    /// The task's handle: [`Progress::finished`] names it again.
    pub task: usize,
    /// The `n`th task to run of `total` expected.
    pub n: usize,
    pub total: usize,
    pub line: &'a TaskLine<'a>,
    /// Its commands, to print (-v).
    pub commands: Option<&'a [String]>,
    /// How long it took when it last ran, if it has.
    pub expected: Option<std::time::Duration>,
    /// Its outputs came from an output cache: it does not run.
    pub cached: bool,
}

/// Where a build reports what it does.
pub trait Progress {
    /// A warning or a note, on a line of its own.
    fn message(&mut self, text: &str);
    /// A task starts.
    fn started(&mut self, task: &Started);
    /// A task ended (`None`: one that never started, which early cutoff spared); `output` is
    /// everything it printed.
    fn finished(&mut self, task: Option<usize>, output: &[u8]);
    /// The number of tasks expected to run changed.
    fn set_total(&mut self, total: usize);
    /// The build ended; `summary` is the last line.
    fn done(&mut self, summary: &str);
    /// Whether stderr has been closed under us.
    fn broken(&self) -> bool;
    /// A query's answer (`--explain`), on stdout.
    fn report(&mut self, text: &str);
}

/// Writes a line to stdout; a closed stdout is ignored (the reader has what it wanted).
fn stdout_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_all(text.as_bytes())
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush());
}

/// Writes to stderr, remembering whether it was closed.
#[derive(Default)]
struct Stderr {
    broken: bool,
}

impl Stderr {
    fn write(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        let mut err = std::io::stderr().lock();
        if err.write_all(bytes).and_then(|_| err.flush()).is_err() {
            self.broken = true;
        }
    }

    fn line(&mut self, text: &str) {
        let mut s = String::with_capacity(text.len() + 1);
        s.push_str(text);
        s.push('\n');
        self.write(s.as_bytes());
    }

    fn output(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.write(bytes);
        if !bytes.ends_with(b"\n") {
            self.write(b"\n");
        }
    }
}

/// When to colour what kiln prints (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// As the terminal, NO_COLOR and CLICOLOR_FORCE say: [`colors_wanted`].
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour what goes to stderr.
    pub fn colors(self) -> bool {
        match self {
            ColorChoice::Auto => colors_wanted(),
            ColorChoice::Always => true,
            ColorChoice::Never => false,
        }
    }
}

/// Whether to colour what goes to stderr (NO_COLOR, CLICOLOR_FORCE and TERM=dumb respected).
pub fn colors_wanted() -> bool {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    std::env::var_os("TERM").is_none_or(|t| t != "dumb") && std::io::stderr().is_terminal()
}

/// The progress for this process: the live display when stderr is a terminal (not a dumb one)
/// and `live` allows it, lines otherwise.
pub fn for_stderr(color: ColorChoice, live: bool) -> Box<dyn Progress> {
    let terminal =
        std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
    if terminal && live {
        Box::new(Live::new(color.colors()))
    } else {
        Box::new(Lines {
            out: Stderr::default(),
            colors: color.colors(),
        })
    }
}

/// One line per task, for logs and pipes.
pub struct Lines {
    out: Stderr,
    colors: bool,
}

impl Lines {
    pub fn new() -> Lines {
        Lines {
            out: Stderr::default(),
            colors: false,
        }
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Progress for Lines {
    fn message(&mut self, text: &str) {
        self.out.line(text);
    }

    fn started(&mut self, s: &Started) {
        self.out.line(&format!(
            "[{}/{}] {}{}",
            s.n,
            s.total,
            s.line.render(self.colors),
            if s.cached { " (from the cache)" } else { "" }
        ));
        for c in s.commands.unwrap_or_default() {
            self.out.line(c);
        }
    }

    fn finished(&mut self, _task: Option<usize>, output: &[u8]) {
        self.out.output(output);
    }

    fn set_total(&mut self, _total: usize) {}

    fn done(&mut self, summary: &str) {
        self.out.line(summary);
    }

    fn broken(&self) -> bool {
        self.out.broken
    }

    fn report(&mut self, text: &str) {
        stdout_line(text);
    }
}
