//! Part 9: the command line: build, clean, distclean, list, -j, -k, -n, -v, -C, -f, -D, --out,
//! --targets; finding build.toml; long commands; output format; exit statuses and signals; the
//! build lock.

use crate::support::{KILN, Space, Test, set, spawn_kiln, wait_for};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Two inputs, copied and then joined.
fn project() -> Space {
    let s = Space::new();
    s.write("a.txt", "a\n");
    s.write("b.txt", "b\n");
    s.write(
        "build.toml",
        "[rule.copy]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".txt\"]\next_out = [\".copy\"]\n\
         [[gen]]\nname = \"copies\"\nsource = [\"a.txt\", \"b.txt\"]\n\
         [[gen]]\nname = \"joined\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"build/a.copy\", \"build/b.copy\"]\ntarget = \"joined\"\n\
         [[gen]]\nname = \"alone\"\nrun = \"echo alone > ${TGT}\"\ntarget = \"alone\"\n",
    );
    s
}

#[test]
fn kiln_alone_builds_and_prints_progress_lines_and_a_summary_on_stderr() {
    let s = project();
    let run = s.kiln(&[]).ok();
    assert_eq!(run.stdout, "", "a build prints nothing on stdout");
    let mut lines: Vec<&str> = run.stderr.lines().collect();
    let summary = lines.pop().unwrap();
    assert!(
        summary.starts_with("'build' finished successfully (") && summary.ends_with("s)"),
        "{summary}"
    );
    lines.sort();
    assert_eq!(lines.len(), 4);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with('[') && l.contains("/4] ")),
        "{lines:?}"
    );
    let ran: Vec<String> = lines
        .iter()
        .map(|l| l.split_once("] ").unwrap().1.to_string())
        .collect();
    let mut expected = vec![
        "copy: a.txt -> build/a.copy",
        "copy: b.txt -> build/b.copy",
        "joined: build/a.copy build/b.copy -> build/joined",
        "alone: -> build/alone",
    ];
    expected.sort();
    let mut ran_sorted = ran.clone();
    ran_sorted.sort();
    assert_eq!(ran_sorted, expected);
}

#[test]
fn the_build_file_is_found_in_the_nearest_parent() {
    let s = project();
    std::fs::create_dir_all(s.path("deep/er")).unwrap();
    s.kiln_in("deep/er", &["build"]).ok();
    assert_eq!(s.read("build/joined"), "a\nb\n");
    Test::new()
        .current_dir("x")
        .status(2)
        .stderr_is(
            "error: no build.toml in [ROOT]/x or any parent directory (use -f FILE to name one)\n",
        )
        .run();
}

#[test]
fn dash_c_runs_as_if_started_there() {
    let s = project();
    let run = Command::new(KILN)
        .args(["-C", s.root().to_str().unwrap(), "build"])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(run.status.success());
    assert_eq!(s.read("build/joined"), "a\nb\n");
}

#[test]
fn dash_f_names_another_build_file() {
    let s = project();
    std::fs::rename(s.path("build.toml"), s.path("other.toml")).unwrap();
    s.kiln(&["-f", "other.toml", "build"]).ok();
    assert_eq!(s.read("build/joined"), "a\nb\n");
    s.kiln(&["-f", "nope.toml"])
        .status(2)
        .stderr_is("error: -f nope.toml: no such build file\n");
}

#[test]
fn out_builds_into_another_directory_beside_the_first() {
    let s = project();
    s.write(
        "build.toml",
        s.read("build.toml").replace("echo alone", "echo ${MODE}") + "[env]\nMODE = \"release\"\n",
    );
    s.kiln(&["build"]).ok();
    s.kiln(&["build", "--out", "build-debug", "-D", "MODE=debug"])
        .ok();
    assert_eq!(s.read("build/alone"), "release\n");
    assert_eq!(s.read("build-debug/alone"), "debug\n");
    assert_eq!(s.read("build-debug/joined"), "a\nb\n");
    // Each has its own state: both are up to date.
    assert!(s.kiln(&["build"]).ok().ran().is_empty());
    assert!(
        s.kiln(&["build", "--out", "build-debug", "-D", "MODE=debug"])
            .ok()
            .ran()
            .is_empty()
    );
    // An out directory outside the project works too.
    let outside = Space::new();
    let dir = outside.path("b");
    s.kiln(&["build", "--out", dir.to_str().unwrap()]).ok();
    assert_eq!(
        std::fs::read_to_string(dir.join("joined")).unwrap(),
        "a\nb\n"
    );
}

