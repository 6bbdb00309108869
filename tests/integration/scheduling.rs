//! Part 6: the scheduler: -j, group `jobs` caps, `sequence` groups, priorities, `post = "lazy"`,
//! stopping at the first failure, and -k.

use crate::support::{Space, Test, max_overlap, parallel_tasks, set, timed};

#[test]
fn jobs_limit_concurrency() {
    let s = Space::new();
    s.write("build.toml", parallel_tasks(6, 0.3));
    s.kiln(&["build", "-j3"]).ok();
    assert_eq!(max_overlap(&s.lines("log")), 3);
    s.kiln(&["clean"]).ok();
    std::fs::remove_file(s.path("log")).unwrap();
    s.kiln(&["build", "--jobs", "1"]).ok();
    assert_eq!(max_overlap(&s.lines("log")), 1);
}

#[test]
fn the_default_is_the_number_of_cpus() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    let s = Space::new();
    s.write("build.toml", parallel_tasks(cpus + 2, 0.4));
    s.kiln(&["build"]).ok();
    assert_eq!(max_overlap(&s.lines("log")), cpus);
}

#[test]
fn jobs_zero_is_a_usage_error() {
    Test::new()
        .build_file("")
        .args(&["build", "-j", "0"])
        .status(2)
        .run();
}

#[test]
fn a_group_jobs_cap_holds_under_a_larger_j() {
    let s = Space::new();
    let mut text = "[[group]]\nname = \"capped\"\njobs = 2\n".to_string();
    text.push_str(&parallel_tasks(6, 0.3));
    s.write("build.toml", &text);
    s.kiln(&["build", "-j6"]).ok();
    assert_eq!(max_overlap(&s.lines("log")), 2);
}

#[test]
fn a_sequence_group_runs_one_at_a_time_in_declared_order() {
    let s = Space::new();
    let mut text = "[[group]]\nname = \"seq\"\norder = \"sequence\"\n".to_string();
    for name in ["c", "a", "b"] {
        text.push_str(&format!(
            "[[gen]]\nrun = \"{}\"\ntarget = \"{name}\"\n",
            timed(name, 0.1)
        ));
    }
    s.write("build.toml", &text);
    s.kiln(&["build", "-j4"]).ok();
    let log = s.lines("log");
    assert_eq!(
        log,
        vec!["start c", "end c", "start a", "end a", "start b", "end b"]
    );
}

#[test]
fn a_file_constraint_against_sequence_order_is_an_error() {
    Test::new()
        .build_file(
            "[[group]]\nname = \"seq\"\norder = \"sequence\"\n\
             [[gen]]\nname = \"reader\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"w\"\ntarget = \"r\"\n\
             [[gen]]\nname = \"writer\"\nrun = \"touch ${TGT}\"\ntarget = \"w\"\n",
        )
        .status(2)
        .stderr_is(concat!(
            "build.toml:4:1: error: in sequence group `seq`, generator `reader` comes before generator `writer` but reads its output\n",
            "  |\n",
            "4 | [[gen]]\n",
            "  | ^^^^^^^\n",
            "  = a sequence group runs in declared order: declare the producer first\n",
        ))
        .run();
}

#[test]
fn the_longest_remaining_path_starts_first() {
    let s = Space::new();
    // Declared first: three independent leaves. Declared last: the head of a three-task chain.
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo leaf1 >> log; touch ${TGT}\"\ntarget = \"leaf1\"\n\
         [[gen]]\nrun = \"echo leaf2 >> log; touch ${TGT}\"\ntarget = \"leaf2\"\n\
         [[gen]]\nrun = \"echo tail >> log; cat ${SRC} > ${TGT}\"\nsource = \"mid\"\ntarget = \"tail\"\n\
         [[gen]]\nrun = \"echo mid >> log; cat ${SRC} > ${TGT}\"\nsource = \"head\"\ntarget = \"mid\"\n\
         [[gen]]\nrun = \"echo head >> log; echo h > ${TGT}\"\ntarget = \"head\"\n",
    );
    s.kiln(&["build", "-j1"]).ok();
    assert_eq!(s.lines("log")[0], "head");
}

