//! The live display on a terminal, as n2 draws it: under what the build has printed, a status line
//! (`[finished/total] R running, 4.2s elapsed, ETA 12s`) and a line per running task with how long
//! it has run, as many as a third of the terminal's height holds (`... and K more` for the rest).
//! A task's output (headed by its line), messages and the summary go above the display, never
//! into it.
//!
//! Approach: the build's thread only changes [`State`] under a mutex (a map insertion or removal
//! per task, text appended to a queue) and never writes while the display is up. A ticker thread
//! wakes ten times a second, takes the queue and composes the display under the lock, then, with
//! the lock released, writes both to the terminal in one synchronized update: erase the old
//! display (the cursor waits on its first line, so `\r` and erase-below is enough, whatever
//! height it had or whatever `^C` the terminal echoed), the queued text, the new display, and the
//! cursor moved back up to its first line. Nothing is drawn before a task has run for a tenth of a
//! second, so quick builds print only their summary.

use super::frame::{self, Status};
use super::{Color, Progress, Started};
use crossbeam_channel::{RecvTimeoutError, Sender};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the display is drawn again.
const TICK: Duration = Duration::from_millis(100);
/// Erases the display: to the start of its first line, then everything below.
const ERASE: &[u8] = b"\r\x1b[J";
/// A synchronized update (terminals that do not know it ignore it): the terminal shows the
/// display erased and drawn again as one change, so it never flickers.
const BEGIN: &[u8] = b"\x1b[?2026h";
const END: &[u8] = b"\x1b[?2026l";

/// The live display.
pub struct Live {
    shared: Arc<Shared>,
    colors: bool,
    /// Runs while tasks run: from the first start to the summary.
    ticker: Option<Ticker>,
    /// Whether the last thing heard was a message: the output of a task that ends right after it
    /// follows the driver's failure report, which names the task already.
    after_message: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Whether stderr has been closed under us.
    broken: AtomicBool,
}

struct Ticker {
    stop: Sender<()>,
    /// Says whether a display is left on the terminal.
    thread: JoinHandle<bool>,
}

/// Which stream queued text goes to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stderr,
    /// A query's answer (`--explain`).
    Stdout,
}

/// A task on the display.
struct Running {
    /// `rule: inputs -> outputs`, without colour.
    line: String,
    /// The rule's name is the line's first `rule_len` bytes.
    rule_len: usize,
    color: Option<Color>,
    began: Instant,
    expected: Option<Duration>,
}

impl Running {
    fn heading(&self, colors: bool) -> String {
        frame::paint(&self.line, self.rule_len, self.color, colors)
    }
}

/// What the display shows and what waits to be printed above it.
struct State {
    began: Instant,
    /// The running tasks in the order they started (oldest first, as the display lists them),
    /// and where each task is in it.
    running: BTreeMap<u64, Running>,
    order: HashMap<usize, u64>,
    starts: u64,
    /// Tasks ended (run or spared) and expected.
    finished: usize,
    total: usize,
    /// The most tasks seen running at once: the slots the work left is divided among.
    slots: usize,
    /// The expected durations of the tasks started so far: their sum and how many.
    known: Duration,
    known_count: u32,
    /// Text to print above the display, in order.
    queue: Vec<(Stream, Vec<u8>)>,
}

impl State {
    fn new() -> State {
        State {
            began: Instant::now(),
            running: BTreeMap::new(),
            order: HashMap::new(),
            starts: 0,
            finished: 0,
            total: 0,
            slots: 0,
            known: Duration::ZERO,
            known_count: 0,
            queue: Vec::new(),
        }
    }

    fn push(&mut self, stream: Stream, bytes: &[u8]) {
        match self.queue.last_mut() {
            Some((s, text)) if *s == stream => text.extend_from_slice(bytes),
            _ => self.queue.push((stream, bytes.to_vec())),
        }
    }

    fn line(&mut self, stream: Stream, text: &str) {
        self.push(stream, text.as_bytes());
        self.push(stream, b"\n");
    }

