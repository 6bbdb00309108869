//! Part 7: signatures and the store: what a signature covers, skipping up-to-date tasks, early
//! cutoff, records written as tasks finish, a versioned store under out/.kiln/, paths relative to
//! the project root.

use crate::support::{Space, set};
use std::time::Duration;

/// a.txt -> build/a.up (uppercase) -> build/a.count (line count); b.txt -> build/b.up.
fn chain() -> Space {
    let s = Space::new();
    s.write("a.txt", "one\ntwo\n");
    s.write("b.txt", "bee\n");
    s.write(
        "build.toml",
        "[env]\nTR = \"tr a-z A-Z\"\nMODE = \"plain\"\n\
         [rule.up]\nrun = \"${TR} < ${SRC} > ${TGT}\"\next_in = [\".txt\"]\next_out = [\".up\"]\n\
         [rule.count]\nrun = \"wc -l < ${SRC} > ${TGT}\"\nvars = [\"MODE\"]\n\
         [[gen]]\nname = \"ups\"\nsource = [\"a.txt\", \"b.txt\"]\n\
         [[gen]]\nrule = \"count\"\nsource = \"build/a.up\"\ntarget = \"a.count\"\n",
    );
    let run = s.kiln(&["build"]).ok();
    assert_eq!(
        run.ran_outputs(),
        set(&["build/a.up", "build/b.up", "build/a.count"])
    );
    s
}

#[test]
fn a_null_build_runs_nothing() {
    let s = chain();
    let run = s.kiln(&["build"]).ok();
    assert!(run.ran().is_empty(), "{:?}", run.ran());
    assert!(run.summary().starts_with("'build' finished successfully ("));
}

#[test]
fn touching_without_changing_rebuilds_nothing() {
    let s = chain();
    std::thread::sleep(Duration::from_millis(20));
    s.write("a.txt", "one\ntwo\n");
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
}

#[test]
fn a_content_change_reruns_exactly_what_depends_on_it() {
    let s = chain();
    s.write("a.txt", "one\ntwo\nthree\n");
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/a.up", "build/a.count"]));
    assert_eq!(s.read("build/a.count").trim(), "3");
}

#[test]
fn early_cutoff_skips_consumers_of_unchanged_outputs() {
    let s = chain();
    // Different input, same uppercase output.
    s.write("a.txt", "ONE\ntwo\n");
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/a.up"]));
    // [n/N]: N was 2 (a.up and a.count expected) and shrank when a.count turned out up to date.
    assert_eq!(run.counters(), vec![(1, 2)]);
}

