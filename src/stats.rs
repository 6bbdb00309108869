//! `-d stats`: how long each phase of a run took, printed to stderr at the end. Marks are cheap
//! and always taken; printing is optional.

use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Timings {
    /// Whether marks also note the resident memory (a read of /proc each).
    memory: bool,
    start: Option<Instant>,
    last: Option<Instant>,
    /// Each phase's time, and the resident memory at its (last) end, in KiB.
    phases: Vec<(&'static str, Duration, u64)>,
    /// Things counted, such as build files parsed.
    counts: Vec<(&'static str, u64)>,
    /// Each mark's interval, in order (for traces).
    spans: Vec<(&'static str, Instant, Instant)>,
}

static TIMINGS: Mutex<Timings> = Mutex::new(Timings {
    memory: false,
    start: None,
    last: None,
    phases: Vec::new(),
    counts: Vec::new(),
    spans: Vec::new(),
});

/// Starts the clock (the first mark does too); with `memory`, marks also note the resident memory.
pub fn start(memory: bool) {
    let mut t = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    t.memory = memory;
    let now = Instant::now();
    t.start = Some(now);
    t.last = Some(now);
    t.phases.clear();
    t.counts.clear();
    t.spans.clear();
}

/// Adds `n` to the count `name`.
pub fn count(name: &'static str, n: u64) {
    let mut t = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    match t.counts.iter_mut().find(|(c, _)| *c == name) {
        Some((_, v)) => *v += n,
        None => t.counts.push((name, n)),
    }
}

/// Ends a phase: the time since the previous mark is charged to `name`.
pub fn mark(name: &'static str) {
    let mut t = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let since = t.last.unwrap_or(now);
    t.start.get_or_insert(now);
    t.last = Some(now);
    t.spans.push((name, since, now));
    let rss = if t.memory { resident_kib() } else { 0 };
    match t.phases.iter_mut().find(|(n, _, _)| *n == name) {
        Some((_, d, r)) => {
            *d += now - since;
            *r = rss;
        }
        None => t.phases.push((name, now - since, rss)),
    }
}

/// When the clock started, and every mark's interval so far, in order.
pub fn spans() -> (Option<Instant>, Vec<(&'static str, Instant, Instant)>) {
    let t = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    (t.start, t.spans.clone())
}

/// The resident memory now, in KiB (from /proc/self/statm; 0 where there is none).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * rustix::param::page_size() as u64 / 1024)
}

/// The phases so far, one line each, with the total.
pub fn report() -> String {
    let t = TIMINGS.lock().unwrap_or_else(|e| e.into_inner());
    let mut text = String::from("kiln stats (wall time per phase, resident memory at its end):\n");
    for (name, d, rss) in &t.phases {
        text.push_str(&format!(
            "  {name:<16} {:>9.3} ms {:>8} KiB\n",
            d.as_secs_f64() * 1e3,
            rss
        ));
    }
    if let (Some(start), Some(last)) = (t.start, t.last) {
        text.push_str(&format!(
            "  {:<16} {:>9.3} ms\n",
            "total",
            (last - start).as_secs_f64() * 1e3
        ));
    }
    for (name, n) in &t.counts {
        text.push_str(&format!("  {name:<16} {n:>9}\n"));
    }
    // The peak resident memory of kiln itself (the commands are processes of their own), and
    // what is resident at the end: its own memory, and pages of files it maps (the store).
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    for (label, name) in [
        ("peak memory", "VmHWM:"),
        ("resident: own", "RssAnon:"),
        ("resident: files", "RssFile:"),
    ] {
        if let Some(kib) = field(name) {
            text.push_str(&format!("  {label:<16} {kib:>9} KiB\n"));
        }
    }
    // kiln's own processor time, every thread, not the commands it ran (in clock ticks, from
    // /proc/self/stat: utime and stime are fields 14 and 15).
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some((_, rest)) = stat.rsplit_once(')')
    {
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
                * 10.0
        };
        text.push_str(&format!(
            "  {:<16} {:>9.0} ms user, {:.0} ms system\n",
            "kiln cpu",
            ticks(11),
            ticks(12)
        ));
    }
    text
}