#[test]
fn dash_d_defines_and_overrides_env_values() {
    let (s, _) = Test::new()
        .build_file("[env]\nA = \"from-file\"\n[[gen]]\nrun = \"echo ${A} ${B} > ${TGT}\"\ntarget = \"x\"\n")
        .args(&["build", "-D", "A=over ridden", "-D", "B=new"])
        .run();
    assert_eq!(s.read("build/x"), "over ridden new\n");
    s.kiln(&["build", "-D", "nonsense"]).status(2);
}

#[test]
fn targets_build_only_what_they_need() {
    let s = project();
    let run = s.kiln(&["build", "--targets", "joined"]).ok();
    assert_eq!(
        run.ran_outputs(),
        set(&["build/a.copy", "build/b.copy", "build/joined"])
    );
    assert!(!s.exists("build/alone"));
    let s = project();
    let run = s.kiln(&["build", "--targets", "build/a.copy,alone"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/a.copy", "build/alone"]));
    s.kiln(&["build", "--targets", "joind"])
        .status(2)
        .stderr_has("unknown target `joind`")
        .stderr_has("did you mean `joined`?");
}

#[test]
fn dry_run_prints_what_would_run_and_changes_nothing() {
    let s = project();
    let run = s.kiln(&["build", "-n"]).ok();
    assert_eq!(run.ran().len(), 4);
    assert!(
        run.summary()
            .starts_with("'build' dry run: 4 tasks would run"),
        "{}",
        run.summary()
    );
    assert!(!s.exists("build"), "nothing is created");
    s.kiln(&["build"]).ok();
    let store = std::fs::read(s.path("build/.kiln/store")).unwrap();
    s.write("a.txt", "changed\n");
    s.write(
        "build.toml",
        s.read("build.toml").replace(
            "[[gen]]\nname = \"alone\"\nrun = \"echo alone > ${TGT}\"\ntarget = \"alone\"\n",
            "",
        ),
    );
    let run = s.kiln(&["build", "--dry-run"]).ok();
    assert_eq!(run.ran_outputs(), set(&["build/a.copy", "build/joined"]));
    assert!(
        run.stderr.contains("would delete stale output build/alone"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read(s.path("build/.kiln/store")).unwrap(),
        store,
        "the store is unchanged"
    );
    assert!(s.exists("build/alone"));
    assert_eq!(s.read("build/a.copy"), "a\n");
}

#[test]
fn verbose_prints_each_full_command() {
    let s = project();
    let run = s.kiln(&["build", "-v", "-j1"]).ok();
    assert!(
        run.stderr.lines().any(|l| l == "cp a.txt build/a.copy"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l == "cat build/a.copy build/b.copy > build/joined")
    );
    project().kiln(&["build"]).ok().stderr_lacks("cp a.txt");
}

#[test]
fn list_prints_each_generator_and_its_outputs_on_stdout() {
    Test::new()
        .build_file("[[gen]]\nname = \"only\"\nrun = \"touch ${TGT}\"\ntarget = \"x\"\n")
        .args(&["list"])
        .stdout_has("only build/x\n")
        .run();
    let s = project();
    let run = s.kiln(&["list"]).ok();
    assert_eq!(
        run.stdout,
        "copies build/a.copy build/b.copy\njoined build/joined\nalone build/alone\n"
    );
    assert!(!s.exists("build"));
}

#[test]
fn clean_deletes_only_what_kiln_made() {
    let s = project();
    s.write(
        "build.toml",
        &(s.read("build.toml")
            + "[[gen]]\nname = \"deep\"\nrun = \"echo d > ${TGT}\"\ntarget = \"sub/dir/deep\"\n"),
    );
    s.kiln(&["build"]).ok();
    s.write("build/mine.txt", "user file");
    // An output recorded by an earlier build file and gone from this one (stale) is cleaned too.
    s.write(
        "build.toml",
        s.read("build.toml").replace(
            "[[gen]]\nname = \"alone\"\nrun = \"echo alone > ${TGT}\"\ntarget = \"alone\"\n",
            "",
        ),
    );
    let run = s.kiln(&["clean"]).ok();
    assert!(
        run.summary().starts_with("'clean' finished successfully"),
        "{}",
        run.summary()
    );
    for gone in [
        "build/a.copy",
        "build/b.copy",
        "build/joined",
        "build/alone",
        "build/sub/dir/deep",
        "build/sub",
    ] {
        assert!(!s.exists(gone), "{gone} remains");
    }
    assert_eq!(s.read("build/mine.txt"), "user file");
    assert_eq!(s.read("a.txt"), "a\n");
    // After clean everything builds again.
    assert_eq!(s.kiln(&["build"]).ok().ran().len(), 4);
}

#[test]
fn clean_never_follows_a_symlink_out_of_the_build_directory() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo x > ${TGT}\"\ntarget = \"sub/x\"\n",
    );
    s.kiln(&["build"]).ok();
    let outside = Space::new();
    outside.write("x", "precious");
    std::fs::remove_dir_all(s.path("build/sub")).unwrap();
    std::os::unix::fs::symlink(outside.root(), s.path("build/sub")).unwrap();
    s.kiln(&["clean"]).ok();
    assert_eq!(outside.read("x"), "precious");
}

#[test]
fn distclean_removes_the_build_directory_and_refuses_what_it_did_not_make() {
    let s = project();
    s.kiln(&["build"]).ok();
    s.kiln(&["distclean"]).ok();
    assert!(!s.exists("build"));
    assert!(s.exists("a.txt"));
    // A build directory that is a symlink.
    let elsewhere = Space::new();
    elsewhere.write(".kiln/store", "");
    std::os::unix::fs::symlink(elsewhere.root(), s.path("build")).unwrap();
    s.kiln(&["distclean"]).status(2).stderr_has("is a symlink");
    assert!(elsewhere.exists(".kiln/store"));
    // A directory without kiln's state.
    let t = Space::new();
    t.write("build.toml", "[project]\nout = \"src\"\n");
    t.write("src/main.c", "int main;");
    t.kiln(&["distclean"])
        .status(2)
        .stderr_has("holds no kiln state");
    assert!(t.exists("src/main.c"));
    // The project root itself cannot even be the build directory.
    Test::new()
        .build_file("[project]\nout = \".\"\n")
        .args(&["distclean"])
        .status(2)
        .stderr_is(concat!(
            "build.toml:2:7: error: the build directory `.` would contain the project: kiln writes and cleans there\n",
            "  |\n",
            "2 | out = \".\"\n",
            "  |       ^^^\n",
            "  = expected a directory of its own, such as \"build\" or \"../build-debug\"\n",
        ))
        .run();
}

#[test]
fn commands_longer_than_one_kernel_argument_still_run() {
    let s = Space::new();
    let mut sources = Vec::new();
    for i in 0..3000 {
        let name = format!("src/a_rather_long_directory_name_for_objects/object_number_{i:05}.o");
        s.write(&name, format!("{i}\n"));
        sources.push(format!("\"{name}\""));
    }
    s.write("build.toml", format!("[[gen]]\nname = \"link\"\nrun = \"cat ${{SRC}} > ${{TGT}}\"\nsource = [{}]\ntarget = \"linked\"\n", sources.join(", ")));
    s.kiln(&["build"]).ok();
    let linked = s.read("build/linked");
    assert_eq!(linked.lines().count(), 3000);
    assert!(linked.starts_with("0\n1\n") && linked.ends_with("2999\n"));
}

/// Starts kiln on a project whose one task records its shell's pid and its grandchild's, then
/// sleeps; returns the child once the task has started.
fn start_sleeping(s: &Space) -> std::process::Child {
    s.write("build.toml", "[[gen]]\nrun = \"sleep 60 & echo $! > grandchild; echo $$ > child; wait\"\ntarget = \"never\"\n");
    let child = Command::new(KILN)
        .arg("build")
        .current_dir(s.root())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !(s.exists("grandchild") && s.exists("child")) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the task did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    child
}

fn alive(pid: i32) -> bool {
    rustix::process::test_kill_process(rustix::process::Pid::from_raw(pid).unwrap()).is_ok()
}

fn pid(s: &Space, file: &str) -> i32 {
    s.read(file).trim().parse().unwrap()
}

#[test]
fn signals_stop_the_build_with_128_plus_the_signal_and_leave_no_process() {
    for (signal, status) in [
        (rustix::process::Signal::INT, 130),
        (rustix::process::Signal::TERM, 143),
        (rustix::process::Signal::HUP, 129),
    ] {
        let s = Space::new();
        let mut child = start_sleeping(&s);
        let t = Instant::now();
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
            signal,
        )
        .unwrap();
        let exit = child.wait().unwrap();
        assert_eq!(exit.code(), Some(status), "{signal:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
        let (c, g) = (pid(&s, "child"), pid(&s, "grandchild"));
        let deadline = Instant::now() + Duration::from_secs(2);
        while (alive(c) || alive(g)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !alive(c) && !alive(g),
            "no command outlives kiln by 2s ({signal:?})"
        );
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(err.contains("'build' interrupted by"), "{err}");
    }
}

#[test]
fn a_second_kiln_waits_for_the_lock_or_gives_up_with_no_wait() {
    let s = Space::new();
    let mut first = start_sleeping(&s);
    s.kiln(&["build", "--no-wait"])
        .status(2)
        .stderr_has("another kiln is working in build/");
    let second = Command::new(KILN)
        .arg("build")
        .current_dir(s.root())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    first.wait().unwrap();
    // The second now holds the lock and runs the task; stop it too.
    std::thread::sleep(Duration::from_millis(300));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(second.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let out = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("waiting for another kiln working in build/"),
        "{err}"
    );
}

#[test]
fn exit_status_is_0_1_or_2() {
    Test::new()
        .build_file("[[gen]]\nrun = \"touch ${TGT}\"\ntarget = \"x\"\n")
        .status(0)
        .run();
    Test::new()
        .build_file("[[gen]]\nrun = \"exit 1\"\ntarget = \"x\"\n")
        .status(1)
        .run();
    Test::new()
        .build_file("[[gen]]\nbogus = 1\n")
        .status(2)
        .stderr_is(concat!(
            "build.toml:2:1: error: unknown key `bogus`\n",
            "  |\n",
            "2 | bogus = 1\n",
            "  | ^^^^^\n",
            "  = expected one of `name`, `group`, `rule`, `run`, `source`, `exclude`, `target`, `use`, `deps`, `env`, `map`, `default`, `order_only`, `ext_rules`, `objdir`, `install`\n",
        ))
        .run();
    Test::new()
        .build_file("")
        .args(&["--no-such-flag"])
        .status(2)
        .run();
}

#[test]
fn an_interrupted_command_that_traps_the_signal_still_loses_its_partial_output() {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nrun = \"echo partial > ${TGT}; trap 'exit 1' INT; touch started; sleep 5; echo done >> ${TGT}\"\ntarget = \"slow\"\n",
    );
    let child = spawn_kiln(&s, &["build"]);
    wait_for(&s, "started");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        !err.contains("task failed"),
        "an interrupted task is not a failure: {err}"
    );
    assert!(!s.exists("build/slow"), "the partial output is deleted");
}

