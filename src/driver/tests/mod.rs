//! The build loop driven through its seams, in the style of ninja's build_test.cc: a file system in
//! memory ([`FakeDisk`]), a clock that ticks with it, and a runner ([`FakeRunner`]) that "runs" a
//! command by reading it as a tiny script in simulated time. Each test asserts the order tasks
//! started in, the highest concurrency seen, and what the store holds afterwards.
//!
//! A fake command is `;`-separated statements: `cat IN... > OUT` (OUT gets the inputs' bytes),
//! `echo TEXT > OUT`, `sleep N` (N ticks; a command takes 1 tick otherwise) and `exit N`.

use super::{Build, BuildOptions, Place};
use crate::filestate::Clock;
use crate::generator::Expansion;
use crate::manifest::PostMode;
use crate::progress::Progress;
use crate::project::{Overrides, Project};
use crate::signature;
use crate::store::Store;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod fakes;
use fakes::{FakeClock, FakeDisk, FakeRunner};

/// What the build printed, line by line, and each started task's expected duration.
#[derive(Default)]
struct Lines(Vec<String>, Vec<Option<Duration>>);

impl Progress for Lines {
    fn message(&mut self, text: &str) {
        self.0.push(text.to_string());
    }
    fn started(&mut self, s: &crate::progress::Started) {
        self.0
            .push(format!("[{}/{}] {}", s.n, s.total, s.line.render(false)));
        self.1.push(s.expected);
    }
    fn finished(&mut self, _task: Option<usize>, _output: &[u8]) {}
    fn set_total(&mut self, _total: usize) {}
    fn done(&mut self, summary: &str) {
        self.0.push(summary.to_string());
    }
    fn broken(&self) -> bool {
        false
    }
    fn report(&mut self, _text: &str) {}
}

/// A project directory (for the build file and the existence of sources) whose files the build
/// sees through the fake disk, and the store under it.
struct World {
    dir: tempfile::TempDir,
    disk: Arc<FakeDisk>,
}

impl World {
    fn new(build_file: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("build.toml"), build_file).unwrap();
        std::fs::create_dir_all(dir.path().join("build/.kiln")).unwrap();
        World {
            dir,
            disk: Arc::new(FakeDisk::default()),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    /// A source file: on disk (expansion looks for it) and in the fake disk (the build reads it).
    fn source(&self, path: &str, text: &str) {
        std::fs::write(self.dir.path().join(path), text).unwrap();
        self.disk.write(&self.root().join(path), text.as_bytes());
    }

    fn options(&self, jobs: usize, keep_going: bool) -> BuildOptions {
        BuildOptions {
            jobs,
            keep_going,
            ..BuildOptions::default()
        }
    }

    /// Runs one build with `runner`; the exit status and what was printed.
    fn build(&self, opts: &BuildOptions, runner: &mut FakeRunner) -> (i32, Vec<String>) {
        let (code, lines) = self.build_lines(opts, runner);
        (code, lines.0)
    }

    /// Runs one build; the exit status and what its progress heard.
    fn build_lines(&self, opts: &BuildOptions, runner: &mut FakeRunner) -> (i32, Lines) {
        let root = self.root();
        let path = root.join("build.toml");
        let bytes = std::fs::read(&path).unwrap();
        let project = Project::from_bytes(bytes, &path, "build.toml", &Overrides::default())
            .expect("a good build file");
        let mut expansion = Expansion::new(&project).unwrap();
        let first_lazy = match project.post {
            PostMode::AtOnce => project.groups.len(),
            PostMode::Lazy => 1,
        };
        for g in 0..first_lazy {
            expansion.expand_group(&project, g).unwrap();
        }
        let state = root.join("build/.kiln");
        let (store, _) = Store::open_or_reset(&state.join("store"));
        let clock: Arc<dyn Clock> = Arc::new(FakeClock(self.disk.tick.clone()));
        let mut lines = Lines::default();
        let place = Place {
            disk: &*self.disk,
            clock: Some(clock),
            out_canon: root.join("build"),
            state_dir: state,
        };
        let mut b = Build::new(&project, opts, expansion, store, &mut lines, place);
        let (_tx, signals) = crossbeam_channel::unbounded();
        let code = b
            .run(Some(runner), &signals, first_lazy, Instant::now())
            .unwrap()
            .expect("a parsed graph is never stale");
        b.store.flush_details().unwrap();
        drop(b);
        (code, lines)
    }

    /// The store as the last build left it.
    fn store(&self) -> Store {
        Store::open(&self.root().join("build/.kiln/store"), false)
            .unwrap()
            .0
    }

    fn runner(&self) -> FakeRunner {
        FakeRunner::new(&self.root(), self.disk.clone())
    }
}

/// A generator `name` whose command is `run`, reading `sources`.
fn generator(name: &str, run: &str, sources: &[&str], group: Option<&str>) -> String {
    let group = group.map_or(String::new(), |g| format!("group = \"{g}\"\n"));
    format!(
        "[[gen]]\nname = \"{name}\"\nrun = \"{run}\"\nsource = {sources:?}\ntarget = \"{name}\"\n{group}"
    )
}

#[test]
fn early_cutoff_spares_a_chain_whose_input_was_rebuilt_to_the_same_bytes() {
    let w = World::new(
        &[
            generator("a", "echo same > ${TGT}", &["in"], None),
            generator("b", "cat ${SRC} > ${TGT}", &["a"], None),
            generator("c", "cat ${SRC} > ${TGT}", &["b"], None),
        ]
        .concat(),
    );
    w.source("in", "1");
    let opts = w.options(2, false);
    let mut r = w.runner();
    assert_eq!(w.build(&opts, &mut r).0, 0);
    assert_eq!(r.started(), ["build/a", "build/b", "build/c"]);
    // `a` reruns and makes the same bytes: `b` and `c` are spared.
    w.source("in", "2");
    let mut r = w.runner();
    let (code, lines) = w.build(&opts, &mut r);
    assert_eq!(code, 0);
    assert_eq!(r.started(), ["build/a"]);
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("'build' finished successfully")
    );
    // All three are recorded, `c` with what it read.
    let store = w.store();
    for key in ["build/a", "build/b", "build/c"] {
        assert_ne!(
            store.task(key).unwrap().signature,
            signature::FAILED,
            "{key}"
        );
    }
    assert_eq!(w.disk.read(&w.root().join("build/c")).unwrap(), b"same");
}

