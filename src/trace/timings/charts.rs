//! The page's two charts, in SVG: the tasks on their workers' lanes, and how many ran at each
//! instant, over one time axis. Positions are whole pixels and bars are drawn with crisp edges,
//! so that each fill shows as exactly its colour.

use super::{Bar, CRITICAL, FAILED, duration, escape};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Left of the plot: the lanes' names.
const GUTTER: f64 = 76.0;
const PLOT: f64 = 1000.0;
const WIDTH: f64 = GUTTER + PLOT + 20.0;
const AXIS: f64 = 22.0;
const LANE: f64 = 30.0;
const BAR: f64 = 24.0;

fn x_of(t: f64, total: f64) -> f64 {
    GUTTER + (t / total * PLOT).round()
}

/// One lane per worker, each task a bar from its start to its end.
pub(super) fn timeline(h: &mut String, bars: &[Bar], fills: &BTreeMap<String, &str>, total: f64) {
    let lanes = bars.iter().map(|b| b.span.lane + 1).max().unwrap_or(0);
    let height = AXIS + lanes as f64 * LANE + 4.0;
    let _ = writeln!(
        h,
        "<svg width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">"
    );
    for lane in 0..lanes {
        let y = AXIS + lane as f64 * LANE;
        if lane % 2 == 1 {
            let _ = writeln!(
                h,
                "<rect x=\"{GUTTER}\" y=\"{y}\" width=\"{PLOT}\" height=\"{LANE}\" fill=\"#f6f6f6\"/>"
            );
        }
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#444\">worker {}</text>",
            GUTTER - 8.0,
            y + 19.0,
            lane + 1
        );
    }
    axis(h, total, AXIS, height);
    let count = bars.len();
    for b in bars {
        let x = x_of(b.start, total);
        // A pixel apart from the next bar on the lane.
        let w = (x_of(b.end, total) - x - 1.0).max(1.0);
        let y = AXIS + b.span.lane as f64 * LANE + (LANE - BAR) / 2.0;
        let fill = fills[&b.info.rule];
        let mut tip = format!(
            "[{}/{count}] {}\n{} (from {:.3} s to {:.3} s) on worker {}",
            b.n,
            b.info.label,
            duration(b.secs()),
            b.start,
            b.end,
            b.span.lane + 1
        );
        if b.critical {
            tip.push_str(", on the critical path");
        }
        if !b.span.ok {
            tip.push_str("\nfailed");
        }
        for c in &b.info.commands {
            tip.push_str("\n$ ");
            tip.push_str(c);
        }
        // A marked bar is a frame (3 px, the bottom 6 px on the critical path) around its fill.
        let frame = match (b.span.ok, b.critical) {
            (false, _) => Some(FAILED),
            (true, true) => Some(CRITICAL),
            (true, false) => None,
        };
        let _ = write!(
            h,
            "<g class=\"t\"><title>{}</title><rect x=\"{x}\" y=\"{y}\" width=\"{w}\" \
             height=\"{BAR}\" fill=\"{}\" shape-rendering=\"crispEdges\"/>",
            escape(&tip),
            frame.unwrap_or(fill)
        );
        if let Some(stripe) = frame.filter(|_| w > 8.0) {
            let bottom = if b.critical { 6.0 } else { 3.0 };
            let _ = write!(
                h,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{fill}\" \
                 shape-rendering=\"crispEdges\"/>",
                x + 3.0,
                y + 3.0,
                w - 6.0,
                BAR - 3.0 - bottom
            );
            if stripe == FAILED && b.critical {
                let _ = write!(
                    h,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"3\" fill=\"{CRITICAL}\" \
                     shape-rendering=\"crispEdges\"/>",
                    x + 3.0,
                    y + BAR - 6.0,
                    w - 6.0
                );
            }
        }
        let name = short_name(&b.info.label);
        if w >= name.chars().count() as f64 * 6.5 + 10.0 {
            let _ = write!(
                h,
                "<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>",
                x + 6.0,
                y + 15.0,
                ink_on(fill),
                escape(name)
            );
        }
        h.push_str("</g>\n");
    }
    h.push_str("</svg>\n");
}