/// Every file under `dir` with its bytes, to see that nothing changed.
fn tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn clean_and_distclean_dry_runs_print_what_they_would_delete_and_delete_nothing() {
    let s = project();
    s.kiln(&["build"]).ok();
    // The graph cache and the snapshot are written by the build after the first.
    s.kiln(&["build"]).ok();
    for state in ["store", "snapshot", "graph"] {
        assert!(s.exists(&format!("build/.kiln/{state}")), "{state}");
    }
    let before = tree(&s.path("build"));
    for args in [
        &["clean", "-n"][..],
        &["clean", "--dry-run"],
        &["-n", "clean"],
    ] {
        let run = s.kiln(args).ok();
        for output in [
            "build/a.copy",
            "build/b.copy",
            "build/joined",
            "build/alone",
        ] {
            assert!(
                run.stderr
                    .lines()
                    .any(|l| l == format!("would remove {output}")),
                "{args:?}: {}",
                run.stderr
            );
        }
        assert!(
            run.summary().starts_with("'clean' dry run (")
                && run.summary().ends_with("4 files would be removed"),
            "{}",
            run.summary()
        );
    }
    for args in [&["distclean", "-n"][..], &["-n", "distclean"]] {
        let run = s.kiln(args).ok().stderr_has("would remove build\n");
        assert!(
            run.summary().starts_with("'distclean' dry run (")
                && run.summary().contains("build would be removed"),
            "{}",
            run.summary()
        );
    }
    assert_eq!(
        tree(&s.path("build")),
        before,
        "nothing changed, state included"
    );
    // Without -n they delete.
    let run = s.kiln(&["clean"]).ok();
    assert!(
        run.summary().ends_with("4 files removed"),
        "{}",
        run.summary()
    );
    assert!(!s.exists("build/joined"));
    s.kiln(&["distclean"]).ok();
    assert!(!s.exists("build"));
}