    /// The display's lines for a terminal of `cols` by `rows`, each ending in a newline; and how
    /// many there are.
    fn compose(&self, now: Instant, cols: usize, rows: usize, colors: bool) -> (String, usize) {
        // The last column stays free: some terminals wrap on writing it.
        let width = cols.saturating_sub(1).max(1);
        let eta = (self.known_count > 0).then(|| {
            let mean = self.known / self.known_count;
            let running = self.running.len();
            frame::eta(
                mean,
                self.running
                    .values()
                    .map(|r| (r.expected, now.saturating_duration_since(r.began))),
                self.total.saturating_sub(self.finished + running),
                self.slots,
            )
        });
        let status = Status {
            finished: self.finished,
            total: self.total,
            running: self.running.len(),
            elapsed: now.saturating_duration_since(self.began),
            eta,
        };
        let mut text = status.line(width, colors);
        text.push('\n');
        let room = (rows / 3).max(1);
        let listed = if self.running.len() <= room {
            self.running.len()
        } else {
            room - 1
        };
        for r in self.running.values().take(listed) {
            let elapsed = now.saturating_duration_since(r.began);
            text += &frame::running(&r.line, r.rule_len, r.color, elapsed, width, colors);
            text.push('\n');
        }
        let more = self.running.len() - listed;
        if more > 0 {
            text += &frame::fit(&format!("  ... and {more} more"), width);
            text.push('\n');
        }
        (text, 1 + listed + usize::from(more > 0))
    }
}

impl Live {
    pub fn new(colors: bool) -> Live {
        Live {
            shared: Arc::new(Shared {
                state: Mutex::new(State::new()),
                broken: AtomicBool::new(false),
            }),
            colors,
            ticker: None,
            after_message: false,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared)
    }

    /// Prints `text` above the display: queued while the display is up, written at once
    /// otherwise.
    fn above(&mut self, stream: Stream, text: &[u8]) {
        if self.ticker.is_some() {
            self.state().push(stream, text);
        } else if !emit(&[], vec![(stream, text.to_vec())], &[]) {
            self.shared.broken.store(true, Ordering::Relaxed);
        }
    }

    /// Stops the ticker and erases its display, printing what it had not printed yet.
    fn stop(&mut self) -> Vec<u8> {
        let Some(ticker) = self.ticker.take() else {
            return Vec::new();
        };
        drop(ticker.stop);
        // A ticker that panicked left the display up, at worst.
        let shown = ticker.thread.join().unwrap_or(true);
        if shown { ERASE.to_vec() } else { Vec::new() }
    }

    /// Ends the display: erased, what it queued printed, then `last` (the summary).
    fn finish(&mut self, last: &str) {
        let erase = self.stop();
        let queue = {
            let mut state = self.state();
            if !last.is_empty() {
                state.line(Stream::Stderr, last);
            }
            let queue = std::mem::take(&mut state.queue);
            *state = State::new();
            queue
        };
        if !emit(&erase, queue, &[]) {
            self.shared.broken.store(true, Ordering::Relaxed);
        }
    }
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // The state stays consistent through a panic elsewhere: every change is one step.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Progress for Live {
    fn message(&mut self, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        self.above(Stream::Stderr, &bytes);
        self.after_message = true;
    }

    fn started(&mut self, s: &Started) {
        self.after_message = false;
        let colors = self.colors;
        let running = Running {
            line: s.line.render(false),
            rule_len: s.line.rule.len(),
            color: s.line.color,
            began: Instant::now(),
            expected: s.expected,
        };
        {
            let mut state = self.state();
            if let Some(commands) = s.commands {
                let heading = running.heading(colors);
                state.line(Stream::Stderr, &heading);
                for c in commands {
                    state.line(Stream::Stderr, c);
                }
            }
            if let Some(e) = s.expected {
                state.known += e;
                state.known_count += 1;
            }
            state.total = state.total.max(s.total);
            let at = state.starts;
            state.starts += 1;
            state.order.insert(s.task, at);
            state.running.insert(at, running);
            state.slots = state.slots.max(state.running.len());
        }
        if self.ticker.is_none() {
            self.ticker = Some(spawn(self.shared.clone(), colors));
        }
    }