/// Ticks along the top, with grid lines down to `bottom`.
fn axis(h: &mut String, total: f64, top: f64, bottom: f64) {
    let step = tick_step(total);
    let places = (-step.log10().floor()).max(0.0) as usize;
    let mut i = 0;
    while i as f64 * step <= total + 1e-9 {
        let t = i as f64 * step;
        let x = x_of(t, total);
        let anchor = if i == 0 { "start" } else { "middle" };
        let _ = writeln!(
            h,
            "<line x1=\"{x}\" y1=\"{top}\" x2=\"{x}\" y2=\"{bottom}\" stroke=\"#dedede\" \
             shape-rendering=\"crispEdges\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"{anchor}\" \
             fill=\"#666\">{t:.places$} s</text>",
            top - 8.0
        );
        i += 1;
    }
}

/// A round step that cuts `total` into about eight.
fn tick_step(total: f64) -> f64 {
    let raw = total / 8.0;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// How many tasks ran from each instant on: (seconds, count), in time order.
pub(super) fn concurrency(bars: &[Bar]) -> Vec<(f64, usize)> {
    let mut edges: Vec<(f64, i64)> = Vec::new();
    for b in bars {
        edges.push((b.start, 1));
        edges.push((b.end, -1));
    }
    // An end at the instant another task starts comes first.
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut now = 0i64;
    let mut steps: Vec<(f64, usize)> = Vec::new();
    for (t, d) in edges {
        now += d;
        match steps.last_mut() {
            Some(last) if last.0 == t => last.1 = now.max(0) as usize,
            _ => steps.push((t, now.max(0) as usize)),
        }
    }
    steps
}

/// The count of running tasks over time as a filled step chart, `-j` marked.
pub(super) fn concurrency_chart(h: &mut String, steps: &[(f64, usize)], total: f64, top: usize) {
    const CHART: f64 = 64.0;
    let height = AXIS + CHART + 6.0;
    let base = AXIS + CHART;
    let y_of = |n: usize| base - (n as f64 / top.max(1) as f64 * CHART).round();
    let _ = writeln!(
        h,
        "<svg width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\">"
    );
    axis(h, total, AXIS, base);
    let mut d = format!("M{GUTTER} {base}");
    for &(t, n) in steps {
        let _ = write!(d, " H{} V{}", x_of(t, total), y_of(n));
    }
    let _ = write!(d, " H{} V{base} Z", x_of(total, total));
    let _ = writeln!(
        h,
        "<path d=\"{d}\" fill=\"#c9d2dc\" stroke=\"#5b6b7c\" stroke-width=\"1\"/>\n\
         <line x1=\"{GUTTER}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#999\"/>",
        GUTTER + PLOT
    );
    for n in [0, top] {
        let _ = writeln!(
            h,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#444\">{n}</text>",
            GUTTER - 8.0,
            y_of(n) + 4.0
        );
    }
    h.push_str("</svg>\n");
}

/// What a bar shows of its task: the file name of its first output, else its label.
fn short_name(label: &str) -> &str {
    match label.split_once(" -> ") {
        Some((_, outs)) => {
            let first = outs.split(' ').next().unwrap_or(outs);
            first.rsplit('/').next().unwrap_or(first)
        }
        None => label,
    }
}

/// Dark text on a light fill, white on a dark one.
fn ink_on(fill: &str) -> &'static str {
    let channel = |i: usize| {
        fill.get(i..i + 2)
            .and_then(|c| u8::from_str_radix(c, 16).ok())
            .unwrap_or(0) as f64
    };
    let luma = 0.299 * channel(1) + 0.587 * channel(3) + 0.114 * channel(5);
    if luma < 120.0 { "#ffffff" } else { "#1b1b1b" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_bars_show_their_first_outputs_name() {
        assert_eq!(tick_step(1.0), 0.2);
        assert_eq!(tick_step(40.0), 5.0);
        assert_eq!(tick_step(0.03), 0.005);
        assert_eq!(short_name("cc: src/a.c -> build/src/a.o build/a.d"), "a.o");
        assert_eq!(short_name("check"), "check");
        assert_eq!(ink_on("#2b1055"), "#ffffff");
        assert_eq!(ink_on("#edc948"), "#1b1b1b");
    }
}