#[test]
fn without_keep_going_nothing_starts_after_the_first_failure_at_any_j() {
    let mut text = generator("bad", "exit 1", &[], None);
    for i in 0..7 {
        text.push_str(&generator(
            &format!("t{i}"),
            "sleep 5; echo x > ${TGT}",
            &[],
            None,
        ));
    }
    for jobs in 1..=4 {
        let w = World::new(&text);
        let mut r = w.runner();
        let (code, lines) = w.build(&w.options(jobs, false), &mut r);
        assert_eq!(code, 1);
        let failed = r.failed_at[0];
        assert!(
            r.started.iter().all(|(_, at)| *at < failed.max(1)),
            "-j{jobs}: {:?} after the failure at {failed}",
            r.started
        );
        assert_eq!(r.started.len(), jobs, "-j{jobs}");
        assert_eq!(r.highest, jobs, "-j{jobs}");
        assert_eq!(
            lines.last().unwrap(),
            &format!("'build' failed: 1 task failed, {} not run", 8 - jobs)
        );
        // The failure is recorded as one; what finished beside it, as done.
        let store = w.store();
        assert_eq!(
            store.task("build/bad").unwrap().signature,
            signature::FAILED
        );
        assert_eq!(store.tasks().count(), jobs);
    }
}

#[test]
fn keep_going_runs_later_groups_but_not_what_reads_a_failure() {
    let w = World::new(
        &[
            "[[group]]\nname = \"one\"\n[[group]]\nname = \"two\"\n".to_string(),
            generator("bad", "exit 2", &[], Some("one")),
            generator("ok", "echo ok > ${TGT}", &[], Some("one")),
            generator("reads-bad", "cat ${SRC} > ${TGT}", &["bad"], Some("two")),
            generator("later", "cat ${SRC} > ${TGT}", &["ok"], Some("two")),
        ]
        .concat(),
    );
    let mut r = w.runner();
    let (code, lines) = w.build(&w.options(1, true), &mut r);
    assert_eq!(code, 1);
    assert_eq!(r.started(), ["build/bad", "build/ok", "build/later"]);
    assert_eq!(
        lines.last().unwrap(),
        "'build' failed: 1 task failed, 1 not run"
    );
    assert!(w.store().task("build/reads-bad").is_none());
}

#[test]
fn an_interrupt_mid_group_starts_nothing_more_and_records_what_finished() {
    let mut text = String::new();
    for i in 0..6 {
        text.push_str(&generator(
            &format!("t{i}"),
            "sleep 3; echo x > ${TGT}",
            &[],
            None,
        ));
    }
    let w = World::new(&text);
    let mut r = w.runner();
    r.signal_after = Some((2, signal_hook::consts::SIGINT));
    let (code, lines) = w.build(&w.options(2, false), &mut r);
    assert_eq!(code, 130);
    assert_eq!(r.started(), ["build/t0", "build/t1"]);
    assert!(
        lines.contains(&"interrupted by SIGINT: stopping the running commands".to_string()),
        "{lines:?}"
    );
    // Both were cut short: neither is trusted, nothing else ran. Each of the six counts once.
    assert_eq!(w.store().tasks().count(), 0);
    assert_eq!(
        lines.last().unwrap(),
        "'build' interrupted by SIGINT: 6 not run"
    );
}