#[test]
fn restoring_an_older_copy_rebuilds() {
    let s = chain();
    std::fs::copy(s.path("a.txt"), s.path("saved")).unwrap();
    let old = std::fs::metadata(s.path("a.txt"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write("a.txt", "changed\n");
    s.kiln(&["build"]).ok();
    // `cp -p`: the old content with the old mtime.
    std::fs::copy(s.path("saved"), s.path("a.txt")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(s.path("a.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/a.up", "build/a.count"]));
    assert_eq!(s.read("build/a.up"), "ONE\nTWO\n");
}

#[test]
fn a_rewrite_with_the_same_size_and_mtime_rebuilds() {
    let s = chain();
    let old = std::fs::metadata(s.path("b.txt"))
        .unwrap()
        .modified()
        .unwrap();
    s.write("b.txt", "bxx\n");
    std::fs::File::options()
        .write(true)
        .open(s.path("b.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/b.up"]));
    assert_eq!(s.read("build/b.up"), "BXX\n");
}

#[test]
fn deleting_or_altering_an_output_reruns_its_task() {
    let s = chain();
    s.remove("build/b.up");
    assert_eq!(s.kiln(&["build"]).ok().ran_outputs(), set(&["build/b.up"]));
    s.write("build/a.count", "999\n");
    assert_eq!(
        s.kiln(&["build"]).ok().ran_outputs(),
        set(&["build/a.count"])
    );
    assert_eq!(s.read("build/a.count").trim(), "2");
}

#[test]
fn command_env_and_vars_are_in_the_signature() {
    let s = chain();
    // -D changes an env value the `up` commands use: both rerun; their outputs are the same, so
    // count is cut off.
    let run = s.kiln(&["build", "-D", "TR=tr a-z A-Z "]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/a.up", "build/b.up"]));
    // Back to the build file's value: they run again.
    assert_eq!(
        s.kiln(&["build"]).ok().ran_outputs(),
        set(&["build/a.up", "build/b.up"])
    );
    // A `vars` value the command does not use still counts.
    assert_eq!(
        s.kiln(&["build", "-D", "MODE=fancy"]).ok().ran_outputs(),
        set(&["build/a.count"])
    );
    // A changed command.
    s.write(
        "build.toml",
        s.read("build.toml").replace("wc -l <", "wc -l < "),
    );
    s.kiln(&["build", "-D", "MODE=fancy"]).ok();
    assert!(s.kiln(&["build", "-D", "MODE=fancy"]).ok().ran().is_empty());
}

#[test]
fn implicit_dependencies_come_from_the_depfile() {
    let s = Space::new();
    s.write("a.src", "a\n");
    s.write("inc/one.h", "1\n");
    s.write("inc/two.h", "2\n");
    // The command "includes" the headers its source names and writes a gcc-style depfile.
    s.write(
        "build.toml",
        "[rule.cc]\nrun = \"cat ${SRC} inc/one.h inc/two.h > ${TGT} && printf '%s: %s \\\\\\\\\\\\n inc/one.h inc/two.h\\\\n' ${TGT} ${SRC} > ${TGT}.d\"\n\
         depfile = \"${TGT}.d\"\n[[gen]]\nrule = \"cc\"\nsource = \"a.src\"\ntarget = \"a.o\"\n",
    );
    s.kiln(&["build"]).ok();
    assert_eq!(
        s.read("build/a.o.d"),
        "build/a.o: a.src \\\n inc/one.h inc/two.h\n"
    );
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    s.write("inc/two.h", "22\n");
    assert_eq!(s.kiln(&["build"]).ok().ran_outputs(), set(&["build/a.o"]));
    // A deleted header reruns the task; it is no error for kiln (the command decides).
    s.write(
        "build.toml",
        s.read("build.toml")
            .replace("inc/one.h inc/two.h >", "inc/one.h >")
            .replace(" inc/one.h inc/two.h\\\\n", " inc/one.h\\\\n"),
    );
    s.kiln(&["build"]).ok();
    s.remove("inc/two.h");
    assert!(
        s.kiln(&["build"]).ok().ran().is_empty(),
        "two.h is no longer a dependency"
    );
    s.remove("inc/one.h");
    let run = s.kiln(&["build"]).status(1);
    assert_eq!(run.ran_outputs(), set(&["build/a.o"]));
}

/// A header the graph knew but nothing about to run read (so it was stat'ed and not hashed), dated
/// in the future, comes back through a depfile: it is hashed for the record, and the next build
/// runs nothing.
#[test]
fn a_header_dated_in_the_future_that_comes_back_is_recorded_by_its_content() {
    let s = Space::new();
    s.write("a.src", "inc:inc/h.h\n");
    s.write("inc/h.h", "");
    s.write(
        "build.toml",
        "[rule.inc]\nrun = \"sed -n 's/^inc://p' ${SRC} > ${TGT}.list; : > ${TGT}; printf '%s:' ${TGT} > ${TGT}.d; for h in $(cat ${TGT}.list); do cat $h >> ${TGT}; printf ' %s' $h >> ${TGT}.d; done; echo >> ${TGT}.d\"\n\
         depfile = \"${TGT}.d\"\n[[gen]]\nrule = \"inc\"\nsource = \"a.src\"\ntarget = \"a.o\"\n",
    );
    s.kiln(&["build"]).ok();
    let original = std::fs::read(s.path("a.src")).unwrap();
    let original_mtime = std::fs::metadata(s.path("a.src"))
        .unwrap()
        .modified()
        .unwrap();
    s.write("a.src", "");
    assert_eq!(s.kiln(&["build"]).ok().ran_outputs(), set(&["build/a.o"]));
    let h = std::fs::File::options()
        .write(true)
        .open(s.path("inc/h.h"))
        .unwrap();
    let later = h.metadata().unwrap().modified().unwrap() + Duration::from_secs(7);
    h.set_modified(later).unwrap();
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    // `cp -p` of the first a.src: the header is a dependency again.
    s.write("a.src", &original);
    std::fs::File::options()
        .write(true)
        .open(s.path("a.src"))
        .unwrap()
        .set_modified(original_mtime)
        .unwrap();
    assert_eq!(s.kiln(&["build"]).ok().ran_outputs(), set(&["build/a.o"]));
    let run = s.kiln(&["build", "--explain"]).ok();
    assert!(run.ran().is_empty(), "{}", run.stdout);
}

#[test]
fn each_task_is_recorded_as_it_finishes() {
    let s = Space::new();
    // `quick` finishes; then `killer` kills kiln with SIGKILL, once.
    s.write(
        "build.toml",
        "[[gen]]\nname = \"quick\"\nrun = \"echo quick >> log; touch ${TGT}\"\ntarget = \"quick\"\n\
         [[gen]]\nname = \"killer\"\nrun = \"sleep 0.5; if [ ! -e killed ]; then touch killed; kill -9 $PPID; sleep 1; fi; echo killer >> log; touch ${TGT}\"\ntarget = \"killer\"\n",
    );
    let run = s.kiln(&["build", "-j2"]);
    assert_eq!(run.status, -1, "killed by SIGKILL");
    assert_eq!(s.lines("log"), vec!["quick"]);
    let run = s.kiln(&["build", "-j2"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/killer"]));
}

#[test]
fn the_store_is_versioned_and_lives_under_out() {
    let s = chain();
    let bytes = std::fs::read(s.path("build/.kiln/store")).unwrap();
    assert_eq!(&bytes[..8], b"KILNSTOR");
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        kiln::store::VERSION
    );
    let root = s.root().canonicalize().unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains(root.to_str().unwrap()),
        "the store names no absolute project path"
    );
    assert!(!s.exists(".kiln"), "no state in the source tree");
}

#[test]
fn two_checkouts_agree_on_signatures() {
    let s = chain();
    let other = Space::new();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", s.root().display()))
        .arg(other.root())
        .status()
        .unwrap();
    assert!(status.success());
    // Inodes and ctimes differ in the copy, so every file is hashed again: same content, same
    // paths relative to the root, same signatures.
    assert!(other.kiln(&["build"]).ok().ran().is_empty());
}

#[test]
fn a_failed_task_is_not_recorded_and_runs_again() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo run >> log; echo partial > ${TGT}; exit 1\"\ntarget = \"t\"\n",
    );
    s.kiln(&["build"]).status(1);
    s.kiln(&["build"]).status(1);
    assert_eq!(s.lines("log").len(), 2);
}

#[test]
fn always_tasks_run_every_time() {
    let s = Space::new();
    s.write("build.toml", "[rule.check]\nrun = \"echo check >> log\"\nalways = true\n[[gen]]\nname = \"test\"\nrule = \"check\"\n");
    s.kiln(&["build"]).ok();
    s.kiln(&["build"]).ok();
    assert_eq!(s.lines("log").len(), 2);
}
