//! `--trace FILE`: the build as a Chrome trace (the JSON object format that Perfetto and
//! chrome://tracing load). One complete event (`"ph": "X"`) per task that ran, on the lane
//! (thread) of the worker that ran it, named by its `[n/N]` line and carrying its rule and
//! commands; kiln's own phases (`load`, `stat`, `decide`, `run`, `save`, each mark of `-d stats` as
//! one event with its step) on lane 0. Times are microseconds from kiln's start; `otherData`
//! holds that start on the wall clock (`origin_unix_us`), so that a command's own timestamps can
//! be placed on the trace.

use super::{Recorder, TaskInfo, phase_of};
use crate::compdb::json;
use crate::ids::TaskId;
use std::fmt::Write;

/// The trace's JSON. `info` describes a task; `jobs` is the build's `-j`.
pub fn render(rec: &Recorder, info: &dyn Fn(TaskId) -> TaskInfo, jobs: usize) -> String {
    let mut events: Vec<String> = Vec::new();
    events.push(r#"{"name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"kiln"}}"#.into());
    events.push(r#"{"name":"thread_name","ph":"M","pid":1,"tid":0,"args":{"name":"phases"}}"#.into());
    let lanes = rec.spans.iter().map(|s| s.lane + 1).max().unwrap_or(0);
    for lane in 1..=lanes {
        events.push(format!(
            r#"{{"name":"thread_name","ph":"M","pid":1,"tid":{lane},"args":{{"name":"worker {lane}"}}}}"#
        ));
    }
    let (_, marks) = crate::stats::spans();
    for (mark, start, end) in marks {
        let ts = rec.micros(start);
        let dur = rec.micros(end).saturating_sub(ts);
        events.push(format!(
            r#"{{"name":{},"cat":"phase","ph":"X","pid":1,"tid":0,"ts":{ts},"dur":{dur},"args":{{"step":{}}}}}"#,
            json(phase_of(mark)),
            json(mark)
        ));
    }
    for span in &rec.spans {
        let ts = rec.micros(span.start);
        let dur = rec.micros(span.end).saturating_sub(ts);
        let t = info(span.task);
        let mut commands = String::from("[");
        for (i, c) in t.commands.iter().enumerate() {
            if i > 0 {
                commands.push(',');
            }
            commands.push_str(&json(c));
        }
        commands.push(']');
        events.push(format!(
            r#"{{"name":{},"cat":"task","ph":"X","pid":1,"tid":{},"ts":{ts},"dur":{dur},"args":{{"rule":{},"ok":{},"commands":{commands}}}}}"#,
            json(&t.label),
            span.lane + 1,
            json(&t.rule),
            span.ok
        ));
    }
    let mut out = String::from("{\"traceEvents\":[\n");
    for (i, e) in events.iter().enumerate() {
        out.push_str(e);
        out.push_str(if i + 1 < events.len() { ",\n" } else { "\n" });
    }
    let _ = write!(
        out,
        "],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{{\"origin_unix_us\":{},\"jobs\":{jobs}}}}}\n",
        rec.origin_unix_micros()
    );
    out
}
