//! The live display's lines as pure functions of what it knows: the status line, a running task's
//! line, text fitted to the terminal's width, durations as a person reads them, and the estimate
//! of the time left.

use super::Color;
use std::borrow::Cow;
use std::time::Duration;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// What marks a line cut short.
const CUT: &str = "...";

/// `text` cut to at most `width` columns of the terminal, ending in `...` when cut.
pub(super) fn fit(text: &str, width: usize) -> Cow<'_, str> {
    let mut used = 0;
    // Where the text would be cut to leave room for the mark, should it need cutting.
    let mut keep = None;
    for (i, c) in text.char_indices() {
        let w = c.width().unwrap_or(0);
        if keep.is_none() && used + w > width.saturating_sub(CUT.len()) {
            keep = Some(i);
        }
        used += w;
        if used > width {
            let head = &text[..keep.unwrap_or(i)];
            return if width < CUT.len() {
                Cow::Owned(CUT[..width].to_string())
            } else {
                Cow::Owned(format!("{head}{CUT}"))
            };
        }
    }
    Cow::Borrowed(text)
}

/// `text` cut to at most `width` columns by taking out its middle (`...` in its place), keeping its
/// start (the rule, the first inputs) and, longer, its end (the outputs); and how many bytes of its
/// start are kept.
pub(super) fn fit_middle(text: &str, width: usize) -> (Cow<'_, str>, usize) {
    if text.width() <= width {
        return (Cow::Borrowed(text), text.len());
    }
    let room = width.saturating_sub(CUT.len());
    if room < 6 {
        let fitted = fit(text, width);
        let kept = fitted.len().saturating_sub(CUT.len());
        return (fitted, kept);
    }
    let (head_room, mut tail_room) = (room / 3, room - room / 3);
    let mut head = 0;
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += c.width().unwrap_or(0);
        if used > head_room {
            break;
        }
        head = i + c.len_utf8();
    }
    let mut tail = text.len();
    for (i, c) in text.char_indices().rev() {
        let w = c.width().unwrap_or(0);
        if w > tail_room || i < head {
            break;
        }
        tail_room -= w;
        tail = i;
    }
    (
        Cow::Owned(format!("{}{CUT}{}", &text[..head], &text[tail..])),
        head,
    )
}

/// `text`, whose first `rule_len` bytes are a rule's name, with that name in the rule's colour.
pub(super) fn paint(text: &str, rule_len: usize, color: Option<Color>, colors: bool) -> String {
    match color.filter(|_| colors) {
        Some(c) => {
            let mut end = rule_len.min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("\x1b[{}m{}\x1b[0m{}", c.ansi(), &text[..end], &text[end..])
        }
        None => text.to_string(),
    }
}

