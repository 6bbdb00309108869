//! `kiln build --watch`: real file events on a project kiln watches in the background. Each check
//! is polled until a deadline; kiln's stderr goes to a file outside the project.

use crate::support::{KILN, Space};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Watch tests run one at a time: they share the per-user inotify limits (one test lowers them),
/// and each wants its events served promptly.
static WATCHING: Mutex<()> = Mutex::new(());

const WAITING: &str = "watch: waiting for changes\n";
const NOTHING: &str = "; nothing to do\n";

/// Copies a `.c` source to a `.o` under the build directory, one task per source.
const CP_RULE: &str =
    "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n";

/// A kiln watching a project, its stderr in a file.
struct Watching {
    child: Child,
    log: tempfile::NamedTempFile,
    _one_at_a_time: Option<MutexGuard<'static, ()>>,
}

impl Watching {
    /// Starts `kiln build --watch` and waits for its first build to end.
    fn start(s: &Space, args: &[&str]) -> Watching {
        let guard = WATCHING.lock().unwrap_or_else(|e| e.into_inner());
        Watching::start_holding(s, args, Some(guard))
    }

    /// [`Watching::start`], the watch tests' lock already taken (`None`: by the caller, who
    /// keeps it).
    fn start_holding(s: &Space, args: &[&str], guard: Option<MutexGuard<'static, ()>>) -> Watching {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let child = Command::new(KILN)
            .args(["build", "--watch"])
            .args(args)
            .current_dir(s.root())
            .env_remove("MAKEFLAGS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("the log file"))
            .spawn()
            .expect("kiln starts");
        let w = Watching {
            child,
            log,
            _one_at_a_time: guard,
        };
        w.until("the first build ends", |l| l.contains(WAITING));
        w
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).expect("the log")
    }