#[test]
fn recorded_durations_weigh_priorities() {
    let s = Space::new();
    s.write("in", "1");
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo fast >> log; cat ${SRC} > ${TGT}\"\nsource = \"in\"\ntarget = \"fast\"\n\
         [[gen]]\nrun = \"echo slow >> log; sleep 0.5; cat ${SRC} > ${TGT}\"\nsource = \"in\"\ntarget = \"slow\"\n",
    );
    s.kiln(&["build", "-j1"]).ok();
    assert_eq!(
        s.lines("log"),
        vec!["fast", "slow"],
        "declared order without durations"
    );
    s.write("in", "2");
    s.kiln(&["build", "-j1"]).ok();
    assert_eq!(
        s.lines("log")[2..],
        ["slow", "fast"],
        "the slow task goes first once its duration is known"
    );
}

#[test]
fn lazy_groups_glob_what_earlier_groups_generated() {
    let text = |post: &str| {
        format!(
            "[project]\npost = \"{post}\"\n[[group]]\nname = \"gen\"\n[[group]]\nname = \"use\"\n\
             [[gen]]\nname = \"make\"\ngroup = \"gen\"\nrun = \"echo 1 > ${{TGT[0]}}; echo 2 > ${{TGT[1]}}\"\ntarget = [\"gen/one.c\", \"gen/two.c\"]\n\
             [[gen]]\nname = \"collect\"\ngroup = \"use\"\nrun = \"echo ${{SRC}} > ${{TGT}}\"\nsource = [\"${{OUT}}/gen/*.c\"]\ntarget = \"list\"\n"
        )
    };
    let s = Space::new();
    s.write("build.toml", text("lazy"));
    s.kiln(&["build"]).ok();
    assert_eq!(s.read("build/list"), "build/gen/one.c build/gen/two.c\n");
    let s = Space::new();
    s.write("build.toml", text("at-once"));
    s.kiln(&["build"]).ok().stderr_has("matched nothing");
    assert_eq!(s.read("build/list"), "\n");
}