#[test]
fn build_options_belong_to_build_and_clean_refuses_them() {
    let s = project();
    let help = s.kiln(&["clean", "--help"]).ok().stdout;
    for flag in [
        "--jobs",
        "--keep-going",
        "--timeout",
        "--targets",
        "--explain",
    ] {
        assert!(!help.contains(flag), "clean --help offers {flag}:\n{help}");
    }
    assert!(
        help.contains("--dry-run") && help.contains("-C <DIR>"),
        "{help}"
    );
    let help = s.kiln(&["build", "--help"]).ok().stdout;
    for flag in [
        "--jobs",
        "--keep-going",
        "--timeout",
        "--dry-run",
        "-C <DIR>",
    ] {
        assert!(help.contains(flag), "build --help lacks {flag}:\n{help}");
    }
    for args in [
        &["clean", "-j4"][..],
        &["distclean", "-k"],
        &["clean", "--timeout", "3"],
        &["-j4", "clean"],
        &["-k", "distclean"],
        &["list", "-j2"],
    ] {
        s.kiln(args).status(2);
    }
    assert!(!s.exists("build"), "nothing ran");
    // Build options go before `build`, after it, or with no subcommand at all.
    assert_eq!(s.kiln(&["-j4"]).ok().ran().len(), 4);
    for args in [
        &["-k"][..],
        &["-j2", "build"],
        &["build", "-k", "--jobs", "1"],
    ] {
        s.kiln(args).ok();
    }
    let dir = s.root().to_str().unwrap();
    for args in [
        &["-C", dir, "build", "-j2"][..],
        &["build", "-C", dir, "-j2", "-v"],
    ] {
        let run = Command::new(KILN)
            .args(args)
            .current_dir("/")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(0), "{args:?}: {err}");
    }
    assert!(s.kiln(&["-n", "-v"]).ok().ran().is_empty());
}