    /// Polls until `cond` holds for the log (ten seconds at most).
    fn until(&self, what: &str, mut cond: impl FnMut(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if cond(&log) {
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: not within 10 s\n--- stderr\n{log}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls until `cond` holds (ten seconds at most).
    fn until_true(&self, what: &str, cond: impl Fn() -> bool) {
        self.until(what, |_| cond());
    }

    /// Waits until kiln is idle and has stayed so for a while; returns the log.
    fn settle(&self) -> String {
        let mut last = String::new();
        let mut since = Instant::now();
        self.until("kiln settles", |log| {
            if log != last {
                last = log.to_string();
                since = Instant::now();
            }
            (log.ends_with(WAITING) || log.ends_with(NOTHING))
                && since.elapsed() > Duration::from_millis(400)
        })
    }

    /// Sends SIGINT and returns the exit status (within ten seconds).
    fn interrupt(mut self) -> i32 {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -INT {pid}");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "kiln did not exit on SIGINT\n--- stderr\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `rule: inputs -> outputs` lines of tasks that ran in `log`.
fn ran(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|l| l.strip_prefix('[')?.split_once("] ").map(|(_, r)| r))
        .collect()
}

/// A project of `.c` files copied to `.o` files, from `src/**/*.c`.
fn copies(files: &[(&str, &str)]) -> Space {
    let s = Space::new();
    s.write(
        "build.toml",
        format!("{CP_RULE}[[gen]]\nname = \"objs\"\nsource = \"src/**/*.c\"\n"),
    );
    for (path, text) in files {
        s.write(path, text);
    }
    s
}

/// Whether `rel` holds `text`.
fn holds(s: &Space, rel: &str, text: &str) -> bool {
    std::fs::read_to_string(s.path(rel)).is_ok_and(|t| t == text)
}

#[test]
fn an_edit_rebuilds_exactly_the_task_that_reads_it_and_then_nothing() {
    let s = copies(&[("src/a.c", "a\n"), ("src/b.c", "b\n")]);
    let w = Watching::start(&s, &[]);
    let first = w.settle();
    assert_eq!(ran(&first).len(), 2, "{first}");
    s.write("src/a.c", "a2\n");
    w.until_true("a.o rebuilt", || holds(&s, "build/src/a.o", "a2\n"));
    let log = w.settle();
    let after = &log[first.len()..];
    assert_eq!(ran(after), ["cc: src/a.c -> build/src/a.o"], "{after}");
    assert!(
        after.contains("watch: 1 change (src/a.c); building\n"),
        "{after}"
    );
    // The outputs the build wrote start no build of their own; then kiln stays idle.
    assert_eq!(after.matches("; building").count(), 1, "{after}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.log(), log, "kiln went on building with nothing changed");
}

#[test]
fn a_file_touched_with_its_content_unchanged_builds_nothing() {
    let s = copies(&[("src/a.c", "a\n"), ("src/b.c", "b\n")]);
    let w = Watching::start(&s, &[]);
    let first = w.settle();
    // The first build's own outputs start no build.
    assert_eq!(first.matches("; building").count(), 0, "{first}");
    s.write("src/a.c", "a\n");
    let log = w.until("nothing to do", |l| l[first.len()..].contains(NOTHING));
    let after = &log[first.len()..];
    assert_eq!(after, "watch: 1 change (src/a.c); nothing to do\n");
    // An output rewritten with what it held, too.
    s.write("build/src/b.o", "b\n");
    w.until("nothing to do again", |l| l.matches(NOTHING).count() == 2);
    // And an edit after them is built.
    s.write("src/b.c", "b2\n");
    w.until_true("b.o rebuilt", || holds(&s, "build/src/b.o", "b2\n"));
    let log = w.settle();
    assert_eq!(
        ran(&log[first.len()..]),
        ["cc: src/b.c -> build/src/b.o"],
        "{log}"
    );
}

#[test]
fn edits_right_after_a_build_ends_are_seen() {
    let s = copies(&[("src/a.c", "0\n"), ("src/b.c", "0\n")]);
    let w = Watching::start(&s, &[]);
    for i in 1..=6 {
        let before = w.settle();
        let waits = before.matches(WAITING).count();
        // Within the same millisecond as the end of a build: the edit follows the line at once.
        s.write("src/a.c", format!("{i}\n"));
        w.until_true("a.o rebuilt", || {
            holds(&s, "build/src/a.o", &format!("{i}\n"))
        });
        // Within the same second: the next edit follows the next build's end at once.
        w.until("the next build ends", |l| {
            l.matches(WAITING).count() > waits
        });
        s.write("src/b.c", format!("{i}\n"));
        s.write("src/a.c", format!("{i}{i}\n"));
        w.until_true("both rebuilt", || {
            holds(&s, "build/src/b.o", &format!("{i}\n"))
                && holds(&s, "build/src/a.o", &format!("{i}{i}\n"))
        });
    }
}

#[test]
fn editors_saves_by_rename_are_seen() {
    let s = copies(&[("src/a.c", "a\n")]);
    let w = Watching::start(&s, &[]);
    w.settle();
    // vim: probe that the directory is writable with a file named 4913, write a swap file,
    // move the original aside, write the new one, delete the backup.
    s.write("src/4913", "");
    s.remove("src/4913");
    s.write("src/.a.c.swp", "swap");
    std::fs::rename(s.path("src/a.c"), s.path("src/a.c~")).expect("rename");
    s.write("src/a.c", "vim\n");
    s.remove("src/a.c~");
    s.remove("src/.a.c.swp");
    w.until_true("vim's save built", || holds(&s, "build/src/a.o", "vim\n"));
    w.settle();
    // VS Code: write a temporary file beside it, rename it over the original.
    s.write("src/.a.c.vsctmp", "code\n");
    std::fs::rename(s.path("src/.a.c.vsctmp"), s.path("src/a.c")).expect("rename");
    w.until_true("VS Code's save built", || {
        holds(&s, "build/src/a.o", "code\n")
    });
}

#[test]
fn a_directory_deleted_and_recreated_is_built_again() {
    let s = copies(&[
        ("src/a.c", "a\n"),
        ("src/sub/x.c", "x\n"),
        ("src/sub/y.c", "y\n"),
    ]);
    let w = Watching::start(&s, &[]);
    w.settle();
    std::fs::remove_dir_all(s.path("src/sub")).expect("rm -r");
    let before = w.settle();
    s.write("src/sub/x.c", "x2\n");
    s.write("src/sub/y.c", "y2\n");
    w.until_true("the new directory's files built", || {
        holds(&s, "build/src/sub/x.o", "x2\n") && holds(&s, "build/src/sub/y.o", "y2\n")
    });
    let after = w.settle();
    let ran = ran(&after[before.len()..]);
    assert!(
        ran.contains(&"cc: src/sub/x.c -> build/src/sub/x.o"),
        "{after}"
    );
    assert!(
        ran.contains(&"cc: src/sub/y.c -> build/src/sub/y.o"),
        "{after}"
    );
}

#[test]
fn a_new_file_matching_a_glob_is_built() {
    let s = copies(&[("src/a.c", "a\n")]);
    let w = Watching::start(&s, &[]);
    w.settle();
    s.write("src/new.c", "new\n");
    w.until_true("the new file built", || {
        holds(&s, "build/src/new.o", "new\n")
    });
}

#[test]
fn the_build_file_edited_while_watching_is_reloaded() {
    let s = copies(&[("src/a.c", "a\n")]);
    let w = Watching::start(&s, &[]);
    w.settle();
    let base = s.read("build.toml");
    let extra =
        "[[gen]]\nname = \"extra\"\nrun = \"echo extra > ${TGT}\"\ntarget = \"extra.txt\"\n";
    s.write("build.toml", format!("{base}{extra}"));
    w.until_true("the new generator built", || {
        holds(&s, "build/extra.txt", "extra\n")
    });
    let before = w.settle();
    // A syntax error: shown with its place, and watching goes on.
    s.write("build.toml", format!("{base}{extra}[[gen]\n"));
    let log = w.until("the error shown", |l| {
        l[before.len()..].contains("build.toml:") && l[before.len()..].contains(WAITING)
    });
    let after = &log[before.len()..];
    let place = after
        .lines()
        .find(|l| l.starts_with("build.toml:"))
        .expect("a line naming the place");
    let mut parts = place.splitn(4, ':');
    parts.next();
    assert!(
        parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
            && parts.next().is_some_and(|n| n.parse::<u32>().is_ok()),
        "file:line:col expected: {after}"
    );
    // Fixed: builds go on.
    s.write("build.toml", format!("{base}{extra}"));
    s.write("src/a.c", "a2\n");
    w.until_true("built after the fix", || holds(&s, "build/src/a.o", "a2\n"));
}

#[test]
fn an_output_deleted_or_altered_by_hand_is_rebuilt() {
    let s = copies(&[("src/a.c", "a\n")]);
    let w = Watching::start(&s, &[]);
    w.settle();
    s.remove("build/src/a.o");
    w.until_true("a.o rebuilt", || holds(&s, "build/src/a.o", "a\n"));
    w.settle();
    s.write("build/src/a.o", "scribbled\n");
    w.until_true("a.o restored", || holds(&s, "build/src/a.o", "a\n"));
}

#[test]
fn a_burst_of_a_thousand_edits_ends_in_a_few_builds_of_the_last_state() {
    let s = copies(&[("src/a.c", "a\n"), ("src/b.c", "b\n")]);
    let w = Watching::start(&s, &[]);
    let before = w.settle();
    for i in 0..1000 {
        s.write("src/a.c", format!("{i}\n"));
    }
    w.until_true("the last state built", || {
        holds(&s, "build/src/a.o", "999\n")
    });
    let after = w.settle();
    let cycles = after[before.len()..].matches("; building").count();
    assert!(cycles <= 10, "{cycles} builds for one burst\n{after}");
    assert!(holds(&s, "build/src/a.o", "999\n"));
}

#[test]
fn ctrl_c_while_idle_exits_130() {
    let s = copies(&[("src/a.c", "a\n")]);
    let w = Watching::start(&s, &[]);
    w.settle();
    assert_eq!(w.interrupt(), 130);
}

#[test]
fn ctrl_c_during_a_build_stops_it_and_exits_130() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nname = \"slow\"\n\
         run = \"cat ${SRC} > ${TGT}; if grep -q slow ${SRC}; then touch started; sleep 30; fi\"\n\
         source = \"in.txt\"\ntarget = \"out.txt\"\n",
    );
    s.write("in.txt", "quick\n");
    let w = Watching::start(&s, &[]);
    w.settle();
    s.write("in.txt", "slow\n");
    w.until_true("the slow task started", || s.exists("started"));
    let start = Instant::now();
    assert_eq!(w.interrupt(), 130);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the sleep was not stopped"
    );
}

#[test]
fn the_lock_is_free_between_builds() {
    let s = copies(&[("src/a.c", "a\n")]);
    let w = Watching::start(&s, &[]);
    w.settle();
    let run = s.kiln(&["--no-wait", "build"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    s.write("src/a.c", "a2\n");
    w.until_true("a.o rebuilt", || holds(&s, "build/src/a.o", "a2\n"));
}

/// The per-user limit on inotify watches, lowered while it lives and then restored, before the
/// watch tests' lock it holds is let go.
struct WatchLimit {
    old: String,
    _one_at_a_time: MutexGuard<'static, ()>,
}

const MAX_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

impl WatchLimit {
    /// Leaves room for `room` more watches than the user's processes hold now.
    fn lower(room: usize) -> WatchLimit {
        let guard = WATCHING.lock().unwrap_or_else(|e| e.into_inner());
        let old = std::fs::read_to_string(MAX_WATCHES).expect("the limit");
        std::fs::write(MAX_WATCHES, (inotify_watches_in_use() + room).to_string())
            .expect("the limit lowered (the tests run as root)");
        WatchLimit {
            old,
            _one_at_a_time: guard,
        }
    }
}

impl Drop for WatchLimit {
    fn drop(&mut self) {
        let _ = std::fs::write(MAX_WATCHES, self.old.trim());
    }
}

/// The inotify watches every process holds now (the tests run as one user).
fn inotify_watches_in_use() -> usize {
    let mut n = 0;
    for proc in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        for fd in std::fs::read_dir(proc.path().join("fdinfo"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(info) = std::fs::read_to_string(fd.path()) {
                n += info
                    .lines()
                    .filter(|l| l.starts_with("inotify wd:"))
                    .count();
            }
        }
    }
    n
}

#[test]
fn past_the_inotify_limit_directories_are_scanned_and_kiln_says_so_once() {
    let files: Vec<(String, String)> = (0..12)
        .map(|i| (format!("src/d{i:02}/a.c"), format!("{i}\n")))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let s = copies(&files);
    // Dropped after kiln is stopped: the limit is restored, then the lock let go.
    let _limit = WatchLimit::lower(4);
    let w = Watching::start_holding(&s, &[], None);
    let limit = std::fs::read_to_string(MAX_WATCHES).expect("the limit");
    let warning = format!(
        "warning: the kernel's inotify watch limit (fs.inotify.max_user_watches = {}) is \
         reached; directories past it are scanned every second instead\n",
        limit.trim()
    );
    w.settle();
    // The last directories walked are past the limit: an edit there is found by a scan.
    s.write("src/d11/a.c", "eleven\n");
    w.until_true("the scanned directory's edit built", || {
        holds(&s, "build/src/d11/a.o", "eleven\n")
    });
    // A new file there too.
    s.write("src/d10/b.c", "new\n");
    w.until_true("the new file built", || {
        holds(&s, "build/src/d10/b.o", "new\n")
    });
    // And one in a watched directory as before.
    s.write("src/d00/a.c", "zero\n");
    w.until_true("the watched directory's edit built", || {
        holds(&s, "build/src/d00/a.o", "zero\n")
    });
    let log = w.settle();
    assert_eq!(log.matches(&warning).count(), 1, "{log}");
}

#[test]
fn watch_goes_with_a_build_only() {
    let s = copies(&[("src/a.c", "a\n")]);
    s.kiln(&["build", "--watch", "-n"])
        .status(2)
        .stderr_has("--watch does not go with -n/--dry-run");
    s.kiln(&["--watch", "clean"])
        .status(2)
        .stderr_has("--watch does not apply to `kiln clean`");
    assert!(!s.exists("build"), "nothing was built");
}