#[test]
fn a_lazy_groups_error_surfaces_at_expansion_and_keeps_earlier_work() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[project]\npost = \"lazy\"\n[[group]]\nname = \"gen\"\n[[group]]\nname = \"use\"\n\
         [[gen]]\nname = \"make\"\ngroup = \"gen\"\nrun = \"echo 1 > ${TGT}\"\ntarget = \"one\"\n\
         [[gen]]\nname = \"needs\"\ngroup = \"use\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"missing.txt\"]\ntarget = \"two\"\n",
    );
    s.kiln(&["build"]).status(2).stderr_is(concat!(
        "[1/1] make: -> build/one\n",
        "build.toml:16:11: error: missing source `missing.txt` in `source` of generator `needs`\n",
        "   |\n",
        "16 | source = [\"missing.txt\"]\n",
        "   |           ^^^^^^^^^^^^^\n",
        "  = no such file, and no generator declares it as a target\n",
    ));
    assert!(s.exists("build/one"));
    // The earlier work was recorded: fixing the file runs only the new task.
    s.write("missing.txt", "x");
    let run = s.kiln(&["build"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/two"]));
}

/// Three independent tasks, one of which fails quickly while a slow one runs; a fourth depends on
/// the failing one; a fifth is in a later group.
fn failing_project(s: &Space) {
    s.write(
        "build.toml",
        format!(
            "[[group]]\nname = \"one\"\n[[group]]\nname = \"two\"\n\
             [[gen]]\nname = \"bad\"\nrun = \"echo bad >> log; echo oops; exit 3\"\ntarget = \"bad\"\n\
             [[gen]]\nname = \"slow\"\nrun = \"{}\"\ntarget = \"slow\"\n\
             [[gen]]\nname = \"dependent\"\nrun = \"echo dependent >> log; cp ${{SRC}} ${{TGT}}\"\nsource = \"bad\"\ntarget = \"dep\"\n\
             [[gen]]\nname = \"other1\"\nrun = \"sleep 0.1; echo other1 >> log; touch ${{TGT}}\"\ntarget = \"o1\"\n\
             [[gen]]\nname = \"other2\"\nrun = \"sleep 0.1; echo other2 >> log; touch ${{TGT}}\"\ntarget = \"o2\"\n\
             [[gen]]\nname = \"later\"\ngroup = \"two\"\nrun = \"echo later >> log; touch ${{TGT}}\"\ntarget = \"later\"\n\
             [[gen]]\nname = \"later-dep\"\ngroup = \"two\"\nrun = \"echo later-dep >> log; cp ${{SRC}} ${{TGT}}\"\nsource = \"dep\"\ntarget = \"later-dep\"\n",
            timed("slow", 0.5)
        ),
    );
}

#[test]
fn without_keep_going_the_first_failure_stops_new_tasks_and_running_ones_finish() {
    let s = Space::new();
    failing_project(&s);
    let run = s.kiln(&["build", "-j2"]).status(1);
    let log = s.lines("log");
    assert!(
        log.contains(&"end slow".to_string()),
        "the running task finished: {log:?}"
    );
    assert!(
        !log.contains(&"later".to_string()) && !log.contains(&"dependent".to_string()),
        "{log:?}"
    );
    assert!(
        run.summary().starts_with("'build' failed: 1 task failed, "),
        "{}",
        run.summary()
    );
    assert!(run.stderr.contains("oops"));
    // The slow task was recorded: it does not run again.
    s.write(
        "build.toml",
        s.read("build.toml").replace("exit 3", "touch ${TGT}"),
    );
    let again = s.kiln(&["build", "-j2"]).ok();
    assert!(
        !again.ran_outputs().contains("build/slow"),
        "{:?}",
        again.ran()
    );
}

#[test]
fn keep_going_runs_everything_that_does_not_depend_on_a_failure() {
    let s = Space::new();
    failing_project(&s);
    let run = s.kiln(&["build", "-k", "-j2"]).status(1);
    let mut log = s.lines("log");
    log.sort();
    assert_eq!(
        log,
        vec!["bad", "end slow", "later", "other1", "other2", "start slow"]
    );
    assert_eq!(run.summary(), "'build' failed: 1 task failed, 2 not run");
    assert!(
        run.stderr
            .contains("failed (exit status 3): bad (build/bad)"),
        "{}",
        run.stderr
    );
    let run = s.kiln(&["build", "--keep-going", "-j2"]).status(1);
    assert_eq!(run.summary(), "'build' failed: 1 task failed, 2 not run");
}

#[test]
fn targets_reach_into_lazy_groups() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[project]\npost = \"lazy\"\n[[group]]\nname = \"a\"\n[[group]]\nname = \"b\"\n\
         [[gen]]\nname = \"one\"\ngroup = \"a\"\nrun = \"echo one > ${TGT}\"\ntarget = \"one.txt\"\n\
         [[gen]]\nname = \"two\"\ngroup = \"b\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"one.txt\"]\ntarget = \"two.txt\"\n\
         [[gen]]\nname = \"three\"\ngroup = \"b\"\nrun = \"echo three > ${TGT}\"\ntarget = \"three.txt\"\n",
    );
    let run = s.kiln(&["build", "--targets", "two"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/one.txt", "build/two.txt"]));
    let run = s.kiln(&["build", "--targets", "build/three.txt"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/three.txt"]));
}

#[test]
fn a_dry_run_stops_before_a_lazy_group_it_cannot_expand_yet() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[project]\npost = \"lazy\"\n[[group]]\nname = \"gen\"\n[[group]]\nname = \"use\"\n\
         [[gen]]\nname = \"make\"\ngroup = \"gen\"\nrun = \"touch ${TGT} side-effect.txt\"\ntarget = \"one\"\n\
         [[gen]]\nname = \"needs\"\ngroup = \"use\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"side-effect.txt\"]\ntarget = \"two\"\n",
    );
    let run = s
        .kiln(&["build", "-n"])
        .ok()
        .stderr_has("the dry run stops before group `use`");
    assert_eq!(run.ran(), vec!["make: -> build/one"]);
    assert!(!s.exists("side-effect.txt") && !s.exists("build"));
    s.kiln(&["build"]).ok();
    assert!(s.exists("build/two"));
}

/// Five independent tasks at `-jN`: the first fails, the slow ones hold the other slots.
/// Without -k, nothing starts after the failure, and no `[n/N]` line names a task that never ran.
fn no_task_starts_after_the_first_failure(jobs: usize) {
    // `a` fails once the other slots are taken (at most 5 s): on a loaded machine it could
    // otherwise fail before the scheduler has started `b`, and rightly start nothing more.
    let mut text = format!(
        "[[gen]]\nname = \"a\"\nrun = \"echo a >> log; n=0; while [ $(wc -l < log) -lt {jobs} ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done; exit 1\"\ntarget = \"a\"\n"
    );
    for name in ["b", "c", "d", "e"] {
        text.push_str(&format!(
            "[[gen]]\nname = \"{name}\"\nrun = \"echo {name} >> log; sleep 0.3; touch ${{TGT}}\"\ntarget = \"{name}\"\n"
        ));
    }
    // The race it guards against (a queued task starting as the failing one frees its slot) does
    // not show every time: three fresh builds.
    for _ in 0..3 {
        let s = Space::new();
        s.write("build.toml", &text);
        let run = s.kiln(&["build", &format!("-j{jobs}")]).status(1);
        // Declared order breaks the tie: `a` and the `jobs - 1` tasks after it start together.
        let started: Vec<String> = ["a", "b", "c", "d", "e"][..jobs]
            .iter()
            .map(|n| n.to_string())
            .collect();
        let mut log = s.lines("log");
        log.sort();
        assert_eq!(
            log, started,
            "only the first {jobs} started\n{}",
            run.stderr
        );
        assert_eq!(
            run.ran().len(),
            jobs,
            "one [n/N] line per started task\n{}",
            run.stderr
        );
        assert_eq!(
            run.summary(),
            format!("'build' failed: 1 task failed, {} not run", 5 - jobs)
        );
    }
}

#[test]
fn at_j1_no_task_starts_after_the_first_failure() {
    no_task_starts_after_the_first_failure(1);
}

#[test]
fn at_j2_no_task_starts_after_the_first_failure() {
    no_task_starts_after_the_first_failure(2);
}

#[test]
fn a_generator_with_default_false_builds_only_when_named() {
    // A test suite run as a task, and the program only it needs: `make check`, not `make`.
    let s = Space::new();
    s.write("in", "1");
    s.write(
        "build.toml",
        "[[gen]]\nname = \"app\"\nrun = \"echo app >> log; cp ${SRC} ${TGT}\"\nsource = \"in\"\ntarget = \"app\"\n\
         [[gen]]\nname = \"testbin\"\nrun = \"echo testbin >> log; cp ${SRC} ${TGT}\"\nsource = \"in\"\ntarget = \"testbin\"\ndefault = false\n\
         [[gen]]\nname = \"check\"\nrun = \"echo check >> log\"\nsource = [\"app\", \"testbin\"]\ndefault = false\n",
    );
    s.kiln(&["build"]).ok();
    assert_eq!(s.lines("log"), vec!["app"]);
    // Up to date: an edit elsewhere does not make the test suite run.
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    let run = s.kiln(&["build", "check"]).ok();
    assert_eq!(
        run.ran_outputs(),
        crate::support::set(&["build/testbin", "check"])
    );
    s.write("in", "2");
    s.kiln(&["build"]).ok();
    assert_eq!(s.lines("log"), vec!["app", "testbin", "check", "app"]);
}

#[test]
fn order_only_runs_after_without_signing_or_passing_the_output() {
    // ninja's `||`: `user` must wait for the host tool, but does not read what it made.
    let s = Space::new();
    s.write("tool.txt", "1");
    s.write("user.txt", "u");
    s.write(
        "build.toml",
        format!(
            "[[gen]]\nname = \"tool\"\nrun = \"{}; cat ${{SRC}} > ${{TGT}}\"\nsource = \"tool.txt\"\ntarget = \"tool\"\n\
             [[gen]]\nname = \"user\"\nrun = \"echo start user >> log; echo ${{SRC}} > ${{TGT}}\"\nsource = \"user.txt\"\ntarget = \"user\"\norder_only = [\"tool\"]\n",
            timed("tool", 0.3).replace("; touch ${TGT}", "")
        ),
    );
    // Only what it needs, at -j2: the tool first, though nothing else orders them.
    s.kiln(&["build", "-j2", "user"]).ok();
    assert_eq!(s.lines("log"), vec!["start tool", "end tool", "start user"]);
    assert_eq!(
        s.read("build/user"),
        "user.txt\n",
        "the tool is not in its inputs"
    );
    // Not in the signature: a rebuilt tool does not rerun `user`.
    s.write("tool.txt", "2");
    let run = s.kiln(&["build", "-j2"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/tool"]));
}
