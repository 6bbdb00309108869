//! Seeing the build afterwards: `--scheduler-trace` (every scheduler decision, as SCons'
//! Taskmaster trace) and `--trace` (a Chrome trace of the tasks on their workers, and the phases).

use crate::support::Space;
use std::collections::BTreeMap;

/// A diamond: `a` feeds `b` and `c`, both feed `d`; `b` fails.
const DIAMOND: &str = r#"
[[gen]]
name = "a"
run = "echo a > ${TGT}"
target = "a"

[[gen]]
name = "b"
run = "echo b; exit 1"
source = ["build/a"]
target = "b"

[[gen]]
name = "c"
run = "cat ${SRC} > ${TGT}"
source = ["build/a"]
target = "c"

[[gen]]
name = "d"
run = "cat ${SRC} > ${TGT}"
source = ["build/b", "build/c"]
target = "d"
"#;

/// The trace's lines without their timestamps, checking that the timestamps are there, in
/// seconds with six decimals, and never go back.
fn decisions(text: &str) -> Vec<String> {
    let mut last = 0.0;
    text.lines()
        .map(|line| {
            let (stamp, rest) = line
                .split_once(' ')
                .expect("a timestamp, then the decision");
            let (whole, frac) = stamp.split_once('.').expect("seconds.micros");
            assert!(
                frac.len() == 6
                    && (whole.to_string() + frac)
                        .bytes()
                        .all(|b| b.is_ascii_digit()),
                "{line}"
            );
            let t: f64 = stamp.parse().unwrap();
            assert!(t >= last, "time goes back at {line}");
            last = t;
            rest.to_string()
        })
        .collect()
}

#[test]
fn the_scheduler_trace_of_a_diamond_with_a_failure_under_k() {
    let s = Space::new();
    s.write("build.toml", DIAMOND);
    s.kiln(&["build", "-k", "-j1", "--scheduler-trace", "trace.txt"])
        .status(1)
        .stderr_has("'build' failed: 1 task failed, 1 not run");
    assert_eq!(
        decisions(&s.read("trace.txt")),
        [
            "build/a: ready",
            "build/a: started",
            "build/a: finished success",
            "build/b: ready",
            "build/c: ready",
            "build/b: started",
            "build/b: finished crashed",
            "build/d: blocked by build/b",
            "build/c: started",
            "build/c: finished success",
            "build/d: not run",
        ]
    );
    // Fixed, the next build: what is up to date is skipped, the rest runs.
    s.write(
        "build.toml",
        DIAMOND.replace("echo b; exit 1", "echo b > ${TGT}"),
    );
    s.kiln(&["build", "-j1", "--scheduler-trace", "trace.txt"])
        .ok();
    assert_eq!(
        decisions(&s.read("trace.txt")),
        [
            "build/a: skipped up to date",
            "build/c: skipped up to date",
            "build/b: ready",
            "build/b: started",
            "build/b: finished success",
            "build/d: ready",
            "build/d: started",
            "build/d: finished success",
        ]
    );
    // A null build is traced too: every task skipped.
    s.kiln(&["build", "--scheduler-trace", "trace.txt"]).ok();
    assert_eq!(decisions(&s.read("trace.txt")).len(), 4);
    assert!(
        decisions(&s.read("trace.txt"))
            .iter()
            .all(|l| l.ends_with(": skipped up to date"))
    );
}

/// A task event of a Chrome trace: lane, start and end in microseconds since kiln's start.
struct Event {
    name: String,
    lane: u64,
    start: u64,
    end: u64,
}

fn task_events(trace: &serde_json::Value) -> Vec<Event> {
    trace["traceEvents"]
        .as_array()
        .expect("traceEvents")
        .iter()
        .filter(|e| e["cat"] == "task")
        .map(|e| {
            assert_eq!(e["ph"], "X", "{e}");
            let start = e["ts"].as_u64().unwrap();
            Event {
                name: e["name"].as_str().unwrap().to_string(),
                lane: e["tid"].as_u64().unwrap(),
                start,
                end: start + e["dur"].as_u64().unwrap(),
            }
        })
        .collect()
}