#[test]
fn positional_targets_are_the_same_as_targets() {
    let s = project();
    let run = s.kiln(&["build", "joined"]).ok();
    assert_eq!(
        run.ran_outputs(),
        set(&["build/a.copy", "build/b.copy", "build/joined"])
    );
    assert!(!s.exists("build/alone"));
    let by_flag = project()
        .kiln(&["build", "--targets", "build/a.copy,alone"])
        .ok()
        .ran_outputs();
    let positional = project()
        .kiln(&["build", "build/a.copy", "alone"])
        .ok()
        .ran_outputs();
    assert_eq!(positional, by_flag);
    assert_eq!(positional, set(&["build/a.copy", "build/alone"]));
    // Both forms together, flags anywhere.
    let run = project()
        .kiln(&["build", "alone", "-j1", "--targets", "build/b.copy"])
        .ok();
    assert_eq!(run.ran_outputs(), set(&["build/b.copy", "build/alone"]));
    s.kiln(&["build", "joind"])
        .status(2)
        .stderr_has("unknown target `joind`");
}

/// A project that ships a `build/` of its own (CMake files), and a build file with kiln's default
/// `out`; its one task would log that it ran and make `build/x`, a name the other tool uses too.
fn foreign_build_dir() -> Space {
    let s = Space::new();
    s.write(
        "build.toml",
        "[[gen]]\nname = \"x\"\nrun = \"echo ran >> log; echo kiln > ${TGT}\"\ntarget = \"x\"\n",
    );
    s.write("build/CMakeLists.txt", "project(theirs)\n");
    s.write("build/x", "theirs\n");
    s
}