/// How long something has run: `0.4s`, `12.3s`, `2m05s`, `1h02m`.
pub(super) fn clock(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

/// A time left, rounded up to the second: `3s`, `2m05s`, `1h02m`.
pub(super) fn left(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

/// The time the build has left: the work left (what each running task has left of its expected
/// duration, and the mean duration for each task not yet started) divided among the slots, and
/// never less than what the running task with the most left has. A task without an expected
/// duration is expected to take `mean`.
pub(super) fn eta(
    mean: Duration,
    running: impl Iterator<Item = (Option<Duration>, Duration)>,
    waiting: usize,
    slots: usize,
) -> Duration {
    let mut work = mean.saturating_mul(u32::try_from(waiting).unwrap_or(u32::MAX));
    let mut longest = Duration::ZERO;
    for (expected, elapsed) in running {
        let rest = expected.unwrap_or(mean).saturating_sub(elapsed);
        work = work.saturating_add(rest);
        longest = longest.max(rest);
    }
    (work / u32::try_from(slots.max(1)).unwrap_or(u32::MAX)).max(longest)
}

/// What the status line says.
pub(super) struct Status {
    pub finished: usize,
    pub total: usize,
    pub running: usize,
    pub elapsed: Duration,
    pub eta: Option<Duration>,
}

impl Status {
    /// `[finished/total] R running, 4.2s elapsed, ETA 12s`, within `width` columns; the counter in
    /// bold when `colors`.
    pub(super) fn line(&self, width: usize, colors: bool) -> String {
        let counter = format!("[{}/{}]", self.finished, self.total.max(self.finished));
        let mut rest = format!(
            " {} running, {} elapsed",
            self.running,
            clock(self.elapsed)
        );
        if let Some(eta) = self.eta {
            rest.push_str(&format!(", ETA {}", left(eta)));
        }
        let text = format!("{counter}{rest}");
        let fitted = fit(&text, width);
        if colors && fitted.len() >= counter.len() {
            format!("\x1b[1m{counter}\x1b[0m{}", &fitted[counter.len()..])
        } else {
            fitted.into_owned()
        }
    }
}

/// A running task's line: `  rule: inputs -> outputs   1.2s`, the task cut in the middle to leave
/// room for its time within `width` columns.
pub(super) fn running(
    line: &str,
    rule_len: usize,
    color: Option<Color>,
    elapsed: Duration,
    width: usize,
    colors: bool,
) -> String {
    const INDENT: &str = "  ";
    const GAP: &str = "   ";
    let time = clock(elapsed);
    let room = width.saturating_sub(INDENT.len() + GAP.len() + time.len());
    if room < 8 {
        // Too narrow for both: the task alone, as much of it as fits.
        let fitted = fit(line, width.saturating_sub(INDENT.len()));
        return format!("{INDENT}{}", paint(&fitted, rule_len, color, colors));
    }
    let (fitted, head) = fit_middle(line, room);
    format!(
        "{INDENT}{}{GAP}{time}",
        paint(&fitted, rule_len.min(head), color, colors)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_by_its_width_on_the_terminal() {
        assert_eq!(fit("cc: a.c -> a.o", 20), "cc: a.c -> a.o");
        assert_eq!(fit("cc: a.c -> a.o", 14), "cc: a.c -> a.o");
        assert_eq!(fit("cc: a.c -> a.o", 13), "cc: a.c ->...");
        assert_eq!(fit("cc: a.c -> a.o", 2), "..");
        assert_eq!(fit("cc: a.c -> a.o", 0), "");
        // Wide characters count twice; none is split.
        let wide = "cc: 日本語.c -> 日本語.o";
        for width in 0..30 {
            let cut = fit(wide, width);
            assert!(cut.width() <= width, "{width}: {cut}");
        }
        assert_eq!(fit(wide, 10), "cc: 日...");
        assert_eq!(fit(wide, 11), "cc: 日本...");
    }

    #[test]
    fn a_line_too_wide_loses_its_middle() {
        let line = "cc: src/a_long_name.c -> build/src/a_long_name.o";
        assert_eq!(fit_middle(line, 60), (Cow::Borrowed(line), line.len()));
        let (cut, head) = fit_middle(line, 30);
        assert_eq!(cut, "cc: src/a.../src/a_long_name.o");
        assert_eq!(head, 9);
        for width in 0..line.len() {
            assert!(fit_middle(line, width).0.width() <= width, "{width}");
        }
        let wide = "cc: 日本語日本語.c -> 日本語日本語.o";
        for width in 0..40 {
            assert!(fit_middle(wide, width).0.width() <= width, "{width}");
        }
    }

    #[test]
    fn a_rule_name_is_painted_even_when_the_line_is_cut_inside_it() {
        let green = Some(Color::Green);
        assert_eq!(paint("cc: a.c", 2, green, true), "\x1b[32mcc\x1b[0m: a.c");
        assert_eq!(paint("cc: a.c", 2, green, false), "cc: a.c");
        assert_eq!(paint("c...", 7, green, true), "\x1b[32mc...\x1b[0m");
        assert_eq!(paint("cc: a.c", 2, None, true), "cc: a.c");
    }

    #[test]
    fn durations_read_as_a_person_reads_them() {
        assert_eq!(clock(Duration::from_millis(420)), "0.4s");
        assert_eq!(clock(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(clock(Duration::from_secs(125)), "2m05s");
        assert_eq!(clock(Duration::from_secs(3720)), "1h02m");
        assert_eq!(left(Duration::from_millis(2_100)), "3s");
        assert_eq!(left(Duration::ZERO), "0s");
        assert_eq!(left(Duration::from_secs(125)), "2m05s");
        assert_eq!(left(Duration::from_secs(7300)), "2h01m");
    }

    #[test]
    fn the_eta_divides_the_work_left_among_the_slots() {
        let s = Duration::from_secs;
        // Two running, 2s expected each and 1s gone; two waiting at the 2s mean; two slots.
        let running = [(Some(s(2)), s(1)), (Some(s(2)), s(1))];
        assert_eq!(eta(s(2), running.into_iter(), 2, 2), s(3));
        // A task without a duration takes the mean; an overdue one has nothing left.
        let running = [(None, s(1)), (Some(s(1)), s(5))];
        assert_eq!(eta(s(4), running.into_iter(), 0, 2), s(3));
        // Never less than the running task with the most left.
        let running = [(Some(s(10)), s(0))];
        assert_eq!(eta(s(1), running.into_iter(), 1, 4), s(10));
    }

    #[test]
    fn the_status_line_counts_and_times_and_fits() {
        let status = Status {
            finished: 3,
            total: 8,
            running: 2,
            elapsed: Duration::from_millis(4_200),
            eta: Some(Duration::from_millis(11_500)),
        };
        assert_eq!(
            status.line(80, false),
            "[3/8] 2 running, 4.2s elapsed, ETA 12s"
        );
        assert_eq!(
            status.line(80, true),
            "\x1b[1m[3/8]\x1b[0m 2 running, 4.2s elapsed, ETA 12s"
        );
        assert_eq!(status.line(20, false), "[3/8] 2 running, ...");
        let unknown = Status { eta: None, ..status };
        assert_eq!(unknown.line(80, false), "[3/8] 2 running, 4.2s elapsed");
    }

    #[test]
    fn a_running_task_keeps_its_time_when_cut() {
        let t = Duration::from_millis(1_234);
        assert_eq!(
            running("cc: src/a.c -> build/a.o", 2, None, t, 80, false),
            "  cc: src/a.c -> build/a.o   1.2s"
        );
        let cut = running("cc: src/a.c -> build/a.o", 2, None, t, 25, false);
        assert_eq!(cut, "  cc: ...build/a.o   1.2s");
        assert_eq!(cut.width(), 25);
        let green = Some(Color::Green);
        assert_eq!(
            running("cc: src/a.c -> build/a.o", 2, green, t, 25, true),
            "  \x1b[32mcc\x1b[0m: ...build/a.o   1.2s"
        );
        // A rule cut short is painted as far as it goes.
        assert_eq!(
            running("compile: src/a.c -> build/a.o", 7, green, t, 25, true),
            "  \x1b[32mcomp\x1b[0m...build/a.o   1.2s"
        );
        assert_eq!(
            running("cc: src/a.c -> build/a.o", 2, None, t, 12, false),
            "  cc: src..."
        );
    }
}
