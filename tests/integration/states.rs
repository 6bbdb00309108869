//! Part 8: task states (not-run, missing, crashed, exception, skipped, success) as a user sees
//! them: a command that exits 0 without its output fails as MISSING, naming the file; a failure
//! shows the command and its whole output.

use crate::support::{Space, Test, set};

#[test]
fn an_output_not_made_is_missing_and_fails_the_build() {
    let (s, run) = Test::new()
        .build_file(
            "[[gen]]\nrun = \"echo made one; touch ${TGT[0]}\"\ntarget = [\"one\", \"two\"]\n",
        )
        .status(1)
        .stderr_has("error: task failed (output not made): ")
        .stderr_has("the command succeeded but did not make the output `build/two`")
        .stderr_has("made one")
        .run();
    assert_eq!(run.summary(), "'build' failed: 1 task failed, 0 not run");
    // Not recorded: it runs again.
    s.kiln(&["build"]).status(1).stderr_has("(output not made)");
}

#[test]
fn a_crash_shows_the_command_and_all_its_output() {
    let (_, run) = Test::new()
        .build_file("[[gen]]\nname = \"noisy\"\nrun = \"seq 1 5000; echo to-stderr >&2; exit 7\"\ntarget = \"x\"\n")
        .status(1)
        .stderr_has("error: task failed (exit status 7): noisy: -> build/x\ncommand: seq")
        .stderr_has("command: seq 1 5000; echo to-stderr >&2; exit 7")
        .run();
    for i in [1, 2500, 5000] {
        assert!(
            run.stderr.lines().any(|l| l == i.to_string()),
            "line {i} of the output"
        );
    }
    assert!(
        run.stderr.contains("5000\nto-stderr\n"),
        "stdout and stderr in the order written"
    );
}

#[test]
fn an_unwritten_depfile_is_an_exception() {
    Test::new()
        .build_file("[rule.r]\nrun = \"touch ${TGT}\"\ndepfile = \"${TGT}.d\"\n[[gen]]\nrule = \"r\"\ntarget = \"x\"\n")
        .status(1)
        .stderr_has("error: task failed (bad depfile): ")
        .stderr_has("the depfile")
        .run();
}

#[test]
fn skipped_success_and_not_run_as_seen_in_the_output() {
    let s = Space::new();
    s.write("in", "1");
    s.write(
        "build.toml",
        "[[gen]]\nname = \"a\"\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"in\"\ntarget = \"a\"\n\
         [[gen]]\nname = \"b\"\nrun = \"test $(cat ${SRC}) = 1 && cp ${SRC} ${TGT}\"\nsource = \"a\"\ntarget = \"b\"\n\
         [[gen]]\nname = \"c\"\nrun = \"cp ${SRC} ${TGT}\"\nsource = \"b\"\ntarget = \"c\"\n",
    );
    // success: all three run.
    assert_eq!(
        s.kiln(&["build"]).ok().ran_outputs(),
        set(&["build/a", "build/b", "build/c"])
    );
    // skipped: none runs.
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    // crashed and not-run: b fails, c does not run.
    s.write("in", "2");
    let run = s.kiln(&["build", "-k"]).status(1);
    assert_eq!(run.ran_outputs(), set(&["build/a", "build/b"]));
    assert_eq!(run.summary(), "'build' failed: 1 task failed, 1 not run");
}

#[test]
fn failures_say_what_happened_in_words() {
    // A compile error is not a crash: each report says what happened as a user would.
    let (s, run) = Test::new()
        .build_file(
            "[[gen]]\nname = \"compile\"\nrun = \"echo 'x.c:1: error: oops' >&2; exit 1\"\ntarget = \"x.o\"\n\
             [[gen]]\nname = \"segv\"\nrun = \"kill -SEGV $$\"\ntarget = \"s\"\n\
             [[gen]]\nname = \"chain\"\nrun = [\"true\", \"exit 3\", \"true\"]\ntarget = \"c\"\n\
             [[gen]]\nname = \"slow\"\nrun = \"sleep 5\"\ntarget = \"t\"\n\
             [[gen]]\nname = \"hang\"\nrun = \"exit 4\"\n",
        )
        .args(&["build", "-k", "-j1", "--timeout", "0.3"])
        .status(1)
        .run();
    assert_eq!(
        run.stderr,
        "[1/5] compile: -> build/x.o\n\
         error: task failed (exit status 1): compile: -> build/x.o\n\
         command: echo 'x.c:1: error: oops' >&2; exit 1\n\
         x.c:1: error: oops\n\
         [2/5] segv: -> build/s\n\
         error: task failed (killed by SIGSEGV): segv: -> build/s\n\
         command: kill -SEGV $$\n\
         [3/5] chain: -> build/c\n\
         error: task failed (exit status 3): chain: -> build/c\n\
         command 1 of 3: true\n\
         command 2 of 3 (failed): exit 3\n\
         command 3 of 3: true\n\
         [4/5] slow: -> build/t\n\
         error: task failed (timed out after 0.3s): slow: -> build/t\n\
         command: sleep 5\n\
         [5/5] hang\n\
         error: task failed (exit status 4): hang\n\
         command: exit 4\n\
         failed (exit status 1): compile (build/x.o)\n\
         failed (killed by SIGSEGV): segv (build/s)\n\
         failed (exit status 3): chain (build/c)\n\
         failed (timed out after 0.3s): slow (build/t)\n\
         failed (exit status 4): hang\n\
         'build' failed: 5 tasks failed, 0 not run\n"
    );
    drop(s);
}
