//! `--timings`: the build as a page, `<out>/kiln-timings.html`, that needs nothing but itself
//! (inline CSS and SVG, no script, nothing fetched). Every task that ran is a bar on the lane of
//! the worker that ran it, coloured by rule, its `[n/N]` line, commands and duration in the SVG
//! `<title>` a browser shows on hover; the critical path is framed; a summary gives the totals,
//! the slowest tasks, the time per rule and how many tasks ran at each instant.
//!
//! The critical path: from the task that ended last, step back to the producer (of those that
//! ran) that ended last, and so on: the chain of tasks that kept the build from ending sooner.

use super::{Recorder, Span, TaskInfo};
use crate::ids::TaskId;
use crate::progress::Color;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::time::{Duration, Instant};

mod charts;
use charts::{concurrency, concurrency_chart, timeline};

/// The page's file name, in the build directory.
pub const FILE: &str = "kiln-timings.html";

/// The fills of rules without a `color`, taken in order of rule name, skipping those a rule's
/// `color` takes. Muted tones that the page uses for nothing else.
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#edc948", "#b07aa1", "#76b7b2", "#ff9da7", "#9c755f",
    "#bab0ac", "#e15759",
];
/// The outline and bottom stripe of the bars on the critical path.
pub const CRITICAL: &str = "#2b1055";
/// The outline of a bar whose task failed.
const FAILED: &str = "#c00000";

/// The fill of a rule whose `color` the build file gives (as a terminal colour name).
pub fn fill_of(color: Color) -> Option<&'static str> {
    Some(match color {
        Color::Blue => PALETTE[0],
        Color::Yellow => PALETTE[3],
        Color::Green => PALETTE[2],
        Color::Magenta => PALETTE[4],
        Color::Cyan => PALETTE[5],
        Color::White => PALETTE[8],
        Color::Red => PALETTE[9],
        Color::Black => "#6b6b6b",
        Color::Normal => return None,
    })
}

/// What the page says of the build as a whole.
pub struct About<'a> {
    /// The project's name, or its directory's.
    pub project: &'a str,
    /// The build's `-j`.
    pub jobs: usize,
    /// When the build ended: the right edge of the page's time axis.
    pub end: Instant,
}

/// A task that ran, as the page draws it.
struct Bar {
    span: Span,
    info: TaskInfo,
    /// Seconds from the build's start.
    start: f64,
    end: f64,
    /// Its place in start order: the `n` of `[n/N]`.
    n: usize,
    critical: bool,
}

impl Bar {
    fn secs(&self) -> f64 {
        self.end - self.start
    }
}

/// The critical path, as indices into `spans`, first task first: from the span that ended last,
/// back through the producer (among the tasks in `spans`) that ended last, until a task none of
/// whose producers ran.
pub fn critical_path(spans: &[Span], producers: &dyn Fn(TaskId) -> Vec<TaskId>) -> Vec<usize> {
    let by_task: HashMap<TaskId, usize> =
        spans.iter().enumerate().map(|(i, s)| (s.task, i)).collect();
    let Some(mut at) = (0..spans.len()).max_by_key(|&i| spans[i].end) else {
        return Vec::new();
    };
    let mut chain = vec![at];
    let mut seen: HashSet<usize> = HashSet::from([at]);
    while let Some(prev) = producers(spans[at].task)
        .into_iter()
        .filter_map(|p| by_task.get(&p).copied())
        .filter(|i| !seen.contains(i))
        .max_by_key(|&i| spans[i].end)
    {
        seen.insert(prev);
        chain.push(prev);
        at = prev;
    }
    chain.reverse();
    chain
}