#[test]
fn a_missing_output_and_a_timeout_fail_their_tasks() {
    let w = World::new(
        &[
            generator("lazy", "sleep 1", &[], None),
            generator("slow", "sleep 50; echo x > ${TGT}", &[], None),
            generator("fine", "echo x > ${TGT}", &[], None),
        ]
        .concat(),
    );
    let mut r = w.runner();
    r.timeout = Some(10);
    let mut opts = w.options(3, true);
    opts.timeout = Some(Duration::from_secs(10));
    let (code, lines) = w.build(&opts, &mut r);
    assert_eq!(code, 1);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("error: task failed (output not made): lazy")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("error: task failed (timed out after 10s): slow")),
        "{lines:?}"
    );
    let store = w.store();
    assert_eq!(
        store.task("build/lazy").unwrap().signature,
        signature::FAILED
    );
    assert_eq!(
        store.task("build/slow").unwrap().signature,
        signature::FAILED
    );
    assert_ne!(
        store.task("build/fine").unwrap().signature,
        signature::FAILED
    );
}

#[test]
fn a_lazy_group_is_expanded_after_the_earlier_ones_ran() {
    let w = World::new(
        &[
            "[project]\npost = \"lazy\"\n[[group]]\nname = \"one\"\n[[group]]\nname = \"two\"\n"
                .to_string(),
            generator("first", "echo 1 > ${TGT}", &[], Some("one")),
            generator("second", "cat ${SRC} > ${TGT}", &["first"], Some("two")),
            generator("third", "echo 3 > ${TGT}", &[], Some("two")),
        ]
        .concat(),
    );
    let mut r = w.runner();
    let (code, lines) = w.build(&w.options(2, false), &mut r);
    assert_eq!(code, 0);
    assert_eq!(r.started(), ["build/first", "build/second", "build/third"]);
    // N grows as the lazy group is expanded.
    assert_eq!(lines[0], "[1/1] first: -> build/first");
    assert_eq!(lines[1], "[2/3] second: build/first -> build/second");
    assert_eq!(w.store().tasks().count(), 3);
}

#[test]
fn the_longest_remaining_path_starts_first_then_declared_order() {
    let w = World::new(
        &[
            generator("d", "echo d > ${TGT}", &[], None),
            generator("e", "echo e > ${TGT}", &[], None),
            generator("a", "echo a > ${TGT}", &[], None),
            generator("b", "cat ${SRC} > ${TGT}", &["a"], None),
            generator("c", "cat ${SRC} > ${TGT}", &["b"], None),
        ]
        .concat(),
    );
    let mut r = w.runner();
    assert_eq!(w.build(&w.options(1, false), &mut r).0, 0);
    assert_eq!(
        r.started(),
        ["build/a", "build/b", "build/d", "build/e", "build/c"]
    );
    assert_eq!(r.highest, 1);
    assert_eq!(w.store().tasks().count(), 5);
}

#[test]
fn a_started_task_is_expected_to_take_as_long_as_its_last_successful_run() {
    let w = World::new(
        &[
            generator("slow", "sleep 3; cat ${SRC} > ${TGT}", &["in"], None),
            generator("bad", "cat ${SRC} > ${TGT}; exit 1", &["in"], None),
        ]
        .concat(),
    );
    w.source("in", "1");
    let opts = w.options(1, true);
    let (code, first) = w.build_lines(&opts, &mut w.runner());
    assert_eq!(code, 1);
    assert_eq!(first.1, [None, None], "{:?}", first.0);
    w.source("in", "2");
    let (code, second) = w.build_lines(&opts, &mut w.runner());
    assert_eq!(code, 1);
    // The fake runner's clock starts at 0 and `slow` ran first: it ended at tick 3. A failed run
    // records no duration.
    let by_line: HashMap<&str, Option<Duration>> = second
        .0
        .iter()
        .filter(|l| l.starts_with('['))
        .map(String::as_str)
        .zip(second.1.iter().copied())
        .collect();
    assert_eq!(
        by_line["[1/2] slow: in -> build/slow"],
        Some(Duration::from_millis(3))
    );
    assert_eq!(by_line["[2/2] bad: in -> build/bad"], None);
}