    fn finished(&mut self, task: Option<usize>, output: &[u8]) {
        let headed = std::mem::take(&mut self.after_message);
        let colors = self.colors;
        let mut state = self.state();
        state.finished += 1;
        let running = task
            .and_then(|t| state.order.remove(&t))
            .and_then(|at| state.running.remove(&at));
        if output.is_empty() {
            return;
        }
        if let Some(r) = running.filter(|_| !headed) {
            state.line(Stream::Stderr, &r.heading(colors));
        }
        state.push(Stream::Stderr, output);
        if !output.ends_with(b"\n") {
            state.push(Stream::Stderr, b"\n");
        }
        if self.ticker.is_none() {
            let queue = std::mem::take(&mut state.queue);
            drop(state);
            if !emit(&[], queue, &[]) {
                self.shared.broken.store(true, Ordering::Relaxed);
            }
        }
    }

    fn set_total(&mut self, total: usize) {
        self.state().total = total;
    }

    fn done(&mut self, summary: &str) {
        self.after_message = false;
        self.finish(summary);
    }

    fn broken(&self) -> bool {
        self.shared.broken.load(Ordering::Relaxed)
    }

    fn report(&mut self, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        self.above(Stream::Stdout, &bytes);
    }
}

impl Drop for Live {
    /// A build that ended without a summary (an error) leaves no display behind.
    fn drop(&mut self) {
        if self.ticker.is_some() {
            self.finish("");
        }
    }
}

/// Starts the ticker: it draws the display every [`TICK`] until its channel closes.
fn spawn(shared: Arc<Shared>, colors: bool) -> Ticker {
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let thread = std::thread::spawn(move || {
        let mut shown = false;
        let mut last = String::new();
        let mut up = Vec::new();
        loop {
            match stopped.recv_timeout(TICK) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return shown,
            }
            let (cols, rows) = size();
            let (queue, display, lines) = {
                let mut state = lock(&shared);
                let (display, lines) = state.compose(Instant::now(), cols, rows, colors);
                (std::mem::take(&mut state.queue), display, lines)
            };
            if queue.is_empty() && display == last {
                continue;
            }
            let mut before = BEGIN.to_vec();
            if shown {
                before.extend_from_slice(ERASE);
            }
            up.clear();
            up.extend_from_slice(display.as_bytes());
            let _ = write!(up, "\x1b[{lines}A");
            up.extend_from_slice(END);
            if !emit(&before, queue, &up) {
                shared.broken.store(true, Ordering::Relaxed);
                return false;
            }
            shown = true;
            last = display;
        }
    });
    Ticker { stop, thread }
}

/// The terminal's columns and rows (80 by 24 when it will not say).
fn size() -> (usize, usize) {
    match rustix::termios::tcgetwinsize(std::io::stderr()) {
        Ok(ws) if ws.ws_col > 0 && ws.ws_row > 0 => (ws.ws_col.into(), ws.ws_row.into()),
        _ => (80, 24),
    }
}

/// Writes `before`, the queued text (a query's answers to stdout, the rest to stderr) and
/// `after` to stderr; false when stderr is closed. A closed stdout is ignored, as
/// [`super::stdout_line`] ignores it.
fn emit(before: &[u8], queue: Vec<(Stream, Vec<u8>)>, after: &[u8]) -> bool {
    let mut err = std::io::stderr().lock();
    let mut pending = before.to_vec();
    for (stream, text) in queue {
        match stream {
            Stream::Stderr => pending.extend_from_slice(&text),
            Stream::Stdout => {
                if err.write_all(&pending).and_then(|_| err.flush()).is_err() {
                    return false;
                }
                pending.clear();
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&text).and_then(|_| out.flush());
            }
        }
    }
    pending.extend_from_slice(after);
    pending.is_empty() || err.write_all(&pending).and_then(|_| err.flush()).is_ok()
}