/// The page. `info` describes a task; `producers` names the tasks that make what a task reads.
pub fn render(
    rec: &Recorder,
    info: &dyn Fn(TaskId) -> TaskInfo,
    producers: &dyn Fn(TaskId) -> Vec<TaskId>,
    about: &About,
) -> String {
    let secs = |at: Instant| at.saturating_duration_since(rec.origin).as_secs_f64();
    let mut spans = rec.spans.clone();
    spans.sort_by_key(|s| (s.start, s.lane));
    let critical = critical_path(&spans, producers);
    let on_path: HashSet<usize> = critical.iter().copied().collect();
    let bars: Vec<Bar> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| Bar {
            span: *s,
            info: info(s.task),
            start: secs(s.start),
            end: secs(s.end),
            n: i + 1,
            critical: on_path.contains(&i),
        })
        .collect();
    let total = bars
        .iter()
        .map(|b| b.end)
        .fold(secs(about.end), f64::max)
        .max(1e-3);
    let fills = fills(&bars);
    let path_secs: f64 = critical.iter().map(|&i| bars[i].secs()).sum();
    let busy: f64 = bars.iter().map(Bar::secs).sum();
    let steps = concurrency(&bars);
    let peak = steps.iter().map(|s| s.1).max().unwrap_or(0);
    let failed = bars.iter().filter(|b| !b.span.ok).count();

    let mut h = String::with_capacity(4096 + bars.len() * 600);
    let title = format!("kiln timings: {}", about.project);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n\
         <p class=\"sub\">started {} UTC &middot; {} tasks ran in {} at -j{}</p>\n",
        escape(&title),
        escape(&title),
        utc(rec.origin_unix_micros() / 1_000_000),
        bars.len(),
        duration(total),
        about.jobs
    );
    h.push_str("<div class=\"cards\">\n");
    let mut card = |value: String, what: &str| {
        let _ = writeln!(h, "<div class=\"card\"><b>{value}</b><span>{what}</span></div>");
    };
    card(duration(total), "total time");
    card(bars.len().to_string(), "tasks run");
    card(format!("-j{}", about.jobs), "jobs");
    card(
        duration(path_secs),
        &format!("critical path, {} tasks", critical.len()),
    );
    card(format!("{:.1}&times;", busy / total), &format!("parallelism, peak {peak}"));
    if failed > 0 {
        card(failed.to_string(), "failed");
    }
    h.push_str("</div>\n");

    legend(&mut h, &bars, &fills);
    h.push_str("<h2>Tasks on their workers</h2>\n");
    if bars.is_empty() {
        h.push_str("<p>No task ran.</p>\n");
    } else {
        timeline(&mut h, &bars, &fills, total);
        h.push_str("<h2>Tasks running at each instant</h2>\n");
        concurrency_chart(&mut h, &steps, total, about.jobs.max(peak));
    }
    tables(&mut h, &bars, &fills, &critical);
    h.push_str("</body>\n</html>\n");
    h
}

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;\
margin:20px 28px;color:#222;background:#fff}\n\
h1{font-size:21px;margin:0 0 2px}h2{font-size:15px;margin:22px 0 6px}\n\
.sub,.dim{color:#6a6a6a}.sub{margin:0 0 14px}\n\
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:12px}\n\
.card{border:1px solid #dcdcdc;border-radius:6px;padding:6px 14px;min-width:96px}\n\
.card b{display:block;font-size:19px}.card span{color:#6a6a6a;font-size:12px}\n\
.legend{display:flex;flex-wrap:wrap;gap:4px 18px;margin:6px 0}\n\
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px}\n\
.sw.crit{box-sizing:border-box;border:3px solid;background:#fff}\n\
svg{display:block}svg text{font-size:11px;font-family:system-ui,sans-serif}\n\
.t:hover rect{opacity:.85}\n\
table{border-collapse:collapse;margin:4px 0 10px}\n\
th,td{padding:2px 10px 2px 0;text-align:left;border-bottom:1px solid #eee;vertical-align:top}\n\
th{font-weight:600;color:#444}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n\
.cols{display:flex;flex-wrap:wrap;gap:0 48px}\n";

/// The fill of each rule: its `color`'s, else the next palette entry no rule's `color` takes.
fn fills(bars: &[Bar]) -> BTreeMap<String, &'static str> {
    let mut rules: BTreeMap<String, Option<&'static str>> = BTreeMap::new();
    for b in bars {
        rules
            .entry(b.info.rule.clone())
            .or_insert(b.info.color.and_then(fill_of));
    }
    let taken: HashSet<&str> = rules.values().flatten().copied().collect();
    let mut free = PALETTE.iter().filter(|c| !taken.contains(*c)).cycle();
    rules
        .into_iter()
        .map(|(rule, fill)| {
            let fill = fill.unwrap_or_else(|| free.next().copied().unwrap_or(PALETTE[0]));
            (rule, fill)
        })
        .collect()
}

/// Each rule's swatch with its task count and time, and the critical path's marking.
fn legend(h: &mut String, bars: &[Bar], fills: &BTreeMap<String, &str>) {
    h.push_str("<div class=\"legend\">\n");
    for (rule, fill) in fills {
        let of: Vec<&Bar> = bars.iter().filter(|b| &b.info.rule == rule).collect();
        let _ = writeln!(
            h,
            "<span><span class=\"sw\" style=\"background:{fill}\"></span>{} \
             <span class=\"dim\">{} &middot; {}</span></span>",
            escape(rule),
            of.len(),
            duration(of.iter().map(|b| b.secs()).sum())
        );
    }
    if !bars.is_empty() {
        let _ = writeln!(
            h,
            "<span><span class=\"sw crit\" style=\"border-color:{CRITICAL}\"></span>critical path</span>"
        );
    }
    h.push_str("</div>\n");
}

/// The critical path, the slowest tasks and the time per rule.
fn tables(h: &mut String, bars: &[Bar], fills: &BTreeMap<String, &str>, critical: &[usize]) {
    if bars.is_empty() {
        return;
    }
    let swatch = |b: &Bar| {
        format!(
            "<span class=\"sw\" style=\"background:{}\"></span>",
            fills[&b.info.rule]
        )
    };
    h.push_str("<div class=\"cols\">\n<div>\n<h2>Slowest tasks</h2>\n<table>\n");
    h.push_str("<tr><th>time</th><th>task</th></tr>\n");
    let mut slowest: Vec<&Bar> = bars.iter().collect();
    slowest.sort_by(|a, b| b.secs().total_cmp(&a.secs()).then(a.n.cmp(&b.n)));
    for b in slowest.iter().take(10) {
        let _ = writeln!(
            h,
            "<tr><td class=\"n\">{}</td><td>{}{}</td></tr>",
            duration(b.secs()),
            swatch(b),
            escape(&b.info.label)
        );
    }
    h.push_str("</table>\n</div>\n<div>\n<h2>Time per rule</h2>\n<table>\n");
    h.push_str("<tr><th>rule</th><th>tasks</th><th>total</th><th>mean</th><th>share</th></tr>\n");
    let busy: f64 = bars.iter().map(Bar::secs).sum::<f64>().max(1e-9);
    let mut per_rule: Vec<(&String, usize, f64)> = fills
        .keys()
        .map(|rule| {
            let of = bars.iter().filter(|b| &b.info.rule == rule);
            (rule, of.clone().count(), of.map(Bar::secs).sum())
        })
        .collect();
    per_rule.sort_by(|a, b| b.2.total_cmp(&a.2));
    for (rule, count, sum) in per_rule {
        let _ = writeln!(
            h,
            "<tr><td><span class=\"sw\" style=\"background:{}\"></span>{}</td>\
             <td class=\"n\">{count}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{:.0}%</td></tr>",
            fills[rule],
            escape(rule),
            duration(sum),
            duration(sum / count as f64),
            sum / busy * 100.0
        );
    }
    h.push_str("</table>\n</div>\n</div>\n<h2>Critical path</h2>\n<table class=\"critical\">\n");
    h.push_str("<tr><th>start</th><th>time</th><th>task</th></tr>\n");
    for &i in critical {
        let b = &bars[i];
        let _ = writeln!(
            h,
            "<tr><td class=\"n\">{:.3} s</td><td class=\"n\">{}</td><td>{}{}</td></tr>",
            b.start,
            duration(b.secs()),
            swatch(b),
            escape(&b.info.label)
        );
    }
    h.push_str("</table>\n");
}

/// A time as people read it: `340 ms`, `2.41 s`, `1 min 05 s`.
fn duration(secs: f64) -> String {
    if secs < 1.0 {
        format!("{:.0} ms", secs * 1000.0)
    } else if secs < 60.0 {
        format!("{secs:.2} s")
    } else {
        let whole = Duration::from_secs_f64(secs).as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// Text made safe inside an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spans of tasks 0.. at (start, end) milliseconds after `origin`, on lane 0.
    fn spans(origin: Instant, at: &[(u64, u64)]) -> Vec<Span> {
        let ms = |m: u64| origin + Duration::from_millis(m);
        at.iter()
            .enumerate()
            .map(|(i, &(s, e))| Span {
                task: TaskId(i as u32),
                lane: 0,
                start: ms(s),
                end: ms(e),
                ok: true,
            })
            .collect()
    }

    #[test]
    fn the_critical_path_steps_back_to_the_producer_that_ended_last() {
        // 0 and 1 feed 2 (1 ends later); 2 and 3 feed 4; 5 ends last and reads 4; 6 made nothing
        // anyone read. Task 7 did not run: a producer that did not run is not on the path.
        let origin = Instant::now();
        let s = spans(
            origin,
            &[(0, 100), (0, 300), (300, 400), (0, 350), (400, 500), (500, 900), (0, 800)],
        );
        let producers = |t: TaskId| match t.0 {
            2 => vec![TaskId(0), TaskId(1)],
            4 => vec![TaskId(2), TaskId(3)],
            5 => vec![TaskId(4), TaskId(7)],
            _ => Vec::new(),
        };
        assert_eq!(critical_path(&s, &producers), [1, 2, 4, 5]);
        // Found in the spans by task, whatever their order.
        let mut shuffled = s.clone();
        shuffled.reverse();
        let path: Vec<u32> = critical_path(&shuffled, &producers)
            .into_iter()
            .map(|i| shuffled[i].task.0)
            .collect();
        assert_eq!(path, [1, 2, 4, 5]);
        assert!(critical_path(&[], &producers).is_empty());
        // A task alone is its own path.
        assert_eq!(critical_path(&s[..1], &producers), [0]);
    }

    #[test]
    fn text_is_escaped_in_elements_and_attributes() {
        assert_eq!(
            escape(r#"cc -DX='"a<b>"' && echo & "#),
            "cc -DX=&#39;&quot;a&lt;b&gt;&quot;&#39; &amp;&amp; echo &amp; "
        );
        let mut rec = Recorder::new();
        let t0 = rec.origin;
        rec.ran(Span {
            task: TaskId(0),
            lane: 1,
            start: t0 + Duration::from_millis(10),
            end: t0 + Duration::from_millis(60),
            ok: false,
        });
        let info = |_| TaskInfo {
            label: "cc: <a>.c -> build/<a>.o".into(),
            rule: "c&c".into(),
            color: None,
            commands: vec!["echo '</title><script>' > \"x\"".into()],
        };
        let about = About {
            project: "p<q>",
            jobs: 2,
            end: t0 + Duration::from_millis(100),
        };
        let page = render(&rec, &info, &|_| Vec::new(), &about);
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<a>"), "{page}");
        assert!(page.contains("[1/1] cc: &lt;a&gt;.c -&gt; build/&lt;a&gt;.o"));
        assert!(page.contains("$ echo &#39;&lt;/title&gt;&lt;script&gt;&#39; &gt; &quot;x&quot;"));
        assert!(page.contains("<title>kiln timings: p&lt;q&gt;</title>"));
        assert!(page.contains("c&amp;c"));
        // Two lanes (worker 2 ran it), the failure outlined, and nothing fetched from elsewhere.
        assert!(page.contains(">worker 2</text>"));
        assert!(page.contains(&format!("fill=\"{FAILED}\"")));
        assert!(!page.contains("src=") && !page.contains("href="));
    }

    #[test]
    fn rules_take_their_colour_or_the_next_free_palette_entry() {
        let bar = |rule: &str, color| Bar {
            span: spans(Instant::now(), &[(0, 1)])[0],
            info: TaskInfo {
                label: String::new(),
                rule: rule.into(),
                color,
                commands: Vec::new(),
            },
            start: 0.0,
            end: 1.0,
            n: 1,
            critical: false,
        };
        let f = fills(&[
            bar("link", None),
            bar("cc", Some(Color::Blue)),
            bar("ar", None),
            bar("cc", Some(Color::Blue)),
        ]);
        assert_eq!(f["cc"], PALETTE[0]);
        assert_eq!(f["ar"], PALETTE[1]);
        assert_eq!(f["link"], PALETTE[2]);
    }

    #[test]
    fn times_and_dates_read_as_people_write_them() {
        assert_eq!(duration(0.3404), "340 ms");
        assert_eq!(duration(2.414), "2.41 s");
        assert_eq!(duration(65.2), "1 min 05 s");
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_709_251_199), "2024-02-29 23:59:59");
    }
}