#[test]
fn kiln_neither_builds_into_nor_deletes_a_build_directory_it_did_not_make() {
    let s = foreign_build_dir();
    for args in [&["build"][..], &["build", "-n"], &[]] {
        s.kiln(args)
            .status(2)
            .stderr_has("`build` holds no kiln state")
            .stderr_has("--out build-kiln")
            .stderr_has("out = \"build-kiln\"");
    }
    for args in [
        &["clean"][..],
        &["clean", "-n"],
        &["distclean"],
        &["distclean", "-n"],
    ] {
        s.kiln(args)
            .status(2)
            .stderr_has("kiln deletes only build directories it made");
    }
    assert!(!s.exists("log"), "nothing ran");
    assert_eq!(s.read("build/CMakeLists.txt"), "project(theirs)\n");
    assert_eq!(s.read("build/x"), "theirs\n");
    let mut left: Vec<String> = std::fs::read_dir(s.path("build"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["CMakeLists.txt", "x"], "no mark, no state");
    // Another build directory works, and so does an empty one.
    s.kiln(&["build", "--out", "build-kiln"]).ok();
    assert_eq!(s.read("build-kiln/x"), "kiln\n");
    std::fs::create_dir(s.path("empty")).unwrap();
    s.kiln(&["build", "--out", "empty"]).ok();
    assert_eq!(s.read("empty/x"), "kiln\n");
    s.kiln(&["distclean", "--out", "empty"]).ok();
    assert!(!s.exists("empty"));
    assert_eq!(s.read("build/CMakeLists.txt"), "project(theirs)\n");
}

#[test]
fn a_build_marks_the_directory_it_makes_and_globs_skip_marked_directories() {
    let s = Space::new();
    s.write("a.txt", "a\n");
    s.write(
        "build.toml",
        "[[gen]]\nname = \"notes\"\nrun = \"echo n > ${TGT}\"\ntarget = \"notes.txt\"\n\
         [[gen]]\nname = \"all\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = \"**/*.txt\"\ntarget = \"all\"\n",
    );
    s.kiln(&["build", "-n"]).ok();
    assert!(!s.exists("build"), "a dry run makes nothing");
    s.kiln(&["build", "--out", "debug"]).ok();
    let tag = s.read("debug/CACHEDIR.TAG");
    assert!(
        tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55\n") && tag.contains("kiln"),
        "{tag}"
    );
    // `debug/notes.txt` is another build's output, not a source of this one.
    s.kiln(&["build"]).ok();
    assert!(s.exists("build/CACHEDIR.TAG"));
    assert_eq!(s.read("build/all"), "a\n");
    // A build directory of an earlier kiln (`.kiln/` but no tag) is still kiln's.
    s.remove("build/CACHEDIR.TAG");
    s.write("a.txt", "changed\n");
    s.kiln(&["build"]).ok();
    assert!(s.exists("build/CACHEDIR.TAG"));
    assert_eq!(s.read("build/all"), "changed\n");
    s.kiln(&["distclean"]).ok();
    s.kiln(&["distclean", "--out", "debug"]).ok();
    assert!(!s.exists("build") && !s.exists("debug"));
    assert_eq!(s.read("a.txt"), "changed\n");
}

#[test]
fn graph_prints_dot_that_graphviz_accepts() {
    let s = Space::new();
    s.write("a.c", "a").write("b.c", "b").write(
        "build.toml",
        "[rule.cc]\nrun = \"cp ${SRC} ${TGT}\"\next_in = [\".c\"]\next_out = [\".o\"]\n\
         [[gen]]\nname = \"tool\"\nrun = \"echo t > ${TGT}\"\ntarget = \"tool\"\n\
         [[gen]]\nname = \"app\"\nrun = \"cat ${SRC} > ${TGT}\"\nsource = [\"a.c\", \"b.c\"]\n\
         order_only = [\"tool\"]\ntarget = \"app\"\n",
    );
    let all = s.kiln(&["graph"]).ok().stdout;
    for line in [
        "digraph kiln {\n",
        "[shape=box, label=\"cc (build/a.o)\"];\n",
        "[shape=box, label=\"app (build/app)\"];\n",
        "[shape=ellipse, label=\"build/tool\"];\n",
        "[style=dashed];\n",
    ] {
        assert!(all.contains(line), "{line:?} in\n{all}");
    }
    // Graphviz reads it.
    let mut dot = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("graphviz's dot (scripts/test-setup installs it)");
    use std::io::Write;
    dot.stdin.take().unwrap().write_all(all.as_bytes()).unwrap();
    let svg = dot.wait_with_output().unwrap();
    assert!(svg.status.success());
    assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
    // The part one output needs; nothing was built.
    let part = s.kiln(&["graph", "build/a.o"]).ok().stdout;
    assert!(part.contains("label=\"cc (build/a.o)\""));
    assert!(
        !part.contains("build/b.o") && !part.contains("app (build/app)"),
        "{part}"
    );
    assert!(!s.exists("build/app"));
    s.kiln(&["graph", "nope"]).status(2).stderr_is(
        "error: `nope` is neither a generator nor an output of this build (`kiln list` shows both)\n",
    );
}