/// The most events in flight at any instant (an end at the instant another starts is not an
/// overlap).
fn most_at_once(events: &[Event]) -> usize {
    let mut edges: Vec<(u64, i32)> = Vec::new();
    for e in events {
        edges.push((e.start, 1));
        edges.push((e.end, -1));
    }
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[test]
fn the_chrome_trace_puts_each_task_on_its_worker_within_j_and_around_its_commands() {
    let s = Space::new();
    // Each command logs its own start and end on the wall clock, in microseconds.
    s.write(
        "build.toml",
        "[rule.slow]\nrun = \"echo start ${SRC} $(date +%s%6N) >> log; sleep 0.2; echo end ${SRC} $(date +%s%6N) >> log; cp ${SRC} ${TGT}\"\n\
         ext_in = [\".txt\"]\next_out = [\".out\"]\n\
         [[gen]]\nname = \"slow\"\nrule = \"slow\"\nsource = [\"*.txt\"]\n",
    );
    for i in 0..9 {
        s.write(&format!("t{i}.txt"), format!("{i}"));
    }
    for jobs in [2usize, 3] {
        s.kiln(&["distclean"]).ok();
        let _ = std::fs::remove_file(s.path("log"));
        s.kiln(&["build", &format!("-j{jobs}"), "--trace", "trace.json"])
            .ok();
        let trace: serde_json::Value = serde_json::from_str(&s.read("trace.json")).unwrap();
        let events = task_events(&trace);
        assert_eq!(events.len(), 9);
        // Never two at once on one lane.
        let mut lanes: BTreeMap<u64, Vec<&Event>> = BTreeMap::new();
        for e in &events {
            lanes.entry(e.lane).or_default().push(e);
        }
        assert!(
            lanes.len() <= jobs && !lanes.contains_key(&0),
            "lanes {:?}",
            lanes.keys()
        );
        for (lane, mut on) in lanes {
            on.sort_by_key(|e| e.start);
            for pair in on.windows(2) {
                assert!(
                    pair[0].end <= pair[1].start,
                    "lane {lane}: {} overlaps {}",
                    pair[0].name,
                    pair[1].name
                );
            }
        }
        // At most -j at once, and -j at some instant.
        assert_eq!(most_at_once(&events), jobs);
        // Each event holds the interval its command logged.
        let origin = trace["otherData"]["origin_unix_us"].as_u64().unwrap();
        let mut logged: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for line in s.lines("log") {
            let parts: Vec<&str> = line.split(' ').collect();
            let at: u64 = parts[2].parse().unwrap();
            let entry = logged.entry(parts[1].to_string()).or_insert((0, 0));
            if parts[0] == "start" {
                entry.0 = at;
            } else {
                entry.1 = at;
            }
        }
        // The trace's clock and the wall clock are read a few microseconds apart.
        const SLACK: u64 = 1_000;
        for e in &events {
            let src = e
                .name
                .split(": ")
                .nth(1)
                .unwrap()
                .split(" -> ")
                .next()
                .unwrap();
            let (start, end) = logged[src];
            assert!(
                origin + e.start <= start + SLACK && end <= origin + e.end + SLACK,
                "{}: event {}..{}, command {}..{}",
                e.name,
                origin + e.start,
                origin + e.end,
                start,
                end
            );
        }
        // kiln's phases, on lane 0.
        let phases: Vec<&str> = trace["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["cat"] == "phase")
            .map(|e| {
                assert_eq!(e["tid"], 0);
                e["name"].as_str().unwrap()
            })
            .collect();
        for p in ["load", "stat", "decide", "run", "save"] {
            assert!(phases.contains(&p), "{p} in {phases:?}");
        }
    }
}
